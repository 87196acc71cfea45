"""CT volumes: one DICOM series from a folder, or a NIfTI file, as Hounsfield units with a RAS affine.

Arrays are float32 ``(columns, rows, slices)``: index ``(i, j, k)`` is ``i`` along a DICOM row (the
x of a displayed slice), ``j`` along a DICOM column (its y) and ``k`` the slice, sorted by position
along the slice normal. The 4x4 affine maps ``(i, j, k)`` to RAS millimetres, which is what
``monai.data.ITKReader(affine_lps_to_ras=True)`` gives for the same series; NIfTI files keep the
layout and affine nibabel reads from them. Pixel data in any transfer syntax that pydicom and the
pylibjpeg plugins decode (uncompressed, RLE Lossless, JPEG, JPEG-LS, JPEG 2000) is read.

Problems that still leave a usable volume (files of another series, duplicate or missing slices,
uneven spacing) are listed in ``CTSeries.problems``, one line each naming the folder or the file;
``strict=True`` turns them into an :class:`~medkit.errors.InputFileError`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, ensure_tuple

from medkit.errors import InputFileError
from medkit.io.xray import DICOM_SUFFIXES

__all__ = ["CTSeries", "read_ct_series", "load_ct", "CTSeriesReader", "CTReader", "NIFTI_SUFFIXES", "VOLUME_SUFFIXES"]

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: files that hold a whole volume: NIfTI and NRRD (the rest is DICOM series folders)
VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, ".nrrd")

_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class CTSeries:
    """One CT series read by :func:`read_ct_series`.

    Attributes:
        array: float32 Hounsfield units shaped ``(columns, rows, slices)``.
        affine: 4x4 float64 mapping ``(i, j, k)`` indices to RAS millimetres.
        spacing: column spacing, row spacing and slice spacing in millimetres.
        files: the files used, in slice order.
        meta: ``PatientID``, ``SeriesInstanceUID``, ``SeriesDescription``, ``Modality`` and
            ``TransferSyntaxes`` (the names of the transfer syntaxes of the files used).
        problems: one line per problem found, each naming the folder or the file.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    files: list[str]
    meta: dict[str, Any]
    problems: list[str] = field(default_factory=list)


@dataclass
class _Slice:
    path: str
    header: Any
    position: float | None = None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats from a multi-valued DICOM element, or ``None`` when absent or malformed."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _read_header(path: str, problems: list[tuple[str, str]]) -> Any | None:
    """The header of a DICOM image file; ``None`` (with a warning or a problem) for anything else."""
    import pydicom

    name = os.path.basename(path)
    if name.startswith("."):
        logger.warning("%s: hidden file; skipped", path)
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as e:
        problems.append((path, f"cannot open file ({e}); skipped"))
        return None
    claims_dicom = head[128:132] == b"DICM" or name.lower().endswith(DICOM_SUFFIXES)
    if not head:
        if claims_dicom:
            problems.append((path, "empty file; skipped"))
        else:
            logger.warning("%s: empty file, not DICOM; skipped", path)
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=not claims_dicom)
        # also false (or raising) on the garbage that a forced read makes of other files
        ok = bool(ds.get("Rows")) and bool(ds.get("Columns"))
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on broken files
        if claims_dicom:
            problems.append((path, f"unreadable DICOM header ({type(e).__name__}: {e}); skipped"))
        else:
            logger.warning("%s: not a DICOM file; skipped", path)
        return None
    if ok:
        return ds
    if not claims_dicom:
        logger.warning("%s: not a DICOM file; skipped", path)
        return None
    sop_class = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    if not sop_class:
        problems.append((path, "unreadable DICOM header (no SOP class, no image size); skipped"))
    elif "Image Storage" in getattr(sop_class, "name", ""):
        problems.append((path, f"{sop_class.name} header without Rows/Columns (truncated?); skipped"))
    else:  # a DICOMDIR, a structured report, a segmentation object...
        logger.warning("%s: DICOM %s, not an image; skipped", path, getattr(sop_class, "name", sop_class))
    return None


def _group_key(ds: Any) -> tuple:
    iop = _floats(ds.get("ImageOrientationPatient"), 6) or _AXIAL
    return (str(ds.get("SeriesInstanceUID", "")), int(ds.Rows), int(ds.Columns), tuple(round(v, 4) for v in iop))


def _describe(key: tuple) -> str:
    uid, rows, cols, iop = key
    return f"series {uid or '(no SeriesInstanceUID)'}, {rows}x{cols}, orientation {list(iop)}"


def _decode(sl: _Slice, problems: list[tuple[str, str]]) -> tuple[np.ndarray, str] | None:
    """Hounsfield units of one slice as float32 ``(rows, columns)`` and its transfer syntax name."""
    import pydicom

    try:
        ds = pydicom.dcmread(sl.path)
        ts = ds.file_meta.TransferSyntaxUID
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            problems.append((sl.path, "multi-frame file, not a series slice; skipped"))
            return None
        pixels = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - decoder errors come in many types
        problems.append((sl.path, f"cannot decode pixel data ({type(e).__name__}: {e}); skipped"))
        return None
    if pixels.shape != (int(ds.Rows), int(ds.Columns)):
        problems.append((sl.path, f"pixel array of shape {pixels.shape}, not a single-channel slice; skipped"))
        return None
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return (pixels.astype(np.float64) * slope + intercept).astype(np.float32), ts.name


def _sort(slices: list[_Slice], normal: np.ndarray, problems: list[tuple[str, str]], folder: str) -> list[_Slice]:
    """Slices ordered along ``normal`` (or by InstanceNumber when a position is missing), duplicates dropped."""
    positions = [_floats(s.header.get("ImagePositionPatient"), 3) for s in slices]
    missing = sum(p is None for p in positions)
    if missing:
        problems.append(
            (folder, f"ImagePositionPatient missing in {missing} of {len(slices)} files; sorted by InstanceNumber")
        )

        def number(s: _Slice) -> float:
            try:
                return float(s.header.get("InstanceNumber"))
            except (TypeError, ValueError):
                return float("inf")

        return sorted(slices, key=number)  # stable: files without a number stay in name order, last
    for s, p in zip(slices, positions):
        s.position = float(np.dot(normal, p))
    ordered = sorted(slices, key=lambda s: s.position)
    kept = [ordered[0]]
    for s in ordered[1:]:
        if abs(s.position - kept[-1].position) < 1e-3:
            problems.append((s.path, f"duplicate slice position z={s.position:.2f} of {kept[-1].path}; skipped"))
        else:
            kept.append(s)
    return kept


def _slice_spacing(slices: list[_Slice], problems: list[tuple[str, str]], folder: str) -> float:
    """Median distance between neighbouring slices, with gaps and uneven steps reported."""
    header = slices[0].header
    fallback = float(header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0)
    if len(slices) < 2:
        problems.append((folder, f"only {len(slices)} slice; slice spacing {fallback:g} mm taken from the header"))
        return fallback
    if any(s.position is None for s in slices):
        return fallback
    z = np.array([s.position for s in slices])
    steps = np.diff(z)
    spacing = float(np.median(steps))
    uneven = []
    for a, b, step in zip(z[:-1], z[1:], steps):
        if step > 1.5 * spacing:
            problems.append((folder, f"missing slices between z={a:.2f} and z={b:.2f} ({step:.2f} mm apart)"))
        elif abs(step - spacing) > max(0.01 * spacing, 1e-3):
            uneven.append(step)
    if uneven:
        low, high = min(min(uneven), spacing), max(max(uneven), spacing)
        problems.append(
            (folder, f"non-uniform slice spacing ({low:.3f} to {high:.3f} mm, median {spacing:.3f} mm used)")
        )
    return spacing


def _check_tilt(slices: list[_Slice], normal: np.ndarray, problems: list[tuple[str, str]], folder: str) -> None:
    """Report slices whose positions drift sideways (gantry tilt): the affine cannot express the shear."""
    if len(slices) < 2 or any(s.position is None for s in slices):
        return
    first = np.array(_floats(slices[0].header.ImagePositionPatient, 3))
    last = np.array(_floats(slices[-1].header.ImagePositionPatient, 3))
    offset = last - first
    sideways = np.linalg.norm(offset - np.dot(offset, normal) * normal)
    if sideways > 0.01 * max(np.linalg.norm(offset), 1.0):
        problems.append((folder, f"slice positions drift {sideways:.2f} mm off the slice normal (gantry tilt?)"))


def _format(problems: list[tuple[str, str]]) -> list[str]:
    return [f"{path}: {text}" for path, text in problems]


def _raise_if_strict(strict: bool, folder: str, problems: list[tuple[str, str]]) -> None:
    if not strict or not problems:
        return
    path, text = problems[0]
    first = text if path == folder else f"{os.path.basename(path)}: {text}"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise InputFileError(folder, f"{first}{more}")


def read_ct_series(folder: str | os.PathLike, strict: bool = False) -> CTSeries:
    """Read the CT series in ``folder`` (files of any name) as Hounsfield units with a RAS affine.

    Hidden files, non-DICOM files and DICOM files without an image (a ``DICOMDIR``) are skipped with a
    logged warning. Of the DICOM images, the most common (SeriesInstanceUID, Rows, Columns,
    ImageOrientationPatient) group is kept and sorted along the slice normal.

    Args:
        folder: a folder holding one DICOM series.
        strict: raise on any problem instead of listing it in ``CTSeries.problems``.

    Returns:
        the series; see :class:`CTSeries` for the array layout and the affine.

    Raises:
        InputFileError: ``folder`` is not a folder or holds no readable DICOM slice; with ``strict``, any
            problem (unreadable or skipped files, duplicate or missing slices, uneven spacing, one slice).
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputFileError(folder, "not a folder" if os.path.exists(folder) else "no such folder")
    problems: list[tuple[str, str]] = []
    headers: list[_Slice] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file():
            logger.warning("%s: not a file; skipped", entry.path)
            continue
        ds = _read_header(entry.path, problems)
        if ds is not None:
            headers.append(_Slice(entry.path, ds))
    if not headers:
        unreadable = f" ({len(problems)} unreadable: {problems[0][1]})" if problems else ""
        raise InputFileError(folder, f"no readable DICOM image{unreadable}")

    keys = [_group_key(s.header) for s in headers]
    groups = Counter(keys)
    key = groups.most_common(1)[0][0]
    for s, other in zip(headers, keys):
        if other != key:
            problems.append((s.path, f"{_describe(other)} differs from the {groups[key]} files kept; skipped"))
    slices = [s for s, other in zip(headers, keys) if other == key]
    header = slices[0].header
    iop = _floats(header.get("ImageOrientationPatient"), 6)
    if iop is None:
        problems.append((folder, "no ImageOrientationPatient; axial slices assumed"))
        iop = _AXIAL
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row_dir, col_dir)
    pixel_spacing = _floats(header.get("PixelSpacing"), 2)
    if pixel_spacing is None:
        problems.append((folder, "no PixelSpacing; 1 mm pixels assumed"))
        pixel_spacing = (1.0, 1.0)
    row_spacing, column_spacing = pixel_spacing  # DICOM: between rows, then between columns
    slices = _sort(slices, normal, problems, folder)
    _raise_if_strict(strict, folder, problems)

    planes, used, syntaxes = [], [], set()
    for s in slices:
        decoded = _decode(s, problems)
        if decoded is not None:
            planes.append(decoded[0].T)  # (rows, columns) -> (columns, rows)
            used.append(s)
            syntaxes.add(decoded[1])
    if not planes:
        raise InputFileError(folder, f"no decodable DICOM slice ({problems[-1][1]})")
    slice_spacing = _slice_spacing(used, problems, folder)
    _check_tilt(used, normal, problems, folder)
    _raise_if_strict(strict, folder, problems)

    affine = np.eye(4)
    affine[:3, 0] = row_dir * column_spacing  # i steps along a row, one column at a time
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = normal * slice_spacing
    origin = _floats(used[0].header.get("ImagePositionPatient"), 3)
    affine[:3, 3] = origin if origin is not None else (0.0, 0.0, 0.0)
    first = used[0].header
    meta = {
        "PatientID": str(first.get("PatientID", "")),
        "SeriesInstanceUID": str(first.get("SeriesInstanceUID", "")),
        "SeriesDescription": str(first.get("SeriesDescription", "")),
        "Modality": str(first.get("Modality", "")),
        "TransferSyntaxes": sorted(syntaxes),
    }
    for line in _format(problems):
        logger.warning(line)
    return CTSeries(
        array=np.stack(planes, axis=-1),
        affine=_LPS_TO_RAS @ affine,
        spacing=(float(column_spacing), float(row_spacing), float(slice_spacing)),
        files=[s.path for s in used],
        meta=meta,
        problems=_format(problems),
    )


def _load_nifti(path: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import nibabel as nib

    if os.path.getsize(path) == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    try:
        img = nib.load(path)
        array = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as e:  # noqa: BLE001 - nibabel raises many types on broken files
        problem = str(e).replace(path, os.path.basename(path))
        raise InputFileError(path, f"cannot read NIfTI ({type(e).__name__}: {problem})") from None
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputFileError(path, f"expected a 3D volume, got array of shape {array.shape}")
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    return array, affine, {"format": "NIfTI", "spacing": spacing, "files": [path], "problems": []}


def _load_nrrd(path: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A NRRD volume through ITK, as ``(array (i, j, k), RAS affine, meta)`` (NRRD's space is LPS, as DICOM's)."""
    import itk

    if os.path.getsize(path) == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    try:
        img = itk.imread(path, itk.F)
    except Exception as e:  # noqa: BLE001 - ITK raises RuntimeError with its whole stack as text
        raise InputFileError(path, f"cannot read NRRD ({type(e).__name__})") from None
    array = np.ascontiguousarray(itk.array_from_image(img).T, dtype=np.float32)
    if array.ndim != 3:
        raise InputFileError(path, f"expected a 3D volume, got array of shape {array.shape}")
    spacing = tuple(float(v) for v in img.GetSpacing())
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(itk.array_from_matrix(img.GetDirection()), dtype=np.float64) @ np.diag(spacing)
    affine[:3, 3] = np.asarray(img.GetOrigin(), dtype=np.float64)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS -> RAS
    return array, affine, {"format": "NRRD", "spacing": spacing, "files": [path], "problems": []}


def _load_series(folder: str, strict: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """:func:`read_ct_series` as ``(array, affine, meta)``, the meta as :func:`load_ct` describes it."""
    s = read_ct_series(folder, strict=strict)
    return (
        s.array,
        s.affine,
        {"format": "DICOM", "spacing": s.spacing, "files": s.files, "problems": s.problems, **s.meta},
    )


def load_ct(path: str | os.PathLike, strict: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load a CT volume from a DICOM series folder, a NIfTI file or a NRRD file.

    Args:
        path: a folder holding one DICOM series, or a ``.nii``/``.nii.gz``/``.nrrd`` file.
        strict: for a series, raise on any problem (see :func:`read_ct_series`).

    Returns:
        the float32 volume ``(i, j, k)``, its 4x4 RAS affine and a metadata dict with ``format``
        (``"DICOM"``, ``"NIfTI"`` or ``"NRRD"``), ``spacing`` (mm along i, j, k), ``files`` and ``problems``, plus the
        series' ``PatientID``, ``SeriesInstanceUID``, ``SeriesDescription``, ``Modality`` and
        ``TransferSyntaxes`` for DICOM.

    Raises:
        InputFileError: a missing path, a path of another kind, or one that cannot be read.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _load_series(path, strict)
    if not os.path.exists(path):
        raise InputFileError(path, "no such file or folder")
    if path.lower().endswith(".nrrd"):
        return _load_nrrd(path)
    if not path.lower().endswith(NIFTI_SUFFIXES):
        raise InputFileError(path, "not a DICOM series folder or a NIfTI file (.nii, .nii.gz) or NRRD file (.nrrd)")
    return _load_nifti(path)


def _monai_meta(path: str, array: np.ndarray, affine: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
    """MONAI metadata of one volume; lists become strings so that meta dicts of a batch collate."""
    meta: dict[str, Any] = {
        MetaKeys.AFFINE: affine.copy(),
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape),
        MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
        MetaKeys.SPACE: "RAS",
        "filename_or_obj": path,
        "spacing": np.asarray(info["spacing"], dtype=np.float64),
        "format": info["format"],
        "problems": "; ".join(info["problems"]),
        "n_files": len(info["files"]),
    }
    for name in ("PatientID", "SeriesInstanceUID", "SeriesDescription", "Modality"):
        if name in info:
            meta[name] = info[name]
    if "TransferSyntaxes" in info:
        meta["TransferSyntaxes"] = ", ".join(info["TransferSyntaxes"])
    return meta


def _stack(volumes: list[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]]) -> tuple[np.ndarray, dict]:
    """One volume as is, or several of one shape stacked as channels (first dim); meta from the first."""
    path, array, affine, info = volumes[0]
    meta = _monai_meta(path, array, affine, info)
    if len(volumes) == 1:
        return array, meta
    for other_path, other, _, _ in volumes[1:]:
        if other.shape != array.shape:
            raise InputFileError(other_path, f"volume shape {other.shape} differs from {path} {array.shape}")
    meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
    return np.stack([v[1] for v in volumes], axis=0), meta


class CTReader(ImageReader):
    """MONAI ``ImageReader`` for CT in any form: DICOM series folders, NIfTI and NRRD files (:func:`load_ct`).

    One ``LoadImaged(keys, reader=CTReader())`` loads both, with the same meta keys as
    :class:`CTSeriesReader`.

    Args:
        strict: raise on any problem in a series instead of listing it in the ``problems`` meta entry.
    """

    def __init__(self, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        return all(os.path.isdir(n) or os.fspath(n).lower().endswith(VOLUME_SUFFIXES) for n in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> list[tuple]:
        strict = kwargs.get("strict", self.strict)
        return [(os.fspath(n), *load_ct(n, strict=strict)) for n in ensure_tuple(data)]

    def get_data(self, img: list[tuple]) -> tuple[np.ndarray, dict]:
        return _stack(img)


class CTSeriesReader(CTReader):
    """MONAI ``ImageReader`` for DICOM series folders only, usable as ``LoadImaged(keys, reader=CTSeriesReader())``.

    Gives the ``(columns, rows, slices)`` Hounsfield volume of :func:`read_ct_series` with a RAS
    ``affine``, ``spatial_shape``, ``spacing`` and ``original_channel_dim`` ``"no_channel"``; several
    folders are stacked as channels.

    Args:
        strict: raise on any problem in a series instead of listing it in the ``problems`` meta entry.
    """

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        return all(os.path.isdir(n) for n in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> list[tuple]:
        strict = kwargs.get("strict", self.strict)
        return [(os.fspath(n), *_load_series(os.fspath(n), strict)) for n in ensure_tuple(data)]
