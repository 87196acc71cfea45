from __future__ import annotations

import logging
import os

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage, LoadImaged
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MediaStorageDirectoryStorage,
    RLELossless,
    generate_uid,
)

from medkit.errors import InputFileError
from medkit.io import CTReader, CTSeries, CTSeriesReader, load_ct, read_ct_series

ROWS, COLS = 32, 40  # JPEG 2000 with OpenJPEG's default 6 resolutions needs 32+ pixels a side
PIXEL_SPACING = (0.7, 0.8)  # DICOM order: between rows, between columns
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
RAW = np.random.default_rng(0).integers(0, 2500, (8, ROWS, COLS), dtype=np.uint16)  # (slice, row, column)


def _rotated_orientation() -> tuple[float, ...]:
    """Direction cosines of an oblique plane: axial rotated 20 degrees about z, then 30 about x."""
    a, b = np.radians(20), np.radians(30)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    r = rx @ rz
    return (*r[:, 0], *r[:, 1])


def _dataset(path, raw, position, orientation=AXIAL, series_uid="1.2.3.4", number=1, rows=ROWS, cols=COLS):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.SeriesDescription = "CT", "P001", "tiny abdomen"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "1.2.3", series_uid, "1.2.3.9"
    ds.InstanceNumber = number
    if position is not None:
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = list(PIXEL_SPACING)
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = np.ascontiguousarray(raw).tobytes()
    return ds


def _write_series(
    folder,
    n=6,
    steps=None,
    orientation=AXIAL,
    origin=(-10.0, 20.0, 30.0),
    syntax=None,
    with_position=True,
    seed=1,
) -> list[str]:
    """Slices ``0..n-1`` at ``origin + z_k * normal`` (``z_k`` the cumulative ``steps``, 2.5 mm by default),
    written in shuffled order under odd names (some ``.dcm``, some none); returns the paths by slice."""
    os.makedirs(folder, exist_ok=True)
    steps = [2.5] * (n - 1) if steps is None else steps
    z = np.concatenate([[0.0], np.cumsum(steps)])
    normal = np.cross(orientation[:3], orientation[3:])
    rng = np.random.default_rng(seed)
    paths: list[str] = [""] * n
    for order, k in enumerate(rng.permutation(n)):
        name = f"{rng.integers(10**6, 10**7)}" + (".dcm" if order % 2 else "")
        position = np.asarray(origin) + z[k] * normal if with_position else None
        ds = _dataset(os.path.join(folder, name), RAW[k], position, orientation, number=int(k) + 1)
        if syntax is not None:
            ds.compress(syntax)
        ds.save_as(os.path.join(folder, name), enforce_file_format=True)
        paths[k] = os.path.join(folder, name)
    return paths


def _expected_hu(n=6) -> np.ndarray:
    return np.moveaxis(RAW[:n], 0, -1).transpose(1, 0, 2).astype(np.float32) - 1024  # (columns, rows, slices)


def _itk(folder):
    return LoadImage(reader="ITKReader", image_only=True)(str(folder))


def test_sorts_shuffled_odd_names_to_hu_and_ras_affine(tmp_path):
    paths = _write_series(tmp_path / "series")
    (tmp_path / "series" / "notes.txt").write_text("not dicom")
    (tmp_path / "series" / ".DS_Store").write_bytes(b"\0" * 300)
    s = read_ct_series(tmp_path / "series")
    assert isinstance(s, CTSeries) and s.problems == []
    assert s.array.dtype == np.float32 and s.array.shape == (COLS, ROWS, 6)
    np.testing.assert_array_equal(s.array, _expected_hu())
    assert s.files == paths
    assert s.spacing == pytest.approx((0.8, 0.7, 2.5))
    expected = np.array([[-0.8, 0, 0, 10.0], [0, -0.7, 0, -20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(s.affine, expected, atol=1e-6)
    assert s.meta["PatientID"] == "P001" and s.meta["SeriesInstanceUID"] == "1.2.3.4"
    assert s.meta["Modality"] == "CT" and s.meta["SeriesDescription"] == "tiny abdomen"
    assert s.meta["TransferSyntaxes"] == ["Explicit VR Little Endian"]


def test_skipped_junk_is_logged_not_a_problem(tmp_path, caplog):
    _write_series(tmp_path / "series", n=3)
    (tmp_path / "series" / "notes.txt").write_text("not dicom")
    (tmp_path / "series" / ".hidden").write_bytes(b"\0" * 300)
    (tmp_path / "series" / "sub").mkdir()
    dicomdir = FileDataset("DICOMDIR", {}, file_meta=FileMetaDataset(), preamble=b"\0" * 128)
    dicomdir.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    dicomdir.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dicomdir.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir.FileSetID = "TINY"
    dicomdir.save_as(tmp_path / "series" / "DICOMDIR", enforce_file_format=True)
    with caplog.at_level(logging.WARNING, logger="medkit.io.ct"):
        s = read_ct_series(tmp_path / "series", strict=True)
    assert s.array.shape[-1] == 3
    assert "notes.txt: not a DICOM file" in caplog.text and ".hidden: hidden file" in caplog.text
    assert "DICOMDIR: DICOM Media Storage Directory Storage, not an image" in caplog.text
    assert "sub: not a file" in caplog.text


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_matches_itk_reader(tmp_path, oblique):
    orientation = _rotated_orientation() if oblique else AXIAL
    _write_series(tmp_path / "s", orientation=orientation, origin=(12.5, -7.0, 101.0))
    s = read_ct_series(tmp_path / "s")
    ref = _itk(tmp_path / "s")
    assert tuple(ref.shape) == s.array.shape
    np.testing.assert_allclose(s.array, ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(s.affine, ref.affine.numpy(), atol=1e-3)
    if oblique:
        assert not np.allclose(s.affine[:3, :3], np.diag(np.diag(s.affine[:3, :3])), atol=0.05)


def test_rle_series_decodes_like_uncompressed(tmp_path):
    plain = read_ct_series(_write_series(tmp_path / "plain")[0].rsplit(os.sep, 1)[0])
    _write_series(tmp_path / "rle", syntax=RLELossless)
    rle = read_ct_series(tmp_path / "rle")
    assert rle.meta["TransferSyntaxes"] == ["RLE Lossless"] and rle.problems == []
    np.testing.assert_array_equal(rle.array, plain.array)
    np.testing.assert_allclose(rle.affine, plain.affine)


def test_jpeg2000_lossless_series(tmp_path):
    from pydicom.pixels import get_encoder

    if not get_encoder(JPEG2000Lossless).is_available:
        pytest.skip("no JPEG 2000 encoder in this environment (pylibjpeg-openjpeg missing)")
    try:
        _write_series(tmp_path / "j2k", n=5, syntax=JPEG2000Lossless)
    except Exception as e:  # noqa: BLE001 - whatever the encoder plugin raises
        pytest.skip(f"JPEG 2000 lossless encoding unsupported here ({type(e).__name__}: {e})")
    s = read_ct_series(tmp_path / "j2k")
    assert s.meta["TransferSyntaxes"] == ["JPEG 2000 Image Compression (Lossless Only)"]
    np.testing.assert_array_equal(s.array, _expected_hu(5))


def test_missing_slice_reported_and_strict_raises(tmp_path):
    folder = tmp_path / "gap"
    _write_series(folder, n=6, steps=[2.5, 2.5, 5.0, 2.5, 2.5])
    s = read_ct_series(folder)
    assert s.array.shape[-1] == 6 and s.spacing[2] == pytest.approx(2.5)
    assert s.problems == [f"{folder}: missing slices between z=35.00 and z=40.00 (5.00 mm apart)"]
    with pytest.raises(InputFileError) as info:
        read_ct_series(folder, strict=True)
    message = str(info.value)
    assert message.startswith(f"{folder}: missing slices between z=35.00 and z=40.00") and "\n" not in message


def test_uneven_spacing_reported(tmp_path):
    _write_series(tmp_path / "s", n=5, steps=[2.5, 2.5, 2.8, 2.5])
    s = read_ct_series(tmp_path / "s")
    assert len(s.problems) == 1 and "non-uniform slice spacing (2.500 to 2.800 mm" in s.problems[0]


def test_other_series_duplicate_and_corrupt_files_skipped_and_named(tmp_path):
    folder = tmp_path / "mixed"
    paths = _write_series(folder, n=5)
    other = _dataset(folder / "other", RAW[0], (0, 0, 0), series_uid="9.9.9")
    other.save_as(folder / "other", enforce_file_format=True)
    small = _dataset(folder / "small.dcm", RAW[0, :16, :16], (0, 0, 0), rows=16, cols=16)
    small.save_as(folder / "small.dcm", enforce_file_format=True)
    (folder / "zz_duplicate").write_bytes(open(paths[2], "rb").read())
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")
    (folder / "cut_header").write_bytes(open(paths[0], "rb").read()[:500])
    s = read_ct_series(folder)
    assert s.files == paths
    np.testing.assert_array_equal(s.array, _expected_hu(5))
    text = "\n".join(s.problems)
    assert f"{folder / 'other'}: series 9.9.9, 32x40" in text and "skipped" in text
    assert f"{folder / 'small.dcm'}: series 1.2.3.4, 16x16" in text
    assert f"{folder / 'zz_duplicate'}: duplicate slice position z=35.00 of {paths[2]}" in text
    assert f"{folder / 'broken.dcm'}: unreadable DICOM header" in text
    assert f"{folder / 'cut_header'}: CT Image Storage header without Rows/Columns (truncated?)" in text
    assert all(line.startswith(str(folder)) and "\n" not in line for line in s.problems)
    with pytest.raises(InputFileError, match=r"\(and \d+ more\)"):
        read_ct_series(folder, strict=True)


def test_undecodable_slice_named_in_problems(tmp_path):
    folder = tmp_path / "s"
    paths = _write_series(folder, n=6)
    good = open(paths[1], "rb").read()
    open(paths[1], "wb").write(good[: len(good) - 300])  # pixel data cut short
    s = read_ct_series(folder)
    assert s.array.shape[-1] == 5 and paths[1] not in s.files
    assert any(p.startswith(f"{paths[1]}: cannot decode pixel data") for p in s.problems)
    assert any("missing slices between z=30.00 and z=35.00" in p for p in s.problems)


def test_position_missing_falls_back_to_instance_number(tmp_path):
    paths = _write_series(tmp_path / "s", n=5, with_position=False)
    s = read_ct_series(tmp_path / "s")
    assert s.files == paths
    np.testing.assert_array_equal(s.array, _expected_hu(5))
    assert s.spacing[2] == pytest.approx(2.5)  # SliceThickness
    assert any("ImagePositionPatient missing in 5 of 5 files; sorted by InstanceNumber" in p for p in s.problems)


def test_single_slice_is_a_problem(tmp_path):
    _write_series(tmp_path / "one", n=1)
    s = read_ct_series(tmp_path / "one")
    assert s.array.shape == (COLS, ROWS, 1) and "only 1 slice" in s.problems[0]
    with pytest.raises(InputFileError, match="only 1 slice"):
        read_ct_series(tmp_path / "one", strict=True)


def test_empty_or_junk_folder_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"empty: no readable DICOM image"):
        read_ct_series(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    with pytest.raises(InputFileError, match=r"junk: no readable DICOM image"):
        read_ct_series(tmp_path / "junk")
    with pytest.raises(InputFileError, match="no such folder"):
        read_ct_series(tmp_path / "missing")


def _write_nifti(path) -> tuple[np.ndarray, np.ndarray]:
    data = (np.arange(5 * 6 * 7).reshape(5, 6, 7) - 100).astype(np.int16)
    affine = np.array([[-0.9, 0, 0, 40.0], [0, 0.9, 0, -30.0], [0, 0, 2.0, 12.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return data, affine


def test_load_ct_nifti_and_folder(tmp_path):
    data, affine = _write_nifti(tmp_path / "ct.nii.gz")
    array, aff, meta = load_ct(tmp_path / "ct.nii.gz")
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, data)
    np.testing.assert_allclose(aff, affine)
    assert meta["format"] == "NIfTI" and meta["spacing"] == pytest.approx((0.9, 0.9, 2.0))
    _write_series(tmp_path / "series", n=4)
    array, aff, meta = load_ct(tmp_path / "series")
    np.testing.assert_array_equal(array, _expected_hu(4))
    assert meta["format"] == "DICOM" and meta["PatientID"] == "P001" and meta["problems"] == []
    (tmp_path / "ct.png").write_bytes(b"x")
    for bad, words in [
        (tmp_path / "ct.png", "not a DICOM series folder or a NIfTI file"),
        (tmp_path / "no.nii", "no such"),
    ]:
        with pytest.raises(InputFileError) as info:
            load_ct(bad)
        assert str(info.value).startswith(f"{bad}: {words}")
    (tmp_path / "broken.nii.gz").write_bytes(b"not gzip")
    with pytest.raises(InputFileError, match=r"broken\.nii\.gz: cannot read NIfTI"):
        load_ct(tmp_path / "broken.nii.gz")


def test_loadimaged_with_both_readers(tmp_path):
    folder = tmp_path / "series"
    _write_series(folder, orientation=_rotated_orientation())
    data, affine = _write_nifti(tmp_path / "ct.nii")
    ref = _itk(folder)
    assert CTSeriesReader().verify_suffix(str(folder)) and not CTSeriesReader().verify_suffix(str(tmp_path / "ct.nii"))
    assert CTReader().verify_suffix([str(folder), str(tmp_path / "ct.nii")])
    assert not CTReader().verify_suffix(str(tmp_path / "ct.png"))

    out = LoadImaged("image", reader=CTSeriesReader(), ensure_channel_first=True)({"image": str(folder)})
    img = out["image"]
    assert tuple(img.shape) == (1, COLS, ROWS, 6)
    np.testing.assert_allclose(img.affine.numpy(), ref.affine.numpy(), atol=1e-3)
    np.testing.assert_allclose(img[0].numpy(), ref.numpy(), atol=1e-4)
    for key in ("affine", "original_affine", "spatial_shape", "original_channel_dim", "filename_or_obj", "spacing"):
        assert key in img.meta
    assert img.meta["original_channel_dim"] == "no_channel" and img.meta["filename_or_obj"] == str(folder)
    np.testing.assert_allclose(img.meta["spacing"], (0.8, 0.7, 2.5), rtol=1e-5)

    load = LoadImaged(["dcm", "nii"], reader=CTReader(), image_only=True)
    out = load({"dcm": str(folder), "nii": str(tmp_path / "ct.nii")})
    np.testing.assert_allclose(out["dcm"].affine.numpy(), ref.affine.numpy(), atol=1e-3)
    np.testing.assert_array_equal(out["dcm"].numpy(), img[0].numpy())
    nib_ref = LoadImage(reader="NibabelReader", image_only=True)(str(tmp_path / "ct.nii"))
    np.testing.assert_array_equal(out["nii"].numpy(), nib_ref.numpy())
    np.testing.assert_allclose(out["nii"].affine.numpy(), affine)
    assert set(out["dcm"].meta) >= {"spatial_shape", "original_channel_dim", "spacing", "filename_or_obj"}
    assert out["nii"].meta["original_channel_dim"] == "no_channel"
    np.testing.assert_allclose(out["nii"].meta["spacing"], (0.9, 0.9, 2.0))


@pytest.mark.realdata
@pytest.mark.parametrize(
    "folder, n, syntax, spacing",
    [
        ("ircad_patient_01/PATIENT_DICOM", 129, "RLE Lossless", (0.57, 0.57, 1.6)),
        ("totalsegmentator_example/example_ct_dicom", 20, "JPEG 2000 Image Compression (Lossless Only)", None),
    ],
    ids=["ircad-rle", "totalsegmentator-j2k"],
)
def test_real_ct_series(medkit_data, folder, n, syntax, spacing):
    path = os.path.join(medkit_data, "abdominal_ct", folder)
    s = read_ct_series(path)
    assert s.problems == [] and len(s.files) == n
    assert s.array.shape == (512, 512, n) and s.meta["TransferSyntaxes"] == [syntax]
    if spacing:
        assert s.spacing == pytest.approx(spacing, abs=1e-3)
    assert np.percentile(s.array, 1) < -900  # air around the patient
    assert ((s.array > 0) & (s.array < 100)).mean() > 0.05  # soft tissue
    ref = _itk(path)
    np.testing.assert_allclose(s.affine, ref.affine.numpy(), atol=1e-3)
    np.testing.assert_allclose(s.array, ref.numpy(), atol=1e-3)


@pytest.mark.realdata
def test_real_nifti(medkit_data):
    path = os.path.join(medkit_data, "abdominal_ct", "totalsegmentator_example", "example_ct.nii.gz")
    out = LoadImaged("image", reader=CTReader(), image_only=True)({"image": path})["image"]
    array, affine, meta = load_ct(path)
    assert array.shape == tuple(out.shape) == (122, 101, 112)
    assert meta["spacing"] == pytest.approx((3.0, 3.0, 3.0))
    np.testing.assert_allclose(out.affine.numpy(), affine)
    assert np.percentile(array, 1) < -900 and ((array > 0) & (array < 100)).mean() > 0.05
