from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from medkit.errors import InputFileError
from medkit.io.tiff import TiffReader, read_mask, read_tiff
from medkit.transforms import LoadWithReaderd

RNG = np.random.default_rng(0)
SLICE = RNG.integers(0, 256, (32, 40, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: tifffile.imwrite(p, SLICE),  # uncompressed
        lambda p: tifffile.imwrite(p, SLICE, compression="zlib", predictor=True),  # the LGG set's deflate + predictor
        lambda p: Image.fromarray(SLICE).save(p, compression="packbits"),
        lambda p: Image.fromarray(SLICE).save(p, compression="tiff_lzw"),  # LZW: decoded through Pillow
        lambda p: Image.fromarray(SLICE).save(p, compression="tiff_adobe_deflate"),
    ],
    ids=["raw", "deflate-predictor", "packbits", "lzw", "adobe-deflate"],
)
def test_read_tiff_any_compression(tmp_path, write):
    path = tmp_path / "s.tif"
    write(str(path))
    np.testing.assert_array_equal(read_tiff(path), SLICE)


@pytest.mark.parametrize("values", [(0, 255), (0, 1)])
def test_read_mask_binarises(tmp_path, values):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 5:9] = values[1]
    tifffile.imwrite(tmp_path / "m.tif", mask, compression="zlib")
    out = read_mask(tmp_path / "m.tif")
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 1} and out.sum() == 16


def test_bad_tiffs_name_the_file(tmp_path):
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(InputFileError, match=r"empty\.tif: file is empty \(0 bytes\)"):
        read_tiff(empty)
    with pytest.raises(InputFileError, match=r"junk\.tif: cannot read TIFF"):
        read_tiff(junk)
    with pytest.raises(InputFileError, match="no such file"):
        read_tiff(tmp_path / "missing.tif")


def test_reader_gives_channel_first_slices_and_masks(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", SLICE, compression="zlib", predictor=True)
    tifffile.imwrite(tmp_path / "m.tif", (SLICE[..., 0] > 128).astype(np.uint8) * 255)
    assert TiffReader().verify_suffix(str(tmp_path / "s.tif"))
    out = LoadWithReaderd(["image", "mask"], TiffReader())(
        {"image": str(tmp_path / "s.tif"), "mask": str(tmp_path / "m.tif")}
    )
    assert tuple(out["image"].shape) == (3, 32, 40)
    assert tuple(out["mask"].shape) == (1, 32, 40)
    np.testing.assert_array_equal(out["image"][1].numpy(), SLICE[..., 1])
