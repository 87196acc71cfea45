from __future__ import annotations

import os

import torch
from monai.data import DataLoader
from monai.transforms import Compose

from medkit.data import TolerantDataset, inference_datalist
from medkit.transforms import xray_preprocessing


def test_inputs_expand_in_order(synthetic_cxr, tmp_path):
    folder = os.path.join(synthetic_cxr, "test", "NORMAL")
    one = sorted(os.listdir(folder))[0]
    items = inference_datalist(
        [
            os.path.join(folder, one),
            folder,
            os.path.join(synthetic_cxr, "test", "P*", "*.jpeg"),
            str(tmp_path / "x.png"),
        ]
    )
    paths = [i["image"] for i in items]
    assert paths[0].endswith(one)
    assert (
        len(paths)
        == 1 + len(os.listdir(folder)) + len(os.listdir(os.path.join(synthetic_cxr, "test", "PNEUMONIA"))) + 1
    )
    assert paths[-1] == str(tmp_path / "x.png")  # kept, so it is reported as missing


def test_tolerant_dataset_reports_and_continues(synthetic_cxr, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    good = inference_datalist([os.path.join(synthetic_cxr, "test", "NORMAL")])[:2]
    data = [good[0], {"image": str(bad)}, good[1]]
    ds = TolerantDataset(data, Compose(xray_preprocessing(spatial_size=(32, 32))), {"image": torch.zeros(1, 32, 32)})
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 1, 32, 32)
    assert batch["error"][0] == "" and batch["error"][2] == ""
    assert batch["error"][1].startswith(f"{bad}: ") and batch["image_path"][1] == str(bad)


def test_folder_slices_come_in_slice_number_order(tmp_path):
    case = tmp_path / "TCGA_XX_0001_20000101"
    case.mkdir()
    for n in (1, 2, 10, 11):
        (case / f"TCGA_XX_0001_20000101_{n}.tif").write_bytes(b"")
        (case / f"TCGA_XX_0001_20000101_{n}_mask.tif").write_bytes(b"")
    (case / "notes.png").write_bytes(b"")  # no slice number: after the numbered slices
    items = inference_datalist([str(tmp_path)], skip_masks=True, with_case=True)
    assert [os.path.basename(i["image"]) for i in items] == [
        *(f"TCGA_XX_0001_20000101_{n}.tif" for n in (1, 2, 10, 11)),
        "notes.png",
    ]
    assert [i["slice"] for i in items] == [1, 2, 10, 11, 4]


def test_a_folder_of_masks_only_is_reported(tmp_path, caplog):
    (tmp_path / "P_1_mask.tif").write_bytes(b"")
    with caplog.at_level("WARNING", logger="medkit.data.inference"):
        assert inference_datalist([str(tmp_path)], skip_masks=True) == []
    assert f"{tmp_path}: folder holds no image files (only masks)" in caplog.text


def test_numbers_order_within_a_name_not_across_names(tmp_path):
    for name in ("person1_bacteria_10", "person1_bacteria_2", "person10_virus_1", "IM-0001-0001"):
        (tmp_path / f"{name}.jpeg").write_bytes(b"")
    items = inference_datalist([str(tmp_path)])
    assert [os.path.basename(i["image"]) for i in items] == [
        "IM-0001-0001.jpeg",
        "person10_virus_1.jpeg",
        "person1_bacteria_2.jpeg",
        "person1_bacteria_10.jpeg",
    ]
