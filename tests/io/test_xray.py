from __future__ import annotations

import numpy as np
import pydicom
import pytest
from monai.transforms import LoadImaged
from PIL import Image
from pydicom.data import get_testdata_file

from medkit.errors import InputFileError
from medkit.io import XRayReader, is_dicom_file, read_xray
from medkit.transforms import LoadXRayd


def _ramp(h=20, w=30) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpeg"])
def test_gray_raster_is_row_major_float(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(_ramp()).save(path, quality=100)
    arr, meta = read_xray(path)
    assert arr.shape == (20, 30) and arr.dtype == np.float32
    if suffix == ".png":
        np.testing.assert_array_equal(arr, _ramp())


def test_rgb_png_becomes_one_channel(tmp_path):
    rgb = np.stack([_ramp()] * 3, axis=-1)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    arr, _ = read_xray(path)
    assert arr.shape == (20, 30)
    np.testing.assert_allclose(arr, _ramp(), atol=1)


def test_16bit_png_keeps_range(tmp_path):
    data = (np.arange(600).reshape(20, 30) * 100).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    arr, _ = read_xray(path)
    assert arr.max() == pytest.approx(59900)


def test_loadimaged_with_reader_gives_channel_first(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_ramp()).save(path)
    out = LoadImaged("image", reader=XRayReader(), image_only=True, ensure_channel_first=True)({"image": str(path)})
    assert tuple(out["image"].shape) == (1, 20, 30)
    out = LoadXRayd("image")({"image": str(path)})
    assert tuple(out["image"].shape) == (1, 20, 30)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("CT_small.dcm", (128, 128)),  # uncompressed, rescale slope/intercept
        ("MR_small_RLE.dcm", (64, 64)),  # RLE lossless
        ("JPEG2000.dcm", (1024, 256)),  # JPEG 2000
        ("SC_rgb_jpeg_dcmtk.dcm", (100, 100)),  # JPEG baseline, colour -> gray
    ],
)
def test_pydicom_samples(name, shape):
    path = get_testdata_file(name)
    assert is_dicom_file(path)
    arr, meta = read_xray(path)
    assert arr.shape == shape and np.isfinite(arr).all()


def test_rescale_is_applied():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    arr, _ = read_xray(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(arr, expected)


def _write_mono(tmp_path, photometric: str, window: tuple[float, float] | None = None, name="x.dcm"):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PhotometricInterpretation = photometric
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    for tag in ("WindowCenter", "WindowWidth"):
        if tag in ds:
            delattr(ds, tag)
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    path = tmp_path / name
    ds.save_as(path)
    return path, ds.pixel_array.astype(np.float32)


def test_monochrome1_is_inverted(tmp_path):
    path, raw = _write_mono(tmp_path, "MONOCHROME1")
    arr, meta = read_xray(path)
    assert meta["source_mode"] == "MONOCHROME1"
    np.testing.assert_allclose(arr, raw.max() + raw.min() - raw)


def test_voi_window_is_applied(tmp_path):
    path, raw = _write_mono(tmp_path, "MONOCHROME2", window=(1000.0, 400.0))
    arr, _ = read_xray(path)
    # a linear window maps values below 800 to its minimum and above 1200 to its maximum
    low, high = arr[raw <= 790], arr[raw >= 1210]
    assert low.size and high.size
    assert np.all(low == arr.min()) and np.all(high == arr.max())
    inside = (raw > 820) & (raw < 1180)
    assert np.all((arr[inside] > arr.min()) & (arr[inside] < arr.max()))


def test_dicom_without_suffix_is_found(tmp_path):
    target = tmp_path / "IMG0001"
    target.write_bytes(open(get_testdata_file("MR_small_RLE.dcm"), "rb").read())
    assert is_dicom_file(target)
    assert read_xray(target)[0].shape == (64, 64)


def test_bad_inputs_name_the_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpeg"
    text.write_text("not an image")
    good = tmp_path / "good.jpeg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.jpeg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    nopixels = tmp_path / "nopixels.dcm"
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(nopixels)
    cases = {
        empty: "empty",
        text: "not a readable image",
        truncated: "cannot decode",
        nopixels: "no pixel data",
        tmp_path / "missing.png": "not found",
    }
    for path, words in cases.items():
        with pytest.raises(InputFileError) as info:
            read_xray(path)
        message = str(info.value)
        assert message.startswith(str(path)) and words in message and "\n" not in message
