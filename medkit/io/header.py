"""Header-level facts about an image file (size, channels) and the pixel-count limit checked before decoding.

Reading a header costs a few hundred bytes; decoding a 20000 x 20000 "decompression bomb" costs gigabytes. Every
reader of ``medkit.io`` and every datalist builder of ``medkit.data`` asks this module first, so a giant image is
refused with one line naming it before any pixel is decoded.

``MAX_PIXELS`` (about 50 megapixels, several times the largest radiograph) is the limit; set the environment
variable ``MEDKIT_MAX_PIXELS`` or assign ``medkit.io.header.MAX_PIXELS`` to change it.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from medkit.errors import InputFileError

__all__ = [
    "MAX_PIXELS",
    "TooManyPixelsError",
    "ImageHeader",
    "check_pixels",
    "open_raster",
    "raster_header",
    "tiff_header",
    "dicom_header",
    "broken_link_problem",
]

#: the most pixels (rows x columns x frames) an image may have; larger ones are refused before decoding
MAX_PIXELS: int = int(os.environ.get("MEDKIT_MAX_PIXELS") or 50_000_000)

_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is not thread-safe; header reads are cheap, so serialise them
_PIL_PIXELS = re.compile(r"\((\d+) pixels\)")


class TooManyPixelsError(InputFileError):
    """An image whose header claims more pixels than ``MAX_PIXELS`` (a decompression bomb or a giant scan)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: ``rows`` x ``columns`` pixels, ``channels`` samples per pixel, ``frames``."""

    rows: int
    columns: int
    channels: int = 1
    frames: int = 1
    mode: str = ""

    @property
    def pixels(self) -> int:
        return self.rows * self.columns * self.frames


def _limit_problem(pixels: int, size: str, limit: int) -> str:
    return f"image of {size}{pixels:,} pixels exceeds the limit of {limit:,} (MEDKIT_MAX_PIXELS); not decoded"


def check_pixels(path: str | os.PathLike, header: ImageHeader, limit: int | None = None) -> ImageHeader:
    """Return ``header`` when its image has pixels and at most ``limit`` (default ``MAX_PIXELS``) of them.

    Raises:
        TooManyPixelsError: more than ``limit`` pixels.
        InputFileError: no pixels.
    """
    limit = MAX_PIXELS if limit is None else int(limit)
    if header.pixels == 0:
        raise InputFileError(path, "image has no pixels")
    if header.pixels > limit:
        frames = f"x{header.frames} frames" if header.frames > 1 else ""
        size = f"{header.columns}x{header.rows}{frames} = "
        raise TooManyPixelsError(path, _limit_problem(header.pixels, size, limit))
    return header


def open_raster(path: str | os.PathLike, limit: int | None = None) -> Any:
    """Open a PNG/JPEG/BMP/TIFF lazily with Pillow (header only) and check its size against ``limit``.

    Pillow's own decompression-bomb warning or error is replaced by this module's one-line error.

    Returns:
        the open ``PIL.Image.Image`` (no pixel decoded yet); close it, e.g. ``with open_raster(p) as im``.

    Raises:
        TooManyPixelsError: more pixels than ``limit`` (default ``MAX_PIXELS``).
        InputFileError: not an image Pillow can identify, or no pixels.
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        match = _PIL_PIXELS.search(str(e))
        pixels = int(match.group(1)) if match else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        limit = MAX_PIXELS if limit is None else int(limit)
        raise TooManyPixelsError(path, _limit_problem(pixels, "", limit)) from None
    except UnidentifiedImageError:
        raise InputFileError(path, "not a readable image (unknown or corrupt format)") from None
    except OSError as e:
        raise InputFileError(path, f"cannot open image ({e.strerror or e})") from None
    try:
        check_pixels(path, ImageHeader(im.height, im.width, len(im.getbands()), 1, im.mode), limit)
    except InputFileError:
        im.close()
        raise
    return im


def raster_header(path: str | os.PathLike, limit: int | None = None) -> ImageHeader:
    """The header of a PNG/JPEG/BMP/TIFF read with Pillow, checked against ``limit``; see ``open_raster``."""
    with open_raster(path, limit) as im:
        return ImageHeader(im.height, im.width, len(im.getbands()), 1, im.mode)


def tiff_header(path: str | os.PathLike, limit: int | None = None) -> ImageHeader:
    """The first page's header of a TIFF (``tifffile``, else Pillow), checked against ``limit``.

    Raises:
        TooManyPixelsError: more pixels than ``limit`` (default ``MAX_PIXELS``).
        InputFileError: not a TIFF that either library can parse, or no pixels.
    """
    path = os.fspath(path)
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            header = ImageHeader(int(page.imagelength), int(page.imagewidth), int(page.samplesperpixel))
    except Exception as tiff_error:  # noqa: BLE001 - any parser failure: ask Pillow, then report the first
        try:
            with open_raster(path, limit) as im:
                if im.format != "TIFF":
                    raise InputFileError(path, f"a {im.format} image, not a TIFF")
                return ImageHeader(im.height, im.width, len(im.getbands()), 1, im.mode)
        except TooManyPixelsError:
            raise
        except InputFileError:
            raise InputFileError(path, f"cannot read TIFF ({type(tiff_error).__name__}: {tiff_error})") from None
    return check_pixels(path, header, limit)


def dicom_header(path: str | os.PathLike, limit: int | None = None) -> ImageHeader:
    """Rows, columns, samples per pixel and frames of a DICOM file (pixel data not read), checked against ``limit``.

    Raises:
        TooManyPixelsError: more pixels than ``limit`` (default ``MAX_PIXELS``), all frames counted.
        InputFileError: not a readable DICOM file, or one without an image.
    """
    import pydicom

    path = os.fspath(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # noqa: BLE001 - pydicom raises several types for damaged files
        raise InputFileError(path, f"not a readable DICOM file ({e})") from None
    try:
        header = ImageHeader(
            int(ds.get("Rows", 0) or 0),
            int(ds.get("Columns", 0) or 0),
            int(ds.get("SamplesPerPixel", 1) or 1),
            int(ds.get("NumberOfFrames", 1) or 1),
            str(ds.get("PhotometricInterpretation", "")),
        )
    except (TypeError, ValueError) as e:
        raise InputFileError(path, f"DICOM image size is not a number ({e})") from None
    if header.pixels == 0:
        raise InputFileError(path, "DICOM file has no pixel data")
    return check_pixels(path, header, limit)


def broken_link_problem(path: str | os.PathLike) -> str | None:
    """``"broken symbolic link to <target> (target missing)"`` when ``path`` is one, else ``None``."""
    path = os.fspath(path)
    if os.path.islink(path) and not os.path.exists(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"broken symbolic link to {target} (target missing)"
    return None
