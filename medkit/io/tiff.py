"""TIFF slices of the LGG MRI set (and any other 2D TIFF), following MONAI's ``ImageReader`` contract.

``tifffile`` decodes uncompressed, deflate (with or without predictor), packbits and LZMA TIFFs itself;
compressions it needs ``imagecodecs`` for (LZW, JPEG) fall back to Pillow, so "any TIFF compression"
a scanner or an export tool writes is read without another dependency.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, ensure_tuple

from medkit.errors import InputFileError
from medkit.io.header import broken_link_problem, tiff_header

__all__ = ["TIFF_SUFFIXES", "read_tiff", "read_mask", "TiffReader"]

TIFF_SUFFIXES = (".tif", ".tiff")


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """The first page of a TIFF as ``(rows, columns)`` or ``(rows, columns, channels)``.

    Raises:
        InputFileError: missing, empty, not a TIFF, or a page that no decoder can read.
        TooManyPixelsError: the page's header claims more than ``medkit.io.header.MAX_PIXELS`` pixels (nothing
            decoded).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, broken_link_problem(path) or "no such file")
    if os.path.getsize(path) == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    tiff_header(path)  # refuses giant pages (and files no TIFF parser reads) before decoding
    try:
        import tifffile

        arr = tifffile.imread(path, key=0)
    except Exception as tiff_error:  # noqa: BLE001 - any decoder failure: try Pillow, then report the first
        try:
            from PIL import Image

            with Image.open(path) as im:
                if im.format != "TIFF":
                    raise ValueError(f"a {im.format} image, not a TIFF")
                arr = np.asarray(im)
        except Exception:  # noqa: BLE001
            raise InputFileError(path, f"cannot read TIFF ({type(tiff_error).__name__}: {tiff_error})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] <= 4 < arr.shape[-1]:  # planar (channels, rows, columns) -> channel-last
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 2:
        raise InputFileError(path, f"not a 2D image (array shape {arr.shape})")
    return arr


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A binary mask as ``uint8`` 0/1 of shape ``(rows, columns)``: any non-zero pixel is foreground.

    The LGG set stores masks as 0/255; other tools write 0/1 or RGB masks, all accepted.
    """
    arr = read_tiff(path)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    return (arr > 0).astype(np.uint8)


class TiffReader(ImageReader):
    """MONAI ``ImageReader`` for 2D TIFF slices, usable as ``LoadImaged(reader=TiffReader())``.

    Arrays are row-major ``(rows, columns[, channels])``; ``original_channel_dim`` is ``-1`` for
    multi-channel slices and ``"no_channel"`` for masks, so ``ensure_channel_first=True`` gives
    ``(C, rows, columns)``. Several files are stacked as channels. Pixel spacing is unknown in these
    files; the affine is the identity (1 pixel = 1 unit).
    """

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        return all(os.fspath(n).lower().endswith(TIFF_SUFFIXES) for n in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> list[tuple]:
        return [(os.fspath(p), read_tiff(p)) for p in ensure_tuple(data)]

    def get_data(self, img: list[tuple]) -> tuple[np.ndarray, dict]:
        paths = [p for p, _ in img]
        arrays = [a for _, a in img]
        first = arrays[0]
        for p, a in zip(paths[1:], arrays[1:]):
            if a.shape[:2] != first.shape[:2]:
                raise InputFileError(p, f"size {a.shape[:2]} differs from {paths[0]} {first.shape[:2]}")
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(first.shape[:2]),
            MetaKeys.AFFINE: np.eye(3),
            MetaKeys.ORIGINAL_AFFINE: np.eye(3),
            MetaKeys.SPACE: "RAS",
            "filename_or_obj": paths[0],
        }
        if len(arrays) == 1:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if first.ndim == 3 else "no_channel"
            return first, meta
        chans = [a if a.ndim == 3 else a[..., None] for a in arrays]
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1
        return np.concatenate(chans, axis=-1), meta
