"""Every bundle's workflow configs are rendered from medkit's templates (``medkit.bundle.templates``): a block
that two bundles share is held once, in a template, and these tests fail when a bundle's copy drifts from it.

Each bundle stays self-contained (shared as a folder or zip, copied by MONAI Label), so its configs are complete
MONAI configs; only its settings (top-level plain values such as ``epochs``) are its own.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from medkit.data.synthetic import SYNTHETIC
from tests.conftest import BUNDLES

CLASSIFIERS = ["pneumonia", "covid", "brain_mri_classification"]
ALL_BUNDLES = [*CLASSIFIERS, "brain_mri_segmentation"]
EVERY_BUNDLE = [*ALL_BUNDLES, "abdominal_trauma"]


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


@pytest.mark.parametrize("bundle", EVERY_BUNDLE)
def test_workflow_configs_are_the_templates_rendering(bundle):
    """``python -m medkit.bundle.templates --write`` after a template change; a bundle may only differ in settings."""
    from medkit.bundle.templates import check_bundle

    assert check_bundle(os.path.join(BUNDLES, bundle)) == []


def test_a_block_edited_in_one_bundle_fails_the_check(tmp_path):
    """The check that keeps copies from drifting: a non-setting block changed in one bundle's copy, an id that is
    not in the template, an overlay that changes more than settings; a setting of its own is fine."""
    from medkit.bundle.templates import check_bundle

    bundle = shutil.copytree(
        os.path.join(BUNDLES, "brain_mri_segmentation"), tmp_path / "b", ignore=shutil.ignore_patterns("*.pt")
    )
    train = bundle / "configs" / "train.json"
    original = json.loads(train.read_text())
    for edit, expected in (
        (lambda c: c["validate"]["inferer"].update(overlap=0.5), "validate#inferer#overlap differs"),
        (lambda c: c.update(my_block={"_target_": "SimpleInferer"}), "my_block is not in the template"),
        (lambda c: c["train"].pop("lr_scheduler"), "train#lr_scheduler is missing"),
        (lambda c: c.update(epochs=3, learning_rate=0.1), None),
    ):
        config = json.loads(json.dumps(original))
        edit(config)
        train.write_text(json.dumps(config))
        problems = check_bundle(str(bundle))
        assert (problems == []) if expected is None else any(expected in p for p in problems), problems
    train.write_text(json.dumps(original))
    with open(bundle / "configs" / "logging.conf", "a") as f:
        f.write("\n")
    assert any("differs from the template's logging.conf" in p for p in check_bundle(str(bundle)))
    shutil.copy(os.path.join(BUNDLES, "pneumonia", "configs", "logging.conf"), bundle / "configs" / "logging.conf")
    assert check_bundle(str(bundle)) == []
    (bundle / "configs" / "finetune.json").write_text(json.dumps({"epochs": 2, "validate": {"inferer": None}}))
    assert any("may only change settings" in p for p in check_bundle(str(bundle)))


def test_templates_render_every_family_and_reject_unknown_settings():
    from medkit.bundle.templates import WORKFLOW_FILES, render
    from medkit.errors import MedkitError

    for family in ("classification", "segmentation", "trauma"):
        for name in WORKFLOW_FILES:
            config = render(family, name)
            assert {"imports", "bundle_root", "device", "network_def", "run"} <= set(config)
    with pytest.raises(MedkitError, match="not settings of the template"):
        render("classification", "train.json", {"no_such_knob": 1})
    with pytest.raises(MedkitError, match="unknown template family"):
        render("nope", "train.json")


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


@pytest.mark.parametrize("name", ["train.json", "evaluate.json", "inference.json"])
def test_metadata_overrides_reach_the_shared_definitions(name):
    """Workflow configs reach metadata's definitions one way (``medkit.bundle.meta_component``), and a
    ``_meta_#medkit#...`` override of the run applies to them, as ``@_meta_`` references would."""
    sizes = lambda compose: [t.resizer.spatial_size for t in compose.transforms if hasattr(t, "resizer")]  # noqa: E731
    plain = _parsed("covid", name).get_parsed_content("preprocessing")
    changed = _parsed("covid", name, **{"_meta_#medkit#preprocessing#spatial_size": [96, 96]})
    plain = plain if hasattr(plain, "transforms") else _compose(plain)
    other = changed.get_parsed_content("preprocessing")
    other = other if hasattr(other, "transforms") else _compose(other)
    assert sizes(plain) == [[160, 160]] and sizes(other) == [[96, 96]]


def _compose(transforms):
    from monai.transforms import Compose

    return Compose(transforms)
