"""Every bundle exported to TorchScript and ONNX and run by each engine through ``medkit infer``: the same rows as
the checkpoint (labels identical, probabilities within the stated tolerance), the two-stage brain pipeline with its
gate in the same engine, sliding-window segmentation with dynamic spatial axes, the trauma CT heads; stale or
missing exports refused by name."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from medkit.cli.main import cli
from medkit.data.synthetic import write_synthetic_lgg
from medkit.data.synthetic_ct import synthetic_ct_volume
from medkit.engines import ENGINES, load_network, require
from medkit.engines.export import TOLERANCE, export_engine
from medkit.errors import MedkitError
from tests.conftest import BUNDLES

pytest.importorskip("onnx", reason="the export extra is not installed (pip install 'medkit[export]')")
pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install 'medkit[export]')")

EXPORTED = ("torchscript", "onnx")


def _copy(name: str, dest) -> str:
    """A copy of the shipped bundle (configs and trained weights) with both engines exported into it."""
    path = str(dest / name)
    shutil.copytree(os.path.join(BUNDLES, name), path, ignore=shutil.ignore_patterns("runs", "eval", "*.ts", "*.onnx"))
    for engine in EXPORTED:
        export_engine(path, engine)
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("engines")
    names = ("pneumonia", "covid", "brain_mri_classification", "brain_mri_segmentation", "abdominal_trauma")
    return {name: _copy(name, root) for name in names}


def _infer(bundle: str, inputs: list[str], out, engine: str, *extra: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["infer", bundle, *inputs, "--out", str(out), "--engine", engine, *extra])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(open(os.path.join(out, "predictions.csv"))))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _assert_same_rows(reference: list[dict], rows: list[dict], engine: str, tolerance: float = TOLERANCE) -> None:
    assert len(rows) == len(reference) > 0
    for ref, row in zip(reference, rows):
        assert row.keys() == ref.keys()
        for key, value in ref.items():
            if key.endswith("_file"):  # masks and overlays live in each run's folder
                assert os.path.basename(row[key]) == os.path.basename(value)
            elif _is_number(value) and "." in value:
                assert float(row[key]) == pytest.approx(float(value), abs=tolerance), (engine, key, ref)
            else:
                assert row[key] == value, (engine, key, ref)


@pytest.mark.parametrize("name", ["pneumonia", "covid"])
def test_xray_classifiers_agree_in_every_engine(bundles, name, synthetic_cxr, synthetic_covid, tmp_path):
    data = synthetic_cxr if name == "pneumonia" else synthetic_covid
    reference = _infer(bundles[name], [data], tmp_path / "torch", "torch")
    for engine in EXPORTED:
        _assert_same_rows(reference, _infer(bundles[name], [data], tmp_path / engine, engine), engine)


def test_brain_classifier_stacks_agree_in_every_engine(bundles, synthetic_lgg, tmp_path):
    case = os.path.join(synthetic_lgg, sorted(os.listdir(synthetic_lgg))[0])
    reference = _infer(bundles["brain_mri_classification"], [case], tmp_path / "torch", "torch")
    for engine in EXPORTED:
        rows = _infer(bundles["brain_mri_classification"], [case], tmp_path / engine, engine)
        _assert_same_rows(reference, rows, engine)


def test_two_stage_segmentation_agrees_in_every_engine(bundles, tmp_path):
    """The gate (brain classifier) and the sliding-window segmenter with flip TTA, both in the chosen engine, on a
    patient of three 48-pixel slices, in 64-pixel windows (the ONNX segmenter was exported at 256: its spatial axes
    are dynamic)."""
    data = write_synthetic_lgg(tmp_path / "lgg", n_patients=1, n_slices=3, size=48)
    case = os.path.join(data, sorted(os.listdir(data))[0])
    args = ("--threshold", "0.0", "--no-overlays", "--set", "patch_size=[64, 64]")
    reference = _infer(bundles["brain_mri_segmentation"], [case], tmp_path / "torch", "torch", *args)
    masks = {}
    for engine in ("torch", *EXPORTED):
        rows = (
            reference
            if engine == "torch"
            else _infer(bundles["brain_mri_segmentation"], [case], tmp_path / engine, engine, *args)
        )
        _assert_same_rows(reference, rows, engine)
        masks[engine] = nib.load(str(tmp_path / engine / "nifti" / f"{os.path.basename(case)}_mask.nii.gz")).get_fdata()
    for engine in EXPORTED:
        assert np.array_equal(masks[engine], masks["torch"]), engine


def test_trauma_heads_agree_in_every_engine(bundles, tmp_path):
    volume, info = synthetic_ct_volume({"liver": 1}, shape=(32, 32, 16), rng=3)
    spacing = info.get("spacing", (12.0, 12.0, 16.0))
    nifti = tmp_path / "scan_1.nii.gz"
    nib.save(nib.Nifti1Image(volume.astype(np.int16), np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])), str(nifti))
    reference = _infer(bundles["abdominal_trauma"], [str(nifti)], tmp_path / "torch", "torch")
    for engine in EXPORTED:
        _assert_same_rows(
            reference, _infer(bundles["abdominal_trauma"], [str(nifti)], tmp_path / engine, engine), engine
        )


def test_monai_bundle_run_selects_the_engine(bundles, synthetic_cxr, tmp_path):
    """The inference config's own engine setting: MONAI's runner gets the ONNX engine without medkit's CLI."""
    out = tmp_path / "onnx"
    config = os.path.join(bundles["pneumonia"], "configs", "inference.json")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, "--dataset_dir", synthetic_cxr]
    cmd += ["--output_dir", str(out), "--engine", "onnx"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
    reference = _infer(bundles["pneumonia"], [synthetic_cxr], tmp_path / "torch", "torch")
    _assert_same_rows(reference, list(csv.DictReader(open(out / "predictions.csv"))), "onnx")


def test_stale_or_missing_export_is_refused_by_name(bundles, synthetic_cxr, tmp_path):
    bundle = str(tmp_path / "pneumonia")
    shutil.copytree(bundles["pneumonia"], bundle)
    os.remove(os.path.join(bundle, "models", "model.ts"))
    result = CliRunner().invoke(
        cli, ["infer", bundle, synthetic_cxr, "--out", str(tmp_path / "a"), "--engine", "torchscript"]
    )
    assert result.exit_code == 1 and "model.ts: missing; write it with medkit export" in result.output
    assert "Traceback" not in result.output
    ckpt = os.path.join(bundle, "models", "model.pt")
    state = torch.load(ckpt, weights_only=True)
    state["class_layers.out.bias"] += 1.0  # retrained weights: the exported network no longer matches them
    torch.save(state, ckpt)
    result = CliRunner().invoke(cli, ["infer", bundle, synthetic_cxr, "--out", str(tmp_path / "b"), "--engine", "onnx"])
    assert result.exit_code == 1 and "model.onnx: exported from another checkpoint" in result.output


def test_unknown_engine_and_missing_package_are_one_line(monkeypatch):
    with pytest.raises(MedkitError, match="unknown engine 'tensorrt'"):
        load_network("tensorrt", None, "models/model.pt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MedkitError, match=r"onnxruntime is not installed: pip install 'medkit\[export\]'"):
        require("onnxruntime")
    assert ENGINES[0] == "torch"


def test_zip_carries_checksums_and_runs_each_engine_elsewhere(bundles, synthetic_cxr, tmp_path, monkeypatch):
    """The zip of a bundle with its exported engines: a manifest of every file's SHA-256 (checked by verify's
    check_manifest, a changed file named), the weights in large_files.yml, and the unpacked copy infers as the
    source bundle does in each engine."""
    import json
    import zipfile

    from medkit.bundle import resolve_bundle
    from medkit.bundle.archive import check_manifest
    from medkit.networks.weights import sha256_of

    monkeypatch.setenv("MEDKIT_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["export", bundles["pneumonia"], "--out", str(tmp_path / "shared")])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "shared").iterdir()
    names = zipfile.ZipFile(path).namelist()
    assert {"pneumonia/manifest.json", "pneumonia/large_files.yml", "pneumonia/models/model.onnx"} <= set(names)
    unpacked = resolve_bundle(str(path))
    manifest = json.load(open(os.path.join(unpacked, "manifest.json")))
    assert set(manifest["files"]) == {n.split("/", 1)[1] for n in names} - {"manifest.json", "large_files.yml"}
    ckpt_hash = sha256_of(os.path.join(bundles["pneumonia"], "models", "model.pt"))
    assert f'hash_val: "{ckpt_hash}"' in open(os.path.join(unpacked, "large_files.yml")).read()
    assert check_manifest(unpacked) == (True, f"{len(manifest['files'])} files match their SHA-256")
    reference = _infer(bundles["pneumonia"], [synthetic_cxr], tmp_path / "source", "torch")
    for engine in ENGINES:
        _assert_same_rows(reference, _infer(str(path), [synthetic_cxr], tmp_path / engine, engine), engine)
    with open(os.path.join(unpacked, "configs", "inference.json"), "a") as f:
        f.write("\n")
    ok, detail = check_manifest(unpacked)
    assert not ok and "changed: configs/inference.json" in detail
