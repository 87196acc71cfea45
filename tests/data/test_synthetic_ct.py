from __future__ import annotations

import csv
import os

import numpy as np
import pydicom
import pytest

from medkit.data import read_rsna_labels, synthetic_ct_volume, write_synthetic_rsna
from medkit.data.rsna import RSNA_SERIES_META_COLUMNS, RSNA_TRAIN_COLUMNS
from medkit.data.synthetic_ct import patient_rng
from medkit.errors import InputFileError, MedkitError

HEADER = (
    "patient_id,bowel_healthy,bowel_injury,extravasation_healthy,extravasation_injury,"
    "kidney_healthy,kidney_low,kidney_high,liver_healthy,liver_low,liver_high,"
    "spleen_healthy,spleen_low,spleen_high,any_injury"
)
SHAPE = (32, 32, 16)
LABELS = {
    "10004": {"bowel": 0, "extravasation": 1, "kidney": 1, "liver": 0, "spleen": 2},
    "10005": {"bowel": 0, "extravasation": 0, "kidney": 0, "liver": 0, "spleen": 0},
    "10007": {"bowel": 1, "extravasation": 0, "kidney": 2, "liver": 1, "spleen": 0},
}
HEALTHY = dict.fromkeys(("bowel", "extravasation", "kidney", "liver", "spleen"), 0)


def _rsna_dir(medkit_data: str) -> str:
    return os.path.join(medkit_data, "rsna-2023-abdominal-trauma-detection")


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _header(path: str) -> str:
    with open(path, newline="") as f:
        return f.readline().strip()


def _series(folder: str) -> list[pydicom.Dataset]:
    """The slices of a series folder sorted by InstanceNumber (not by file name)."""
    slices = [pydicom.dcmread(os.path.join(folder, n)) for n in os.listdir(folder)]
    return sorted(slices, key=lambda ds: int(ds.InstanceNumber))


def _hu(slices: list[pydicom.Dataset]) -> np.ndarray:
    """``(x, y, z)`` HU of sorted slices."""
    return np.stack([ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices], -1)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("rsna")
    summary = write_synthetic_rsna(out, LABELS, shape=SHAPE, seed=3, series_per_patient=2)
    return os.fspath(out), summary


# ------------------------------------------------------------------------------------------------ tables


def test_columns_are_the_competition_ones():
    assert ",".join(RSNA_TRAIN_COLUMNS) == HEADER
    assert RSNA_SERIES_META_COLUMNS == ("patient_id", "series_id", "aortic_hu", "incomplete_organ")


def test_layout_and_tables(written):
    out, summary = written
    assert sorted(os.listdir(out)) == ["train.csv", "train_images", "train_series_meta.csv"]
    assert _header(os.path.join(out, "train.csv")) == HEADER
    assert _header(os.path.join(out, "train_series_meta.csv")) == ",".join(RSNA_SERIES_META_COLUMNS)
    assert sorted(os.listdir(os.path.join(out, "train_images"))) == sorted(LABELS)
    meta = _rows(os.path.join(out, "train_series_meta.csv"))
    assert len(meta) == 6 and all(r["incomplete_organ"] == "0" for r in meta)
    for pid in LABELS:
        folders = sorted(os.listdir(os.path.join(out, "train_images", pid)))  # no hidden temporary folders left
        assert folders == sorted(r["series_id"] for r in meta if r["patient_id"] == pid) and len(folders) == 2
        for sid in folders:
            names = os.listdir(os.path.join(out, "train_images", pid, sid))
            assert len(names) == SHAPE[2] and all(n.endswith(".dcm") and n[:-4].isdigit() for n in names)
    assert summary["n_patients"] == 3 and summary["n_series"] == 6 and summary["n_files"] == 6 * SHAPE[2] + 2
    assert summary["counts"]["kidney"] == {"healthy": 1, "low": 1, "high": 1}
    assert summary["counts"]["bowel"] == {"healthy": 2, "injury": 1} and summary["counts"]["any_injury"] == 2


def test_labels_round_trip(written):
    out, _ = written
    got = read_rsna_labels(os.path.join(out, "train.csv"))
    want = {p: {**v, "any_injury": int(any(v.values()))} for p, v in LABELS.items()}
    assert got == want and list(got) == list(LABELS)
    row = _rows(os.path.join(out, "train.csv"))[0]
    assert row["patient_id"] == "10004" and row["spleen_high"] == "1" and row["spleen_healthy"] == "0"
    assert row["extravasation_injury"] == "1" and row["any_injury"] == "1"


# ------------------------------------------------------------------------------------------------ DICOM


def test_dicom_headers_geometry_and_pixels(written):
    out, _ = written
    meta = _rows(os.path.join(out, "train_series_meta.csv"))
    studies, frames, series_uids, sop_uids = {}, {}, set(), set()
    for r in meta:
        pid, sid = r["patient_id"], r["series_id"]
        folder = os.path.join(out, "train_images", pid, sid)
        slices = _series(folder)
        for ds in slices:
            assert os.path.exists(os.path.join(folder, f"{ds.InstanceNumber}.dcm"))
            assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.Modality == "CT"
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert ds.PatientID == pid and [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            assert (ds.Rows, ds.Columns) == (SHAPE[1], SHAPE[0]) and ds.PhotometricInterpretation == "MONOCHROME2"
            assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 12, 0)
            assert (float(ds.RescaleIntercept), float(ds.RescaleSlope)) == (-1024.0, 1.0)
            assert ds.pixel_array.dtype == np.uint16 and "WindowCenter" in ds and "WindowWidth" in ds
            sop_uids.add(ds.SOPInstanceUID)
        assert len({ds.SeriesInstanceUID for ds in slices}) == 1
        series_uids.add(slices[0].SeriesInstanceUID)
        studies.setdefault(pid, set()).update(ds.StudyInstanceUID for ds in slices)
        frames.setdefault(pid, set()).update(ds.FrameOfReferenceUID for ds in slices)
        z = np.array([float(ds.ImagePositionPatient[2]) for ds in slices])
        step = float(slices[0].SliceThickness)
        assert np.all(np.diff(z) > 0) and np.allclose(np.diff(z), step, atol=1e-3)
        assert 350 <= SHAPE[0] * float(slices[0].PixelSpacing[1]) <= 400
        assert 350 <= SHAPE[1] * float(slices[0].PixelSpacing[0]) <= 400
        assert 250 <= SHAPE[2] * step <= 300
        # HU after rescale are the generated volume of this patient and series
        volume, info = synthetic_ct_volume(
            LABELS[pid], SHAPE, patient_rng(3, pid), series=int(slices[0].SeriesNumber) - 1
        )
        np.testing.assert_array_equal(_hu(slices), volume)
        assert float(r["aortic_hu"]) == pytest.approx(info["aortic_hu"])
        assert np.allclose([float(v) for v in slices[0].ImagePositionPatient], info["origin"], atol=1e-3)
    assert len(sop_uids) == 6 * SHAPE[2] and len(series_uids) == 6
    assert all(len(v) == 1 for v in studies.values()) and all(len(v) == 1 for v in frames.values())
    assert len(set.union(*studies.values())) == 3


def test_rle_decodes_to_the_same_pixels(written, tmp_path):
    out, _ = written
    write_synthetic_rsna(
        tmp_path, LABELS, patient_ids=["10007"], shape=SHAPE, seed=3, series_per_patient=2, compression="rle"
    )
    for sid in os.listdir(os.path.join(tmp_path, "train_images", "10007")):
        rle = _series(os.path.join(tmp_path, "train_images", "10007", sid))
        plain = _series(os.path.join(out, "train_images", "10007", sid))
        assert all(ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless for ds in rle)
        assert [ds.SOPInstanceUID for ds in rle] == [ds.SOPInstanceUID for ds in plain]
        np.testing.assert_array_equal(_hu(rle), _hu(plain))


def test_reruns_and_subsets_reproduce_files(written, tmp_path):
    out, _ = written
    write_synthetic_rsna(tmp_path, LABELS, patient_ids=["10005"], shape=SHAPE, seed=3, series_per_patient=2)
    write_synthetic_rsna(tmp_path, LABELS, patient_ids=["10005"], shape=SHAPE, seed=3, series_per_patient=2)
    root = os.path.join(tmp_path, "train_images", "10005")
    for sid in os.listdir(root):
        for name in os.listdir(os.path.join(root, sid)):
            with (
                open(os.path.join(root, sid, name), "rb") as a,
                open(os.path.join(out, "train_images", "10005", sid, name), "rb") as b,
            ):
                assert a.read() == b.read()
    assert not [n for n in os.listdir(root) if n.startswith(".")]
    assert list(read_rsna_labels(os.path.join(tmp_path, "train.csv"))) == ["10005"]


def test_interrupted_series_leaves_nothing_half_written(tmp_path, monkeypatch):
    calls = {"n": 0}
    save_as = pydicom.Dataset.save_as

    def failing_save_as(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == SHAPE[2] + 5:  # in the middle of the second series
            raise OSError("disk full")
        return save_as(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.Dataset, "save_as", failing_save_as)
    with pytest.raises(OSError, match="disk full"):
        write_synthetic_rsna(tmp_path, LABELS, shape=SHAPE, seed=3)
    images = os.path.join(tmp_path, "train_images")
    series = [(p, s) for p in os.listdir(images) for s in os.listdir(os.path.join(images, p))]
    assert len(series) == 1 and not series[0][1].startswith(".")
    assert len(os.listdir(os.path.join(images, *series[0]))) == SHAPE[2]
    assert not os.path.exists(os.path.join(tmp_path, "train.csv"))
    assert not os.path.exists(os.path.join(tmp_path, "train_series_meta.csv"))


# ------------------------------------------------------------------------------------------------ choice of patients


def _table(n: int = 200) -> dict[str, dict[str, int]]:
    """Mostly healthy patients with a few of each injury, like the real table: 1 bowel, 2 extravasation, ..."""
    table = {str(20000 + i): dict(HEALTHY) for i in range(n)}
    few = {("bowel", 1): 1, ("extravasation", 1): 2, ("kidney", 2): 3, ("liver", 2): 3, ("kidney", 1): 4}
    few.update({("spleen", 2): 4, ("liver", 1): 5, ("spleen", 1): 6})
    pid = 20001
    for (target, grade), count in few.items():
        for _ in range(count):
            table[str(pid)][target] = grade
            pid += 7
    return table


def test_n_patients_stratified_and_reproducible(tmp_path):
    table = _table()
    a = write_synthetic_rsna(tmp_path / "a", table, n_patients=12, shape=(16, 16, 8), seed=1)
    b = write_synthetic_rsna(tmp_path / "b", table, n_patients=12, shape=(16, 16, 8), seed=1)
    assert a["patient_ids"] == b["patient_ids"] and len(a["patient_ids"]) == 12
    counts = a["counts"]
    assert counts["bowel"]["injury"] >= 1 and counts["extravasation"]["injury"] >= 1
    assert all(counts[t]["low"] >= 1 and counts[t]["high"] >= 1 for t in ("kidney", "liver", "spleen"))
    assert counts["any_injury"] < 12  # a healthy patient too
    assert a["patient_ids"] == sorted(a["patient_ids"], key=int)
    assert set(read_rsna_labels(tmp_path / "a" / "train.csv")) == set(a["patient_ids"])
    c = write_synthetic_rsna(tmp_path / "c", table, n_patients=12, shape=(16, 16, 8), seed=2)
    assert c["patient_ids"] != a["patient_ids"]
    rare = write_synthetic_rsna(tmp_path / "d", table, n_patients=2, shape=(16, 16, 8), seed=1)["counts"]
    assert rare["bowel"]["injury"] == 1 and rare["extravasation"]["injury"] == 1  # the rarest first


def test_bad_arguments(tmp_path):
    with pytest.raises(MedkitError, match="patient ids not in the labels: 99"):
        write_synthetic_rsna(tmp_path, LABELS, patient_ids=["99"], shape=SHAPE)
    with pytest.raises(MedkitError, match="n_patients is 5 but only 3"):
        write_synthetic_rsna(tmp_path, LABELS, n_patients=5, shape=SHAPE)
    with pytest.raises(MedkitError, match="compression"):
        write_synthetic_rsna(tmp_path, LABELS, compression="jpeg", shape=SHAPE)
    with pytest.raises(MedkitError, match="labels of patient 1: kidney is 3"):
        write_synthetic_rsna(tmp_path, {"1": {"kidney": 3}}, shape=SHAPE)
    with pytest.raises(MedkitError, match="unknown target"):
        synthetic_ct_volume({"lung": 1}, SHAPE)
    with pytest.raises(MedkitError, match="at least 8"):
        synthetic_ct_volume({}, (32, 32, 4))
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------------------------------------ bad train.csv


def _write_csv(path, header: str, *rows: str) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return os.fspath(path)


@pytest.mark.parametrize(
    "header, row, message",
    [
        (
            HEADER.replace(",kidney_low", ""),
            "1,1,0,1,0,1,0,1,0,0,1,0,0,0",
            r"row 1 \(header\): missing column\(s\) kidney_low",
        ),
        (
            HEADER,
            "2,1,0,1,0,0,1,1,1,0,0,1,0,0,1",
            r"row 3 \(patient 2\): kidney columns .* are \[0, 1, 1\], expected exactly one 1",
        ),
        (HEADER, "2,1,0,1,0,0,0,0,1,0,0,1,0,0,0", r"row 3 \(patient 2\): kidney columns .* are \[0, 0, 0\]"),
        (HEADER, "2,1,0,1,0,1,0,0,1,0,0,1,0,0", r"row 3 \(patient 2\): missing value\(s\) for any_injury"),
        (HEADER, "2,1,0,1,0,1,0,0,1,0,0,1,0,x,0", r"row 3 \(patient 2\): spleen_high is 'x', expected 0 or 1"),
        (HEADER, "2,1,0,1,0,1,0,0,1,0,0,1,0,0,1", r"row 3 \(patient 2\): any_injury is 1 but no injury"),
        (HEADER, "2,0,1,1,0,1,0,0,1,0,0,1,0,0,0", r"row 3 \(patient 2\): any_injury is 0 but bowel is injured"),
        (HEADER, "1,1,0,1,0,1,0,0,1,0,0,1,0,0,0", r"row 3 \(patient 1\): duplicate patient_id \(first on row 2\)"),
    ],
)
def test_bad_train_csv_is_one_line_naming_file_and_row(tmp_path, header, row, message):
    path = _write_csv(tmp_path / "train.csv", header, "1,1,0,1,0,1,0,0,1,0,0,1,0,0,0", row)
    with pytest.raises(InputFileError, match=message) as e:
        read_rsna_labels(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
    with pytest.raises(InputFileError):  # the writer reports the same
        write_synthetic_rsna(tmp_path / "out", path, shape=SHAPE)


def test_missing_train_csv(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_rsna_labels(tmp_path / "train.csv")


# ------------------------------------------------------------------------------------------------ volumes


def test_volume_deterministic_and_per_patient():
    a, info = synthetic_ct_volume(LABELS["10004"], SHAPE, np.random.default_rng(5))
    b, _ = synthetic_ct_volume(LABELS["10004"], SHAPE, np.random.default_rng(5))
    c, _ = synthetic_ct_volume(LABELS["10004"], SHAPE, np.random.default_rng(6))
    assert a.dtype == np.int16 and a.shape == SHAPE and np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(
        synthetic_ct_volume(LABELS["10004"], SHAPE, 5)[0], synthetic_ct_volume(LABELS["10004"], SHAPE, 5)[0]
    )
    p, _ = synthetic_ct_volume(HEALTHY, SHAPE, patient_rng(0, "10005"))
    q, _ = synthetic_ct_volume(HEALTHY, SHAPE, patient_rng(0, "10006"))
    assert not np.array_equal(p, q)
    sx, sy, sz = info["spacing"]
    assert sx == sy and 350 <= SHAPE[0] * sx <= 400 and 250 <= SHAPE[2] * sz <= 300


def test_volume_anatomy_in_hounsfield_units():
    shape = (64, 64, 32)
    v, info = synthetic_ct_volume(HEALTHY, shape, np.random.default_rng(2), return_masks=True)
    m = info["masks"]
    x = np.arange(shape[0])[:, None, None]
    y = np.arange(shape[1])[None, :, None]

    def centre(mask):
        return float((x * mask).sum() / mask.sum()), float((y * mask).sum() / mask.sum())

    assert v.min() >= -1024 and v.max() <= 3071
    assert v[~m["body"]].mean() < -950  # air
    assert 40 <= np.median(v[m["liver"]]) <= 75 and 35 <= np.median(v[m["spleen"]]) <= 65
    assert 100 <= np.median(v[m["kidney"]]) <= 180
    assert abs(np.median(v[m["aorta"]]) - info["aortic_hu"]) < 40 and 150 <= info["aortic_hu"] <= 300
    assert np.median(v[m["spine"]]) > 300
    bowel = v[m["bowel"]]
    assert (bowel < -500).any() and ((bowel > 0) & (bowel < 60)).any()  # gas and fluid/wall
    fat = v[m["body"] & ~m["bone"] & (v > -200) & (v < -50)]
    assert fat.size > 0.1 * m["body"].sum() and -120 < np.median(fat) < -70
    liver, spleen, spine = centre(m["liver"]), centre(m["spleen"]), centre(m["spine"])
    left, right = centre(m["kidney_left"]), centre(m["kidney_right"])
    assert liver[0] < shape[0] / 2 < spleen[0]  # liver patient right = low x, spleen patient left
    assert right[0] < spine[0] < left[0] and min(left[1], right[1]) > centre(m["aorta"])[1] - 2  # posterior
    assert spleen[1] > liver[1]


def test_series_share_the_body():
    a, ia = synthetic_ct_volume(LABELS["10004"], SHAPE, 7, series=0, return_masks=True)
    b, ib = synthetic_ct_volume(LABELS["10004"], SHAPE, 7, series=1, return_masks=True)
    assert ia["aortic_hu"] != ib["aortic_hu"] and not np.array_equal(a, b)
    assert all(
        np.array_equal(ia["masks"][k], ib["masks"][k]) for k in ("body", "liver", "spleen_lesion", "extravasation")
    )
    assert synthetic_ct_volume(HEALTHY, SHAPE, 7, aortic_hu=222.0)[1]["aortic_hu"] == 222.0


@pytest.mark.parametrize("organ", ["liver", "spleen", "kidney"])
def test_organ_injury_grades_are_visible_and_ordered(organ):
    shape = (48, 48, 24)
    low_contrast = []
    for seed in range(3):
        results = [
            synthetic_ct_volume({organ: g}, shape, np.random.default_rng(seed), return_masks=True) for g in range(3)
        ]
        side = results[0][1]["injuries"]["kidney"]["side"]
        assert all(r[1]["injuries"]["kidney"]["side"] == side for r in results)
        region = results[0][1]["masks"][f"kidney_{side}" if organ == "kidney" else organ]
        assert all(np.array_equal(r[1]["masks"][organ], results[0][1]["masks"][organ]) for r in results)
        lesions = [r[1]["masks"][f"{organ}_lesion"] for r in results]
        sizes = [int(m.sum()) for m in lesions]
        assert sizes[0] == 0 < sizes[1] < sizes[2], sizes
        assert all((m & ~region).sum() == 0 for m in lesions)
        means = [float(r[0][region].mean()) for r in results]
        assert means[0] > means[1] > means[2], means
        haematoma = [int(r[1]["masks"]["haematoma"].sum()) for r in results]
        assert haematoma[0] == haematoma[1] == 0 < haematoma[2]
        v2 = results[2][0]
        assert v2[region & ~lesions[2]].mean() - v2[lesions[2]].mean() > 20
        assert 30 <= np.median(v2[results[2][1]["masks"]["haematoma"]]) <= 80
        v1 = results[1][0]
        low_contrast.append(float(v1[region & ~lesions[1]].mean() - v1[lesions[1]].mean()))
    assert np.mean(low_contrast) > 10


def test_bowel_injury_and_extravasation_are_visible():
    shape = (48, 48, 24)
    for seed in range(3):
        v0, i0 = synthetic_ct_volume(HEALTHY, shape, np.random.default_rng(seed), return_masks=True)
        v1, i1 = synthetic_ct_volume(
            {"bowel": 1, "extravasation": 1}, shape, np.random.default_rng(seed), return_masks=True
        )
        m0, m1 = i0["masks"], i1["masks"]
        assert not any(m0[k].any() for k in ("bowel_lesion", "free_gas", "free_fluid", "extravasation"))
        assert m1["free_gas"].any() and m1["free_fluid"].any() and m1["bowel_wall"].any()
        assert not (m1["free_gas"] & m1["bowel"]).any() and v1[m1["free_gas"]].mean() < -400
        assert -20 <= np.median(v1[m1["free_fluid"]]) <= 50
        extra = m1["extravasation"]
        assert extra.any() and not (extra & (m1["aorta"] | m1["ivc"] | m1["bone"])).any()
        assert v1[extra].mean() > 140 and i1["injuries"]["extravasation"]["near"]
        others = m1["aorta"] | m1["ivc"] | m1["bone"] | m1["kidney"]
        assert ((v1 >= 150) & ~others).sum() > ((v0 >= 150) & ~others).sum()


# ------------------------------------------------------------------------------------------------ real tables


@pytest.mark.realdata
def test_real_train_csv_reads_and_matches_the_written_header(medkit_data, tmp_path):
    real = os.path.join(_rsna_dir(medkit_data), "train.csv")
    labels = read_rsna_labels(real)
    assert len(labels) == 3147 and all(p.isdigit() for p in labels)
    assert sum(v["bowel"] for v in labels.values()) == 64 and sum(v["extravasation"] for v in labels.values()) == 200
    assert sum(v["any_injury"] for v in labels.values()) == 855
    summary = write_synthetic_rsna(tmp_path, real, patient_ids=list(labels)[:2], shape=SHAPE)
    assert _header(os.path.join(tmp_path, "train.csv")) == _header(real) == HEADER
    meta = os.path.join(_rsna_dir(medkit_data), "train_series_meta.csv")
    assert _header(os.path.join(tmp_path, "train_series_meta.csv")) == _header(meta)
    written = read_rsna_labels(summary["train_csv"])
    assert written == {p: labels[p] for p in list(labels)[:2]}


@pytest.mark.realdata
def test_real_table_stratified_choice_of_40(medkit_data, tmp_path):
    real = os.path.join(_rsna_dir(medkit_data), "train.csv")
    summary = write_synthetic_rsna(tmp_path, real, n_patients=40, shape=(16, 16, 8), seed=0)
    counts = summary["counts"]
    assert summary["n_patients"] == 40 and summary["n_series"] == 40
    assert counts["bowel"]["injury"] >= 1 and counts["extravasation"]["injury"] >= 1
    assert all(counts[t]["low"] >= 1 and counts[t]["high"] >= 1 for t in ("kidney", "liver", "spleen"))
    labels = read_rsna_labels(real)
    assert read_rsna_labels(summary["train_csv"]) == {p: labels[p] for p in summary["patient_ids"]}


def test_segmentations_align_with_the_series_and_mark_the_injuries(tmp_path):
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

    from medkit.data.rsna import SEGMENTATION_LABELS, build_rsna_datalist
    from medkit.io.ct import CTReader

    summary = write_synthetic_rsna(tmp_path, LABELS, shape=(48, 48, 24), seed=3, segmentations=True)
    segs = sorted(os.listdir(tmp_path / "segmentations"))
    assert len(segs) == summary["n_series"] == 3 and all(n.endswith(".nii.gz") for n in segs)
    assert summary["n_files"] == 3 * 24 + 3 + 2
    datalist = build_rsna_datalist(tmp_path, val_fraction=0.34, test_fraction=0.0)
    items = datalist["training"] + datalist["validation"]
    assert all(os.path.basename(i["seg"]) == f"{i['series']}.nii.gz" for i in items)
    load = [EnsureChannelFirst(channel_dim="no_channel"), Orientation("RAS")]
    for item in items:
        hu = Compose([LoadImage(reader=CTReader(), image_only=True), *load])(item["image"])
        seg = Compose([LoadImage(image_only=True), *load])(item["seg"])
        assert seg.shape == hu.shape
        np.testing.assert_allclose(seg.affine.numpy(), hu.affine.numpy(), atol=1e-3)
        seg, hu = seg[0].numpy().astype(int), hu[0].numpy()
        assert 45 < hu[seg == SEGMENTATION_LABELS["liver"]].mean() < 75  # the label sits on liver HU
        assert 90 < hu[seg == SEGMENTATION_LABELS["kidney_left"]].mean() < 170
        labels = LABELS[item["patient"]]
        for target in ("liver", "spleen", "kidney", "bowel"):
            marked = (seg == SEGMENTATION_LABELS[f"{target}_injury"]).any()
            assert marked == bool(labels[target]), (item["patient"], target)
        assert (seg == SEGMENTATION_LABELS["extravasation"]).any() == bool(labels["extravasation"])
