"""Scan published class-folder layouts (``<split>/<class>/<image>``) into labelled items."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from medkit.errors import DatasetLayoutError, InputFileError
from medkit.io.xray import DICOM_SUFFIXES, RASTER_SUFFIXES, is_dicom_file, read_xray

__all__ = ["IGNORED_NAMES", "list_subfolders", "list_image_files", "scan_class_folders", "check_readable"]

logger = logging.getLogger(__name__)

IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in IGNORED_NAMES


def list_subfolders(folder: str) -> list[str]:
    """Names of the visible subfolders of ``folder``, sorted."""
    return sorted(n for n in os.listdir(folder) if _visible(n) and os.path.isdir(os.path.join(folder, n)))


def list_image_files(folder: str, skipped: list[dict] | None = None, recursive: bool = False) -> list[str]:
    """Image files (PNG/JPEG/TIFF/BMP/DICOM) directly in ``folder`` (or below it), sorted.

    Args:
        folder: where to look.
        skipped: if given, other files are appended here as ``{"file", "problem"}`` records.
        recursive: also walk subfolders.
    """
    found = []
    walker: Iterable = os.walk(folder) if recursive else [(folder, [], os.listdir(folder))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not _visible(name) or not os.path.isfile(path):
                continue
            lower = name.lower()
            if lower.endswith(RASTER_SUFFIXES + DICOM_SUFFIXES) or is_dicom_file(path):
                found.append(path)
            elif skipped is not None and not lower.endswith((".csv", ".xlsx", ".txt", ".md", ".json")):
                skipped.append({"file": path, "problem": "not an image file (unknown suffix)"})
    return found


def scan_class_folders(
    folder: str,
    class_map: Mapping[str, int | None],
    patient_of: Callable[[str], str],
    skipped: list[dict],
    images_subfolder: str | None = None,
) -> list[dict]:
    """Labelled items from ``folder/<class>/*`` (or ``folder/<class>/<images_subfolder>/*``).

    Args:
        folder: a folder whose subfolders are class folders.
        class_map: folder name (matched case-insensitively) to integer label; ``None`` drops the class.
        patient_of: maps a file path to its patient id.
        skipped: records of files and classes that were left out are appended here.
        images_subfolder: optional name of a subfolder that holds a class's images when present.

    Returns:
        ``{"image", "label", "patient", "class_folder"}`` dicts, sorted by path.

    Raises:
        DatasetLayoutError: a subfolder is not a known class, a class folder has no images, or no class
            folder is found.
    """
    lookup = {k.lower(): v for k, v in class_map.items()}
    items: list[dict] = []
    subfolders = list_subfolders(folder)
    known = [n for n in subfolders if n.lower() in lookup]
    unknown = [n for n in subfolders if n.lower() not in lookup]
    if unknown:
        raise DatasetLayoutError(
            os.path.join(folder, unknown[0]), f"unknown class folder (expected one of {sorted(class_map)})"
        )
    if not known:
        raise DatasetLayoutError(folder, f"no class folders found (expected some of {sorted(class_map)})")
    for name in known:
        label = lookup[name.lower()]
        class_dir = os.path.join(folder, name)
        if label is None:
            skipped.append({"file": class_dir, "problem": "class not used by this task's class map"})
            continue
        if images_subfolder and os.path.isdir(os.path.join(class_dir, images_subfolder)):
            class_dir = os.path.join(class_dir, images_subfolder)
        files = list_image_files(class_dir, skipped)
        if not files:
            raise DatasetLayoutError(class_dir, "class folder holds no image files")
        for path in files:
            if os.path.getsize(path) == 0:
                skipped.append({"file": path, "problem": "file is empty (0 bytes)"})
                continue
            items.append({"image": os.path.abspath(path), "label": label, "patient": patient_of(path)})
    return items


def check_readable(
    items: list[dict], skipped: list[dict], reader: Callable[[str], object] = read_xray, progress: bool = False
) -> list[dict]:
    """Decode every item's image; unreadable ones move to ``skipped`` with the reason.

    Args:
        items: dicts with an ``"image"`` path.
        skipped: receives ``{"file", "problem"}`` for each unreadable image.
        reader: function that reads one path and raises ``InputFileError`` when it cannot.
        progress: show a progress bar on stderr.

    Returns:
        the readable items, in order.
    """

    def probe(item: dict) -> str | None:
        try:
            reader(item["image"])
        except InputFileError as e:
            return e.problem
        return None

    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        results = pool.map(probe, items)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(items), desc="checking images", unit="img")
        problems = list(results)
    good = []
    for item, problem in zip(items, problems):
        if problem is None:
            good.append(item)
        else:
            skipped.append({"file": item["image"], "problem": problem})
            logger.warning("%s: %s (left out)", item["image"], problem)
    return good
