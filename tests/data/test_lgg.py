from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tifffile

from medkit.data import inference_datalist, make_datalist
from medkit.data.lgg import build_lgg_datalist, patient_of_case, slice_number
from medkit.errors import DatasetLayoutError


def test_names():
    assert slice_number("/x/TCGA_CS_4942_19970222_12.tif") == 12
    assert slice_number("notes.tif") is None
    assert patient_of_case("TCGA_CS_4942_19970222") == "TCGA_CS_4942"


def test_slices_grouped_ordered_labelled_and_split_by_patient(synthetic_lgg):
    d = build_lgg_datalist(synthetic_lgg, val_fraction=0.2, test_fraction=0.2, seed=3)
    sides = {s: {i["patient"] for i in d[s]} for s in ("training", "validation", "test")}
    assert all(sides.values())
    assert not (
        sides["training"] & sides["validation"]
        or sides["training"] & sides["test"]
        or sides["validation"] & sides["test"]
    )
    items = [i for s in ("training", "validation", "test") for i in d[s]]
    assert len(items) == 6 * 8 and not d["skipped"]
    for item in items:  # label from the mask: slices 3..6 of 8 carry a tumour in the synthetic set
        assert item["label"] == int(3 <= item["slice"] <= 6) == int(item["tumour_pixels"] > 0)
        assert item["mask"].endswith(f"_{item['slice']}_mask.tif")
    one_case = [i["slice"] for i in items if i["case"] == items[0]["case"]]
    assert one_case == sorted(one_case) == list(range(1, 9))  # numeric order: 2 before 10


def test_cross_validation_folds_test_every_patient_once(synthetic_lgg):
    from medkit.data.splits import kfold_patients, split_fold

    tested = []
    for fold in range(3):
        d = build_lgg_datalist(synthetic_lgg, n_folds=3, fold=fold, val_fraction=0.2, seed=1, check_images=False)
        sides = {s: {i["patient"] for i in d[s]} for s in ("training", "validation", "test")}
        assert len(sides["test"]) == 2 and len(sides["validation"]) == 1 and len(sides["training"]) == 3
        assert not (sides["training"] & sides["test"] or sides["validation"] & sides["test"])
        assert d["fold"] == {"n_folds": 3, "fold": fold, "seed": 1}
        tested += sorted(sides["test"])
    assert len(tested) == len(set(tested)) == 6
    strata = {f"p{i}": i % 2 for i in range(7)}  # 4 of stratum 0, 3 of stratum 1
    folds = kfold_patients(strata, 3, seed=5)
    assert sorted(folds) == sorted(strata) and sorted(list(folds.values()).count(k) for k in range(3)) == [2, 2, 3]
    for k in range(3):  # each fold gets at most 2 of the 4 patients of stratum 0 and 1-2 of the 3 of stratum 1
        assert sum(folds[p] == k for p in strata if strata[p] == 0) in (1, 2)
    assert kfold_patients(strata, 3, seed=5) == folds  # reproducible
    assert set(split_fold(strata, 3, 0).values()) == {"training", "test"}  # no validation by default
    with pytest.raises(ValueError, match="n_folds"):
        kfold_patients(strata, 1)
    with pytest.raises(ValueError, match="fold must be"):
        split_fold(strata, 3, 3)


def test_mask_as_label_and_prepared_datalists(synthetic_lgg, tmp_path):
    d = make_datalist("lgg", synthetic_lgg, mask_as_label=True)
    item = d["training"][0]
    assert item["label"] == item["mask"] and item["tumour"] in (0, 1)
    from medkit.data import write_json_atomic

    write_json_atomic(build_lgg_datalist(synthetic_lgg), tmp_path / "dl.json")
    again = make_datalist("lgg", datalist_file=str(tmp_path / "dl.json"), mask_as_label=True)
    assert [i["label"] for i in again["training"]] == [i["label"] for i in d["training"]]


def test_missing_and_bad_masks_are_reported(synthetic_lgg, tmp_path):
    root = tmp_path / "kaggle_3m"
    shutil.copytree(os.path.join(synthetic_lgg), root)
    case = sorted(os.listdir(root))[0]
    os.remove(root / case / f"{case}_2_mask.tif")
    (root / case / f"{case}_3_mask.tif").write_bytes(b"broken")
    d = build_lgg_datalist(str(tmp_path))
    problems = {os.path.basename(r["file"]): r["problem"] for r in d["skipped"]}
    assert "no mask file" in problems[f"{case}_2.tif"]
    assert "cannot read TIFF" in problems[f"{case}_3.tif"]
    assert sum(len(d[s]) for s in ("training", "validation", "test")) == 6 * 8 - 2


def test_no_cases_is_a_layout_error(tmp_path):
    with pytest.raises(DatasetLayoutError):
        build_lgg_datalist(str(tmp_path))


def test_inference_datalist_skips_masks_and_keeps_cases(synthetic_lgg):
    case = sorted(os.listdir(synthetic_lgg))[0]
    folder = os.path.join(synthetic_lgg, case)
    items = inference_datalist([folder], skip_masks=True, with_case=True)
    assert len(items) == 8 and all(i["case"] == case for i in items)
    assert sorted(i["slice"] for i in items) == list(range(1, 9))
    single = inference_datalist([os.path.join(folder, f"{case}_1.tif")], skip_masks=True, with_case=True)
    assert single[0]["case"] == "" and "mask" not in single[0]["image"]


def test_real_lgg_set(medkit_data):
    d = build_lgg_datalist(os.path.join(medkit_data, "lgg-mri-segmentation"))
    items = [i for s in ("training", "validation", "test") for i in d[s]]
    assert len(items) == 920 and sum(i["label"] for i in items) == 335 and not d["skipped"]
    assert len({i["patient"] for i in d["test"]}) >= 4
    image = tifffile.imread(items[0]["image"])
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8


def test_case_volumes_stack_slices_in_order(synthetic_lgg, tmp_path):
    import nibabel as nib

    from medkit.data.lgg import load_case_volume, write_case_volumes

    d = build_lgg_datalist(synthetic_lgg)
    items = [i for s in ("training", "validation", "test") for i in d[s]]
    case = items[0]["case"]
    mine = [i for i in items if i["case"] == case][::-1]  # any order in, slice order out
    volume, mask = load_case_volume(mine)
    assert volume.shape == (64, 64, 8, 3) and mask.shape == (64, 64, 8)
    assert [int(mask[..., k].sum()) for k in range(8)] == [i["tumour_pixels"] for i in mine[::-1]]
    written = write_case_volumes(items, str(tmp_path))
    assert len(written) == 12
    assert nib.load(str(tmp_path / f"{case}_mask.nii.gz")).shape == (64, 64, 8)


def test_rgb_masks_giant_slices_and_broken_links_are_left_out(synthetic_lgg, tmp_path, monkeypatch):
    from medkit.io import header

    root = tmp_path / "kaggle_3m"
    shutil.copytree(synthetic_lgg, root)
    case = sorted(os.listdir(root))[0]
    rgb_mask = root / case / f"{case}_4_mask.tif"
    tifffile.imwrite(rgb_mask, np.stack([tifffile.imread(rgb_mask)] * 3, axis=-1))
    big = root / case / f"{case}_9.tif"
    tifffile.imwrite(big, np.zeros((100, 100, 3), np.uint8))
    tifffile.imwrite(root / case / f"{case}_9_mask.tif", np.zeros((100, 100), np.uint8))
    link = root / case / f"{case}_10.tif"
    link.symlink_to(tmp_path / "gone.tif")
    monkeypatch.setattr(header, "MAX_PIXELS", 64 * 64)  # the 100 x 100 slice stands for a giant one
    for check_images in (False, True):
        d = build_lgg_datalist(str(tmp_path), check_images=check_images)
        problems = {r["file"]: r["problem"] for r in d["skipped"]}
        assert problems[str(root / case / f"{case}_4.tif")] == (
            f"{rgb_mask}: mask has 3 channels, expected a single-channel mask"
        )
        assert (
            problems[str(big)]
            == "image of 100x100 = 10,000 pixels exceeds the limit of 4,096 (MEDKIT_MAX_PIXELS); not decoded"
        )
        assert problems[str(link)].startswith("broken symbolic link to")
        assert len(problems) == 3
        assert sum(len(d[s]) for s in ("training", "validation", "test")) == 6 * 8 - 1


def test_slices_the_bundle_would_refuse_are_left_out_by_name(synthetic_lgg, tmp_path):
    """With the bundle's ``medkit.accepts``, a slice too small for it is reported and left out of the datalist,
    where the preprocessing's check would stop training or evaluation at it; without it, it stays."""
    import json

    root = tmp_path / "kaggle_3m"
    shutil.copytree(os.path.join(synthetic_lgg), root)
    case = sorted(os.listdir(root))[0]
    tiny = root / case / f"{case}_4.tif"
    tifffile.imwrite(tiny, np.full((16, 16, 3), 50, np.uint8))
    tifffile.imwrite(root / case / f"{case}_4_mask.tif", np.zeros((16, 16), np.uint8))
    bundles = os.path.join(os.path.dirname(__file__), "..", "..", "bundles")
    with open(os.path.join(bundles, "brain_mri_segmentation", "configs", "metadata.json")) as f:
        accepts = json.load(f)["medkit"]["accepts"]
    d = build_lgg_datalist(str(tmp_path), accepts=accepts)
    problems = {r["file"]: r["problem"] for r in d["skipped"]}
    assert list(problems) == [str(tiny)] and problems[str(tiny)].startswith("16x16 pixels, smaller than the 32x32")
    assert sum(len(d[s]) for s in ("training", "validation", "test")) == 6 * 8 - 1
    assert not build_lgg_datalist(str(tmp_path))["skipped"]
