"""Chest radiograph reading: PNG/JPEG (1 or 3 channels to 1) and DICOM (MONOCHROME1, rescale, VOI LUT).

Arrays are returned row-major, ``(rows, columns)`` as displayed, in float32. DICOM pixel data in
compressed transfer syntaxes (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE) is decoded by the
pylibjpeg plugins that medkit depends on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, ensure_tuple

from medkit.errors import InputFileError
from medkit.io.header import (
    ImageHeader,
    broken_link_problem,
    check_pixels,
    dicom_header,
    open_raster,
    raster_header,
)

__all__ = [
    "XRayReader",
    "read_xray",
    "colour_spread",
    "read_xray_header",
    "is_dicom_file",
    "RASTER_SUFFIXES",
    "DICOM_SUFFIXES",
]

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (``DICM`` magic at byte 128) or has a DICOM suffix."""
    path = os.fspath(path)
    if path.lower().endswith(DICOM_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _read_raster(path: str) -> tuple[np.ndarray, dict]:
    try:
        with open_raster(path) as im:  # header only: refuses bombs and giant images before decoding
            im.load()
            mode = im.mode
            spread = 0.0
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im).astype(np.float32)
            else:
                if mode not in ("1", "L", "LA"):  # colour or palette: how far its channels differ
                    spread = colour_spread(np.asarray(im.convert("RGB")))
                arr = np.asarray(im.convert("L"), dtype=np.float32)
    except OSError as e:  # truncated files, broken streams
        raise InputFileError(path, f"cannot decode image ({e})") from None
    if arr.ndim != 2:
        raise InputFileError(path, f"expected a 2D image, got array of shape {arr.shape}")
    meta = {"source_mode": mode, "pixel_spacing": (1.0, 1.0), "modality": "CR", "frames": 1, "colour_spread": spread}
    return arr, meta


def colour_spread(rgb: np.ndarray) -> float:
    """How far the channels of a ``(rows, columns, 3+)`` image differ: the mean over pixels of the largest minus the
    smallest channel, as a fraction of the image's value range; ~0 for a grey image stored as colour, large for a
    photograph or a 3-sequence MRI slice."""
    rgb = np.asarray(rgb)[..., :3].astype(np.float32)
    value_range = float(rgb.max() - rgb.min())
    if value_range <= 0:
        return 0.0
    return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean() / value_range)


def _read_dicom(path: str) -> tuple[np.ndarray, dict]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as e:
        raise InputFileError(path, f"not a readable DICOM file ({e})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputFileError(path, "DICOM file has no pixel data")
    rows, columns, frames = (int(ds.get(k, 0) or 0) for k in ("Rows", "Columns", "NumberOfFrames"))
    check_pixels(path, ImageHeader(rows, columns, frames=max(frames, 1)))  # before decoding
    try:
        arr = ds.pixel_array
    except Exception as e:  # decoder errors come in many types
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise InputFileError(path, f"cannot decode DICOM pixel data (transfer syntax {ts}: {e})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames > 1:
        arr = arr[0]
    spread = 0.0
    if photometric.startswith("MONOCHROME"):
        arr = apply_modality_lut(arr, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            arr = apply_voi_lut(arr, ds)
        arr = np.asarray(arr, dtype=np.float32)
        if photometric == "MONOCHROME1":
            arr = arr.max() + arr.min() - arr
    else:  # colour radiograph (rare): pydicom returns RGB for YBR after conversion
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            spread = colour_spread(arr)
            arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if arr.ndim != 2:
        raise InputFileError(path, f"expected a 2D radiograph, got pixel array of shape {arr.shape}")
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1.0, 1.0)
    meta = {
        "source_mode": photometric,
        "pixel_spacing": tuple(float(s) for s in spacing),
        "modality": str(ds.get("Modality", "")),
        "patient_id": str(ds.get("PatientID", "")),
        "frames": n_frames,
        "colour_spread": spread,
    }
    return arr, meta


def read_xray(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read one radiograph as a float32 ``(rows, columns)`` array and a metadata dict.

    Args:
        path: a PNG/JPEG/BMP/TIFF file or a DICOM file (with or without a ``.dcm`` suffix).

    Returns:
        the image and a dict with ``source_mode``, ``pixel_spacing`` (row, column mm), ``modality``, ``frames``
        (a multi-frame DICOM's NumberOfFrames; only the first frame is returned) and ``colour_spread``
        (:func:`colour_spread` of a colour file, 0 for a grey one).

    Raises:
        InputFileError: the file is missing, empty, truncated, not an image or a DICOM without pixels.
        TooManyPixelsError: its header claims more than ``medkit.io.header.MAX_PIXELS`` pixels (nothing decoded).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, broken_link_problem(path) or "file not found")
    if os.path.getsize(path) == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    if is_dicom_file(path):
        arr, meta = _read_dicom(path)
    else:
        arr, meta = _read_raster(path)
    if arr.size == 0:
        raise InputFileError(path, "image has no pixels")
    return arr, meta


def read_xray_header(path: str | os.PathLike) -> ImageHeader:
    """The header of a radiograph (nothing decoded): what ``read_xray`` checks before decoding.

    Raises:
        InputFileError: the file is missing, empty, not an image or a DICOM without an image.
        TooManyPixelsError: its header claims more than ``medkit.io.header.MAX_PIXELS`` pixels.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, broken_link_problem(path) or "file not found")
    if os.path.getsize(path) == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    return dicom_header(path) if is_dicom_file(path) else raster_header(path)


class XRayReader(ImageReader):
    """MONAI ``ImageReader`` for chest radiographs, usable as ``LoadImaged(reader=XRayReader())``.

    Produces one 2D channel-less image per file (``original_channel_dim`` is ``"no_channel"``) so that
    ``LoadImaged(..., ensure_channel_first=True)`` yields ``(1, rows, columns)``.
    The affine maps (row, column) indices to millimetres using the pixel spacing when DICOM gives one.
    """

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        for name in ensure_tuple(filename):
            lower = os.fspath(name).lower()
            if not (lower.endswith(RASTER_SUFFIXES) or is_dicom_file(name)):
                return False
        return True

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> list[tuple]:
        return [(os.fspath(p), *read_xray(p)) for p in ensure_tuple(data)]

    def get_data(self, img: list[tuple]) -> tuple[np.ndarray, dict]:
        arrays, meta = [], {}
        for path, arr, info in img:
            arrays.append(arr)
            if not meta:
                sr, sc = info["pixel_spacing"]
                meta = {
                    MetaKeys.SPATIAL_SHAPE: np.asarray(arr.shape),
                    MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
                    MetaKeys.AFFINE: np.diag([sr, sc, 1.0, 1.0]),
                    MetaKeys.ORIGINAL_AFFINE: np.diag([sr, sc, 1.0, 1.0]),
                    MetaKeys.SPACE: "RAS",
                    "source_mode": info["source_mode"],
                    "modality": info.get("modality", ""),
                    "frames": info.get("frames", 1),
                    "colour_spread": info.get("colour_spread", 0.0),
                    "filename_or_obj": path,
                }
        if len(arrays) == 1:
            return arrays[0], meta
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays, axis=0), meta
