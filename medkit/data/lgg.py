"""Datalist builder for the LGG MRI segmentation set (``kaggle_3m/TCGA_<site>_<id>_<date>/<case>_<n>[_mask].tif``).

Each slice is one item ``{"image", "mask", "label", "patient", "case", "slice", "tumour_pixels"}``: the label is
1 (tumour) when the mask has any foreground pixel. Slices are grouped by case folder and ordered by slice number,
and the split is by patient, so no patient has slices on both sides.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medkit.data.folders import _resolve_root, list_subfolders, probe_items, report_broken_links
from medkit.data.splits import check_split_fractions, split_fold, split_three_ways
from medkit.errors import DatasetLayoutError, InputFileError
from medkit.io.header import tiff_header
from medkit.io.tiff import TIFF_SUFFIXES, read_mask, read_tiff

__all__ = [
    "CLASS_NAMES",
    "slice_number",
    "case_of_slice",
    "patient_of_case",
    "list_case_slices",
    "build_lgg_datalist",
    "as_segmentation_datalist",
    "group_cases",
    "load_case_volume",
    "write_case_volumes",
]

CLASS_NAMES = ("no_tumour", "tumour")
_SLICE = re.compile(r"^(?P<case>.+)_(?P<n>\d+)$")
_PATIENT = re.compile(r"^(TCGA_[A-Z0-9]{2}_[A-Z0-9]{4})", re.IGNORECASE)

logger = logging.getLogger(__name__)


def slice_number(path: str) -> int | None:
    """``TCGA_CS_4942_19970222_12.tif`` -> 12; ``None`` for names without a trailing ``_<n>``."""
    match = _SLICE.match(os.path.splitext(os.path.basename(path))[0])
    return int(match.group("n")) if match else None


def case_of_slice(path: str) -> str | None:
    """``TCGA_CS_4942_19970222_12.tif`` -> ``TCGA_CS_4942_19970222``; ``None`` for names without a trailing ``_<n>``."""
    match = _SLICE.match(os.path.splitext(os.path.basename(path))[0])
    return match.group("case") if match else None


def patient_of_case(case: str) -> str:
    """Patient id of a case folder: ``TCGA_CS_4942_19970222`` -> ``TCGA_CS_4942`` (one patient may have two dates)."""
    match = _PATIENT.match(case)
    return match.group(1).upper() if match else case


def is_mask_file(path: str) -> bool:
    """Whether a file name is a mask of the set's layout (``..._mask.tif``)."""
    return os.path.splitext(os.path.basename(path))[0].lower().endswith("_mask")


def list_case_slices(case_dir: str, skipped: list[dict] | None = None) -> list[dict]:
    """The slices of one case folder ordered by slice number, each with its mask path (``""`` if absent).

    Files that are not TIFF slices of the layout, and broken symbolic links, are reported into ``skipped`` and left
    out.
    """
    case = os.path.basename(os.path.normpath(case_dir))
    found = []
    for name in sorted(os.listdir(case_dir)):
        path = os.path.join(case_dir, name)
        if name.startswith("."):
            continue
        if not os.path.isfile(path):
            if skipped is not None:
                report_broken_links(case_dir, [name], skipped)
            continue
        if is_mask_file(name):
            continue
        if not name.lower().endswith(TIFF_SUFFIXES):
            if skipped is not None and not name.lower().endswith((".csv", ".txt", ".md", ".json")):
                skipped.append({"file": path, "problem": "not a TIFF slice (ignored)"})
            continue
        number = slice_number(name)
        if number is None:
            if skipped is not None:
                skipped.append({"file": path, "problem": "name does not end in _<slice number>"})
            continue
        stem, suffix = os.path.splitext(path)
        mask = stem + "_mask" + suffix
        found.append(
            {
                "image": path,
                "mask": mask if os.path.isfile(mask) else "",
                "case": case,
                "patient": patient_of_case(case),
                "slice": number,
            }
        )
    return sorted(found, key=lambda item: item["slice"])


def _check_headers(item: dict) -> None:
    """Header-level checks of a slice and its mask (nothing decoded): sizes within ``MAX_PIXELS``, a 3-channel
    slice, a single-channel mask of the slice's size.

    Raises:
        InputFileError: naming the slice or the mask and the problem.
    """
    image = tiff_header(item["image"])
    if image.channels != 3:
        raise InputFileError(item["image"], f"expected a 3-channel slice, got {image.channels} channel(s)")
    mask = tiff_header(item["mask"])
    if mask.channels != 1:
        raise InputFileError(item["mask"], f"mask has {mask.channels} channels, expected a single-channel mask")
    if (mask.rows, mask.columns) != (image.rows, image.columns):
        raise InputFileError(
            item["mask"], f"mask size {(mask.rows, mask.columns)} differs from the slice {(image.rows, image.columns)}"
        )


def _label_slices(
    items: list[dict], skipped: list[dict], check_images: bool, progress: bool, accepts: Mapping[str, Any] | None
) -> list[dict]:
    from medkit.transforms.check_inputd import CheckInputd

    check = CheckInputd("image", accepts) if accepts else None

    def probe(item: dict) -> str | None:
        try:
            _check_headers(item)
            if check_images:
                image = read_tiff(item["image"])
                if image.ndim != 3:
                    raise InputFileError(item["image"], f"expected a 3-channel slice, got shape {image.shape}")
                problem = check.problem(np.moveaxis(image, -1, 0), {}) if check else ""
                if problem:  # what the bundle's preprocessing would refuse mid-run
                    raise InputFileError(item["image"], problem)
            mask = read_mask(item["mask"])
            if check_images and mask.shape != image.shape[:2]:
                raise InputFileError(item["mask"], f"mask size {mask.shape} differs from the slice {image.shape[:2]}")
        except InputFileError as e:
            return e.problem if e.path == item["image"] else str(e)
        item["tumour_pixels"] = int(mask.sum())
        item["label"] = int(item["tumour_pixels"] > 0)
        return None

    return probe_items(items, skipped, probe, progress, "reading masks")


def build_lgg_datalist(
    dataset_dir: str,
    class_names: Sequence[str] = CLASS_NAMES,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    check_images: bool = True,
    progress: bool = False,
    mask_as_label: bool = False,
    n_folds: int = 0,
    fold: int = 0,
    accepts: Mapping[str, Any] | None = None,
) -> dict:
    """A MONAI datalist of every labelled slice under ``dataset_dir``, split into training/validation/test by patient.

    ``dataset_dir`` is the set's ``kaggle_3m`` folder, or a folder above it (``lgg-mri-segmentation``); each
    case folder holds ``<case>_<n>.tif`` with ``<case>_<n>_mask.tif``. A slice without a mask, or an image or
    mask that cannot be read, is reported in ``"skipped"`` and left out.

    Args:
        dataset_dir: the folder as published.
        class_names: names of label 0 (no tumour) and 1 (tumour).
        val_fraction: fraction of patients for validation (checkpoint choice, threshold tuning).
        test_fraction: fraction of patients held out from all tuning, for the figures to report.
        seed: seed of the patient split.
        check_images: decode every slice too (masks are always read, to label the slices; every header is
            checked: sizes within ``medkit.io.header.MAX_PIXELS``, 3-channel slices, single-channel masks).
        progress: show a progress bar.
        mask_as_label: for segmentation, ``"label"`` is the mask path (MONAI and MONAI Label's convention) and
            the slice class moves to ``"tumour"``; else ``"label"`` is the slice class (0/1).
        n_folds: 2 or more for cross-validation: patients are dealt into ``n_folds`` folds (stratified, seed
            ``seed``), fold ``fold`` is the test side and ``val_fraction`` of the rest validation
            (``test_fraction`` is then unused; ``medkit.data.splits.split_fold``).
        fold: which fold is tested, ``0..n_folds-1``.
        accepts: the bundle's ``medkit.accepts``: with ``check_images``, slices it does not accept (a blank or
            grey slice...) are left out and reported, as the preprocessing would refuse them mid-run.

    Raises:
        DatasetLayoutError: no case folder with TIFF slices is found.
    """
    if len(class_names) != 2:
        raise ValueError(f"the LGG set has two slice classes (no tumour, tumour), got {list(class_names)}")
    check_split_fractions(val_fraction, test_fraction)
    root = _resolve_root(os.fspath(dataset_dir), None)
    for nested in ("lgg-mri-segmentation", "kaggle_3m"):
        if nested in list_subfolders(root):
            root = os.path.join(root, nested)
    skipped: list[dict] = []
    items: list[dict] = []
    for case in list_subfolders(root, skipped):
        slices = list_case_slices(os.path.join(root, case), skipped)
        for item in slices:
            if not item["mask"]:
                skipped.append({"file": item["image"], "problem": "no mask file beside it (left out)"})
        items.extend(i for i in slices if i["mask"])
    if not items:
        raise DatasetLayoutError(root, "no case folders with <case>_<n>.tif and <case>_<n>_mask.tif slices found")
    items = _label_slices(items, skipped, check_images, progress, accepts)
    # stratify patients by whether their tumour spans many slices, so small and large tumours go to every side
    per_patient: dict[str, list[int]] = defaultdict(list)
    for item in items:
        per_patient[item["patient"]].append(item["label"])
    share = {p: float(np.mean(v)) for p, v in per_patient.items()}
    median_share = float(np.median(list(share.values())))
    strata = {p: int(s >= median_share) for p, s in share.items()}
    if n_folds:
        sides = split_fold(strata, n_folds, fold, val_fraction, seed)
    else:
        sides = split_three_ways(strata, val_fraction, test_fraction, seed)
    datalist: dict = {
        "name": "lgg-mri-segmentation",
        "root": os.path.abspath(root),
        "labels": {str(i): n for i, n in enumerate(class_names)},
        "training": [],
        "validation": [],
        "test": [],
        "skipped": skipped,
    }
    if n_folds:
        datalist["fold"] = {"n_folds": int(n_folds), "fold": int(fold), "seed": int(seed)}
    for item in items:
        datalist[sides[item["patient"]]].append(item)
    return as_segmentation_datalist(datalist) if mask_as_label else datalist


def as_segmentation_datalist(datalist: dict) -> dict:
    """The same datalist with each slice's mask path under ``"label"`` and its class under ``"tumour"``.

    Lets a datalist written by ``medkit prepare lgg`` (slice classes) feed the segmentation bundle; items that
    already carry a mask path under ``"label"`` are left as they are.
    """
    out = dict(datalist)
    for split in ("training", "validation", "test"):
        items = []
        for item in datalist.get(split, []):
            item = dict(item)
            if not isinstance(item.get("label"), str) and item.get("mask"):
                item["tumour"] = item["label"]
                item["label"] = item["mask"]
            items.append(item)
        out[split] = items
    return out


def group_cases(items: Sequence[dict]) -> dict[str, list[dict]]:
    """Items grouped by ``"case"`` (sorted), each group ordered by ``"slice"``."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        groups[item.get("case", "")].append(item)
    return {c: sorted(groups[c], key=lambda i: i.get("slice", 0)) for c in sorted(groups)}


def load_case_volume(items: Sequence[dict]) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack one case's slices (ordered by ``"slice"``) into ``(rows, columns, slices, channels)`` uint8 and, when
    every slice has a ``"mask"``, its mask ``(rows, columns, slices)`` as 0/1.

    Raises:
        InputFileError: a slice cannot be read or its size differs from the first one's.
    """
    ordered = sorted(items, key=lambda i: i.get("slice", 0))
    images, masks = [], []
    for item in ordered:
        image = read_tiff(item["image"])
        if images and image.shape != images[0].shape:
            raise InputFileError(
                item["image"], f"size {image.shape} differs from the case's first slice {images[0].shape}"
            )
        images.append(image if image.ndim == 3 else image[..., None])
        if item.get("mask"):
            masks.append(read_mask(item["mask"]))
    volume = np.stack(images, axis=2)
    return volume, (np.stack(masks, axis=-1) if len(masks) == len(images) else None)


def write_case_volumes(items: Sequence[dict], out_dir: str) -> list[str]:
    """Write ``<case>.nii.gz`` (channels last, 4D) and ``<case>_mask.nii.gz`` for each case of ``items``.

    The slices of this set carry no spacing, so the affine is the identity (voxel units). A case whose slices
    cannot be stacked is reported and skipped; returns the paths written.
    """
    import nibabel as nib

    from medkit.io.atomic import atomic_path

    written = []
    for case, case_items in group_cases(items).items():
        try:
            volume, mask = load_case_volume(case_items)
        except InputFileError as e:
            logger.error("%s (case %s not written)", e, case)
            continue
        for array, name in ((volume, f"{case}.nii.gz"), (mask, f"{case}_mask.nii.gz")):
            if array is None:
                continue
            target = os.path.join(out_dir, name)
            with atomic_path(target) as tmp:
                nib.save(nib.Nifti1Image(array, np.eye(4)), tmp)
            written.append(target)
    return written
