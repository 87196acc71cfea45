"""RSNA 2023 layout -> datalist: labels, patient split, reported gaps; CT inputs -> inference items."""

from __future__ import annotations

import csv
import os

import pytest

from medkit.data import build_rsna_datalist, make_datalist, series_datalist
from medkit.data.rsna import patient_stratum, read_series_meta
from medkit.errors import DatasetLayoutError
from medkit.metrics.rsna import SUBMISSION_COLUMNS

HEADER = ["patient_id", *SUBMISSION_COLUMNS, "any_injury"]


def _row(pid: int, bowel=0, extra=0, kidney=0, liver=0, spleen=0) -> list:
    cells = [pid]
    for value, n in ((bowel, 2), (extra, 2), (kidney, 3), (liver, 3), (spleen, 3)):
        cells += [int(i == value) for i in range(n)]
    return cells + [int(any((bowel, extra, kidney, liver, spleen)))]


@pytest.fixture
def rsna_layout(tmp_path):
    rows = [_row(100 + i) for i in range(12)]
    rows += [_row(200, extra=1), _row(201, extra=1, spleen=2), _row(202, bowel=1), _row(203, bowel=1, liver=1)]
    rows += [_row(300, kidney=2), _row(301, liver=2), _row(302, spleen=1), _row(303, kidney=1)]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    with open(tmp_path / "train_series_meta.csv", "w", newline="") as f:
        csv.writer(f).writerows([["patient_id", "series_id", "aortic_hu", "incomplete_organ"], [200, 7, "250.5", 0]])
    for row in rows:
        pid = row[0]
        for series in (7, 8) if pid == 200 else (7,):
            folder = tmp_path / "train_images" / str(pid) / str(series)
            folder.mkdir(parents=True)
            (folder / "1.dcm").write_bytes(b"x")
    (tmp_path / "train_images" / "999" / "5").mkdir(parents=True)  # not in train.csv
    (tmp_path / "train_images" / "100" / "9").mkdir()  # empty series folder
    return tmp_path


def test_datalist_labels_split_and_reports(rsna_layout):
    dl = build_rsna_datalist(str(rsna_layout), val_fraction=0.25, test_fraction=0.25, seed=0)
    items = dl["training"] + dl["validation"] + dl["test"]
    assert len(items) == 21  # 20 patients, one with two series
    by_patient = {}
    for side in ("training", "validation", "test"):
        for item in dl[side]:
            by_patient.setdefault(item["patient"], set()).add(side)
    assert all(len(s) == 1 for s in by_patient.values())  # both series of 200 on one side
    item = next(i for i in items if i["patient"] == "201")
    assert item["label"] == [0, 1, 0, 0, 2] and item["any_injury"] == 1
    assert item["image"] == os.path.join(str(rsna_layout), "train_images", "201", "7")
    # stratified: the two extravasation patients do not land on the same side
    assert len({next(iter(by_patient[p])) for p in ("200", "201")}) == 2
    strata = [patient_stratum(i["label"]) for i in dl["training"] + dl["validation"] + dl["test"]]
    assert strata.count("extravasation") == 3 and strata.count("bowel") == 2
    problems = {os.path.relpath(r["file"], rsna_layout): r["problem"] for r in dl["skipped"]}
    assert problems == {
        os.path.join("train_images", "999"): "patient not in train.csv (left out)",
        os.path.join("train_images", "100", "9"): "empty series folder (left out)",
    }
    assert make_datalist("rsna", str(rsna_layout), val_fraction=0.25, test_fraction=0.25) == dl


def test_check_images_leaves_out_series_that_are_not_dicom(rsna_layout):
    from pydicom.data import get_testdata_file

    real = open(get_testdata_file("CT_small.dcm"), "rb").read()
    for folder, _, files in os.walk(rsna_layout / "train_images"):
        for name in files:
            if os.path.basename(os.path.dirname(folder)) != "201":
                open(os.path.join(folder, name), "wb").write(real)
    dl = build_rsna_datalist(str(rsna_layout), check_images=True)
    assert len(dl["training"] + dl["validation"] + dl["test"]) == 20
    bad = [r for r in dl["skipped"] if "DICOM" in r["problem"]]
    assert [os.path.relpath(r["file"], rsna_layout) for r in bad] == [os.path.join("train_images", "201", "7")]
    assert bad[0]["problem"].startswith("1.dcm: not a readable DICOM file")


def test_series_meta_and_layout_errors(rsna_layout, tmp_path_factory):
    meta = read_series_meta(str(rsna_layout / "train_series_meta.csv"))
    assert meta == {("200", "7"): {"aortic_hu": 250.5, "incomplete_organ": 0}}
    tables_only = tmp_path_factory.mktemp("tables")
    (tables_only / "train.csv").write_text((rsna_layout / "train.csv").read_text())
    with pytest.raises(DatasetLayoutError, match="no train_images/ folder.*rsna-synthetic"):
        build_rsna_datalist(str(tables_only))
    with pytest.raises(DatasetLayoutError, match="no train.csv"):
        build_rsna_datalist(str(tmp_path_factory.mktemp("empty")))


def test_series_datalist_finds_volumes(rsna_layout, tmp_path):
    nifti = tmp_path / "scan.nii.gz"
    nifti.write_bytes(b"")
    items = series_datalist([str(rsna_layout / "train_images" / "200"), str(nifti), str(tmp_path / "missing")])
    assert [(os.path.basename(i["image"]), i["patient"]) for i in items] == [
        ("7", "200"),
        ("8", "200"),
        ("scan.nii.gz", "scan"),
        ("missing", "missing"),
    ]
    flat = tmp_path / "PATIENT_DICOM"
    flat.mkdir()
    (flat / "image_0").write_bytes(b"x")
    assert series_datalist([str(flat)]) == [{"image": str(flat), "patient": "PATIENT_DICOM"}]


def test_rows_without_images_and_broken_links_are_reported(rsna_layout, caplog):
    with open(rsna_layout / "train.csv", "a", newline="") as f:
        csv.writer(f).writerow(_row(400))  # labelled, no image folder
    with open(rsna_layout / "train_series_meta.csv", "a", newline="") as f:
        csv.writer(f).writerows([[300, 5, "", 0], [400, 3, "", 0]])  # no series folder; 400 is reported once
    images = rsna_layout / "train_images"
    (images / "301" / "7" / "2.dcm").symlink_to(rsna_layout / "gone.dcm")
    (images / "302" / "8").symlink_to(rsna_layout / "gone")
    dl = make_datalist("rsna", str(rsna_layout), val_fraction=0.25, test_fraction=0.25)
    problems = {os.path.relpath(r["file"], images): r["problem"] for r in dl["skipped"]}
    assert problems["400"] == "patient of train.csv has no image folder (left out)"
    assert problems[os.path.join("300", "5")] == "series of train_series_meta.csv has no folder (left out)"
    assert problems[os.path.join("301", "7")] == (
        f"2.dcm: broken symbolic link to {rsna_layout / 'gone.dcm'} (target missing) (left out)"
    )
    assert problems[os.path.join("302", "8")] == f"broken symbolic link to {rsna_layout / 'gone'} (target missing)"
    assert len(problems) == 2 + 4 and dl["missing"] == 2  # 400 and 301
    items = dl["training"] + dl["validation"] + dl["test"]
    assert len(items) == 21 - 1  # 301's only series is left out
    logged = caplog.text
    assert all(os.path.join(str(images), f) in logged for f in problems)
