"""The pixel-count limit: images whose header claims too many pixels are refused with one line, nothing decoded."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from medkit.errors import InputFileError
from medkit.io import header
from medkit.io.header import TooManyPixelsError, broken_link_problem, raster_header, tiff_header
from medkit.io.tiff import read_tiff
from medkit.io.xray import read_xray, read_xray_header


def write_bomb_png(path: str | os.PathLike, width: int, height: int) -> str:
    """A PNG of a few dozen bytes whose header (IHDR) claims ``width`` x ``height`` grey pixels."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts at byte 16: width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC of chunk type + data
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> str:
    tifffile.imwrite(path, array, compression="zlib")
    return os.fspath(path)


@pytest.mark.parametrize("side", [20000, 13000])  # Pillow's own error (> 179 Mpx) and its mere warning (> 89 Mpx)
def test_bomb_png_is_refused_in_one_line_before_decoding(tmp_path, side):
    path = write_bomb_png(tmp_path / "bomb.png", side, side)
    assert os.path.getsize(path) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        for read in (read_xray, read_xray_header, raster_header):
            with pytest.raises(TooManyPixelsError) as err:
                read(path)
            message = str(err.value)
            assert message.startswith(f"{path}: image of ") and "exceeds the limit of 50,000,000" in message
            assert "\n" not in message and "MEDKIT_MAX_PIXELS" in message


def test_limit_can_be_changed(tmp_path, monkeypatch):
    path = write_bomb_png(tmp_path / "wide.png", 9000, 9000)  # 81 Mpx: over the default, under PIL's warning
    with pytest.raises(TooManyPixelsError, match="9000x9000 = 81,000,000 pixels"):
        read_xray_header(path)
    monkeypatch.setattr(header, "MAX_PIXELS", 100_000_000)
    assert read_xray_header(path).pixels == 81_000_000
    small = write_tiff(tmp_path / "small.tif", np.zeros((40, 30, 3), np.uint8))
    assert read_tiff(small).shape == (40, 30, 3)
    monkeypatch.setattr(header, "MAX_PIXELS", 1000)
    with pytest.raises(TooManyPixelsError, match=r"30x40 = 1,200 pixels exceeds the limit of 1,000"):
        read_tiff(small)


def test_tiff_header_reads_channels_without_decoding(tmp_path):
    rgb = tiff_header(write_tiff(tmp_path / "rgb.tif", np.zeros((12, 10, 3), np.uint8)))
    grey = tiff_header(write_tiff(tmp_path / "grey.tif", np.zeros((12, 10), np.uint8)))
    assert (rgb.rows, rgb.columns, rgb.channels) == (12, 10, 3) and grey.channels == 1
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputFileError, match="cannot read TIFF"):
        tiff_header(tmp_path / "bad.tif")


def test_broken_symlink_is_named(tmp_path):
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "missing.png")
    assert broken_link_problem(link) == f"broken symbolic link to {tmp_path / 'missing.png'} (target missing)"
    assert broken_link_problem(tmp_path) is None
    with pytest.raises(InputFileError, match="gone.png: broken symbolic link"):
        read_xray(link)
    with pytest.raises(InputFileError, match="gone.png: broken symbolic link"):
        read_tiff(link)


def test_dicom_over_the_limit_is_refused_before_decoding(monkeypatch):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    assert read_xray_header(path).pixels == 128 * 128
    monkeypatch.setattr(header, "MAX_PIXELS", 1000)
    with pytest.raises(TooManyPixelsError, match="128x128 = 16,384 pixels exceeds the limit of 1,000"):
        read_xray(path)


def test_inference_reports_a_bomb_as_an_error_row(tmp_path, synthetic_cxr):
    import torch
    from monai.data import DataLoader
    from monai.transforms import Compose

    from medkit.data import TolerantDataset, inference_datalist
    from medkit.transforms import xray_preprocessing

    bomb = write_bomb_png(tmp_path / "bomb.png", 13000, 13000)
    good = inference_datalist([os.path.join(synthetic_cxr, "test", "NORMAL")])[:1]
    ds = TolerantDataset(
        [*good, {"image": bomb}], Compose(xray_preprocessing(spatial_size=(32, 32))), {"image": torch.zeros(1, 32, 32)}
    )
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["error"][0] == ""
    assert batch["error"][1] == (
        f"{bomb}: image of 13000x13000 = 169,000,000 pixels exceeds the limit of 50,000,000 (MEDKIT_MAX_PIXELS); "
        "not decoded"
    )
