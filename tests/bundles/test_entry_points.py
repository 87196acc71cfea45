"""One pipeline whatever runs it: ``medkit infer``, ``python -m monai.bundle run ... inference.json`` and MONAI
Label's way of loading a bundle (``inference.json`` alone) give the same brain mask for the same slice, the
classifier gate and its threshold included (metadata ``medkit.classifier_bundle``)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import BUNDLES

SEGMENTER = os.path.join(BUNDLES, "brain_mri_segmentation")


def _slice(tmp_path) -> str:
    """A tumour slice of the real LGG set when MEDKIT_DATA is given, else of the synthetic look-alike."""
    root = os.environ.get("MEDKIT_DATA")
    real = os.path.join(root or "", "lgg-mri-segmentation", "kaggle_3m", "TCGA_CS_4942_19970222")
    if root and os.path.isdir(real):
        return os.path.join(real, "TCGA_CS_4942_19970222_11.tif")
    from medkit.data.synthetic import SYNTHETIC

    data = SYNTHETIC["lgg"](str(tmp_path / "data"))
    masks = sorted(glob.glob(os.path.join(data, "**", "*_mask.tif"), recursive=True))
    best = max(masks, key=lambda m: int((np.asarray(Image.open(m)) > 0).sum()))
    return best.replace("_mask.tif", ".tif")


def _mask(folder: str) -> np.ndarray:
    (png,) = glob.glob(os.path.join(folder, "masks", "*.png"))
    return np.asarray(Image.open(png)) > 0


def _monai_label_mask(image: str) -> tuple[np.ndarray, object]:
    """What MONAI Label's bundle infer task computes: inference.json parsed without metadata.json, bundle_root and
    a device string set, preprocessing -> inferer(network) -> postprocessing on ``{"image", "image_path"}``."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(SEGMENTER, "configs", "inference.json"))
    parser["bundle_root"] = SEGMENTER
    parser["device"] = "cpu"
    network = parser.get_parsed_content("network_def")
    state = torch.load(os.path.join(SEGMENTER, "models", "model.pt"), map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state))
    item = parser.get_parsed_content("preprocessing")({"image": image, "image_path": image})
    inferer = parser.get_parsed_content("inferer")
    with torch.no_grad():
        item["pred"] = inferer(item["image"][None], network.eval())[0]
    out = parser.get_parsed_content("postprocessing")(item)
    return np.asarray(out["pred"]).T > 0, inferer  # written (x, y) for MONAI's writers; the PNGs are (rows, columns)


def test_medkit_monai_run_and_monai_label_give_the_same_gated_mask(tmp_path):
    from click.testing import CliRunner

    from medkit.cli.main import cli

    image = _slice(tmp_path)
    result = CliRunner().invoke(cli, ["infer", SEGMENTER, image, "--out", str(tmp_path / "by_medkit")], obj={})
    assert result.exit_code == 0, result.output
    config = os.path.join(SEGMENTER, "configs", "inference.json")
    run = subprocess.run(  # from another folder: bundle_root comes from the config file's own location
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", config,
         "--dataset_dir", image, "--output_dir", str(tmp_path / "by_monai")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[:3000]
    label, inferer = _monai_label_mask(image)
    assert inferer.gate is not None, "MONAI Label's parse must load the classifier gate named in metadata"
    by_medkit, by_monai = _mask(str(tmp_path / "by_medkit")), _mask(str(tmp_path / "by_monai"))
    np.testing.assert_array_equal(by_medkit, by_monai)
    np.testing.assert_array_equal(by_medkit, label)
    rows = [open(os.path.join(tmp_path, d, "predictions.csv")).read().splitlines() for d in ("by_medkit", "by_monai")]
    assert "tumour_probability" in rows[0][0] and rows[0][1].split(",")[3] == rows[1][1].split(",")[3] != ""


def test_without_the_classifier_every_entry_point_segments_alone(tmp_path):
    """``--classifier_bundle ""`` (``medkit --no-classifier``) turns the gate off the same way for all of them."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(SEGMENTER, "configs", "inference.json"))
    parser.update({"bundle_root": SEGMENTER, "device": "cpu", "classifier_bundle": ""})
    assert parser.get_parsed_content("inferer").gate is None


@pytest.mark.parametrize("with_meta", [True, False], ids=["monai-run", "monai-label"])
@pytest.mark.parametrize("name", ["evaluate.json", "inference.json"])
def test_the_gate_is_the_metadata_default_in_evaluate_and_inference(name, with_meta):
    """Parsed with the segmenter's metadata (``monai.bundle run``, ``medkit``) or without (MONAI Label), the gate is
    the classifier bundle's own network and thresholds, not a definition of the segmenter's metadata."""
    from monai.bundle import ConfigParser

    from medkit.bundle import load_metadata

    parser = ConfigParser()
    if with_meta:
        parser.read_meta(os.path.join(SEGMENTER, "configs", "metadata.json"))
    parser.read_config(os.path.join(SEGMENTER, "configs", name))
    parser.update({"bundle_root": SEGMENTER, "device": "cpu"})
    named = load_metadata(SEGMENTER)["medkit"]["classifier_bundle"]
    assert named and parser.get_parsed_content("classifier_bundle") == named
    inferer = parser.get_parsed_content("inferer")
    classifier = load_metadata(os.path.join(BUNDLES, named))["medkit"]
    assert inferer.threshold == pytest.approx(classifier["threshold"])
    assert inferer.stack_threshold == pytest.approx(classifier["stack_threshold"])
