"""Classification bundles share one set of workflow configs: what differs lives in metadata.json.

Every bundle must stay self-contained (shared as a folder or zip, copied by MONAI Label), so the files
are copies; this test keeps them from drifting apart. Only the training knobs listed in TUNABLE may
differ between bundles' train.json files.
"""

from __future__ import annotations

import json
import os

import pytest

from medkit.data.synthetic import SYNTHETIC
from tests.conftest import BUNDLES

CLASSIFIERS = ["pneumonia", "covid", "brain_mri_classification"]
ALL_BUNDLES = [*CLASSIFIERS, "brain_mri_segmentation"]
TUNABLE = {"epochs", "batch_size", "learning_rate", "weight_decay", "early_stop_patience", "loss_kind", "focal_gamma",
           "class_weighting", "bf16_cpu", "channels_last"}  # fmt: skip


def _load(bundle: str, name: str) -> dict:
    with open(os.path.join(BUNDLES, bundle, "configs", name)) as f:
        return json.load(f)


def _parsed(bundle: str, name: str, **overrides):
    """``ConfigParser`` of a bundle's workflow config with its metadata, as ``monai.bundle run`` reads them, on the
    CPU, with ``overrides`` applied."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_meta(os.path.join(BUNDLES, bundle, "configs", "metadata.json"))
    parser.read_config(os.path.join(BUNDLES, bundle, "configs", name))
    parser.update({"bundle_root": os.path.join(BUNDLES, bundle), "device": "cpu", **overrides})
    return parser


@pytest.mark.parametrize("name", ["train.json", "evaluate.json", "inference.json"])
@pytest.mark.parametrize("bundle", CLASSIFIERS[1:])
def test_workflow_configs_match_the_reference(bundle, name):
    ref, other = _load(CLASSIFIERS[0], name), _load(bundle, name)
    assert set(ref) == set(other)
    differing = {k for k in ref if ref[k] != other[k]}
    assert differing <= TUNABLE, f"{bundle}/{name} differs from {CLASSIFIERS[0]} in {sorted(differing - TUNABLE)}"


@pytest.mark.parametrize("bundle", ALL_BUNDLES[1:])
def test_logging_conf_matches(bundle):
    read = lambda b: open(os.path.join(BUNDLES, b, "configs", "logging.conf")).read()  # noqa: E731
    assert read(bundle) == read(CLASSIFIERS[0])


@pytest.mark.parametrize("bundle", CLASSIFIERS)
def test_label_map_matches_output_channels(bundle):
    meta = _load(bundle, "metadata.json")
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert len(pred["channel_def"]) == pred["num_channels"]
    assert "@_meta_#network_data_format#outputs#pred#num_channels" in meta["medkit"]["network_def"].values()
    assert meta["medkit"]["task_type"] == "classification"


@pytest.mark.parametrize("bundle", ALL_BUNDLES)
def test_inference_config_loads_the_way_monai_label_does(bundle, tmp_path):
    """MONAI Label reads inference.json without metadata.json (``@_meta_`` is empty), sets ``bundle_root`` and a
    device string, and instantiates network_def, preprocessing, postprocessing and inferer; it sets ``image_path``
    in the request itself."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLES, bundle, "configs", "inference.json"))
    parser["bundle_root"] = os.path.join(BUNDLES, bundle)
    parser["device"] = "cpu"
    net = parser.get_parsed_content("network_def")
    pre = parser.get_parsed_content("preprocessing")
    post = parser.get_parsed_content("postprocessing")
    inferer = parser.get_parsed_content("inferer")
    meta = _load(bundle, "metadata.json")
    data = SYNTHETIC[meta["medkit"]["data"]["source"]](str(tmp_path / "data"))
    image = next(os.path.join(r, f) for r, _, fs in sorted(os.walk(data)) for f in sorted(fs) if "mask" not in f)
    item = pre({"image": image, "image_path": image})
    assert item["image_path"] == image
    with torch.no_grad():
        item["pred"] = inferer(item["image"][None], net.eval())[0]
    out = post(item)
    if meta["medkit"]["task_type"] == "segmentation":  # a 2D uint8 label in MONAI's (x, y) order, as writers expect
        assert out["pred"].dtype == torch.uint8 and tuple(out["pred"].shape) == tuple(item["image"].shape[1:][::-1])
    else:
        assert out["pred"].shape[0] == meta["network_data_format"]["outputs"]["pred"]["num_channels"]


def test_monai_label_task_types_from_bundle_names():
    """MONAI Label takes the task type from the folder name ("classification"/"segmentation" in it, else
    segmentation); the brain bundles' names and metadata agree."""
    for bundle in ALL_BUNDLES:
        task = _load(bundle, "metadata.json")["medkit"]["task_type"]
        if bundle.startswith("brain_mri_"):
            assert bundle.endswith(task)


@pytest.mark.parametrize("bundle", ["brain_mri_classification", "brain_mri_segmentation"])
def test_channels_last_switch_lays_out_the_training_network_and_its_weights_load_plainly(bundle, tmp_path):
    """train.json's ``channels_last`` stores the network's 4D weights channels-last (faster on the CPU); a
    checkpoint of that network loads into inference.json's plain network and gives the same output."""
    import torch

    convs = lambda net: [p for p in net.parameters() if p.ndim == 4]  # noqa: E731
    for on in (False, True):
        net = _parsed(bundle, "train.json", channels_last=on).get_parsed_content("network")
        assert all(p.is_contiguous(memory_format=torch.channels_last) == on for p in convs(net) if p.shape[-1] > 1)
    torch.save({"model": net.state_dict()}, tmp_path / "model.pt")
    plain = _parsed(bundle, "inference.json").get_parsed_content("network_def")
    plain.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True)["model"])
    assert all(p.is_contiguous() for p in convs(plain))
    channels = _load(bundle, "metadata.json")["network_data_format"]["inputs"]["image"]["num_channels"]
    x = torch.rand(1, channels, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), plain.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["evaluate.json", "inference.json"])
def test_fill_holes_switch_reaches_the_segmenter_postprocessing(name):
    """``fill_holes`` (metadata ``medkit.fill_holes``, overridable) adds ``FillHolesd`` to the post-processing of
    evaluation and inference; training and its validation stay plain."""
    from monai.transforms import FillHolesd

    bundle = "brain_mri_segmentation"
    assert _load(bundle, "metadata.json")["medkit"]["fill_holes"] is True
    for on in (None, False):
        parser = _parsed(bundle, name, **({} if on is None else {"fill_holes": on}))
        transforms = parser.get_parsed_content("postprocessing").transforms
        assert any(isinstance(t, FillHolesd) for t in transforms) is (on is None)
    train = _load(bundle, "train.json")["postprocessing"]
    assert "fill_holes" not in train


@pytest.mark.parametrize("name", ["evaluate.json", "inference.json"])
def test_flip_tta_switch_wraps_the_segmenter_sliding_window(name):
    """The segmenter's ``flip_tta`` (metadata ``medkit.flip_tta``, overridable) puts ``FlipTTAInferer`` around the
    sliding window inside the classifier gate; off, the gate runs the sliding window itself."""
    from monai.inferers import SlidingWindowInferer

    from medkit.inferers import FlipTTAInferer, GatedInferer

    bundle = "brain_mri_segmentation"
    assert _load(bundle, "metadata.json")["medkit"]["flip_tta"] is True
    for on in (None, False):
        parser = _parsed(bundle, name, classifier_bundle="", **({} if on is None else {"flip_tta": on}))
        inferer = parser.get_parsed_content("inferer")
        assert isinstance(inferer, GatedInferer) and inferer.gate is None
        inner = inferer.inferer
        if on is None:
            assert isinstance(inner, FlipTTAInferer) and isinstance(inner.inferer, SlidingWindowInferer)
        else:
            assert isinstance(inner, SlidingWindowInferer)


@pytest.mark.parametrize("bundle", ALL_BUNDLES)
def test_loader_workers_only_with_the_cache_in_host_memory(bundle):
    """On a GPU the training cache holds device tensors (``gpu_cache``), augmented in the loader's thread;
    ``gpu_cache=false`` keeps it in host memory, where ``train_workers`` processes augment it (the CPU alike)."""
    for device, gpu_cache, workers in (("cpu", True, 0), ("cpu", True, 2), ("cuda", True, 2), ("cuda", False, 3)):
        parser = _parsed(bundle, "train.json", device=device, gpu_cache=gpu_cache, train_workers=workers)
        to_device = parser.get_parsed_content("to_device")
        assert bool(to_device) == (device == "cuda" and gpu_cache)
        assert parser.get_parsed_content("train#dataloader#num_workers") == (0 if to_device else workers)
