"""Scan published class-folder layouts (``<split>/<class>/<image>``) into labelled items."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from medkit.data.splits import split_by_patient
from medkit.errors import DatasetLayoutError, InputFileError
from medkit.io.header import broken_link_problem
from medkit.io.xray import DICOM_SUFFIXES, RASTER_SUFFIXES, is_dicom_file, read_xray, read_xray_header

__all__ = [
    "IGNORED_NAMES",
    "SPLIT_FOLDERS",
    "list_subfolders",
    "list_image_files",
    "report_broken_links",
    "scan_class_folders",
    "accepting_reader",
    "check_readable",
    "probe_items",
    "build_class_folder_datalist",
]

SPLIT_FOLDERS = ("train", "val", "test")

IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in IGNORED_NAMES


def list_subfolders(folder: str, skipped: list[dict] | None = None) -> list[str]:
    """Names of the visible subfolders of ``folder``, sorted.

    Args:
        folder: where to look.
        skipped: if given, broken symbolic links in ``folder`` are appended here as ``{"file", "problem"}`` records.
    """
    names = sorted(n for n in os.listdir(folder) if _visible(n))
    if skipped is not None:
        report_broken_links(folder, names, skipped)
    return [n for n in names if os.path.isdir(os.path.join(folder, n))]


def report_broken_links(folder: str, names: Iterable[str], skipped: list[dict]) -> None:
    """Append a ``{"file", "problem"}`` record to ``skipped`` for each of ``names`` in ``folder`` that is a broken
    symbolic link (they are neither files nor folders, so a listing would otherwise drop them in silence)."""
    for name in names:
        path = os.path.join(folder, name)
        problem = broken_link_problem(path)
        if problem:
            skipped.append({"file": path, "problem": problem})


def list_image_files(folder: str, skipped: list[dict] | None = None, recursive: bool = False) -> list[str]:
    """Image files (PNG/JPEG/TIFF/BMP/DICOM) directly in ``folder`` (or below it), sorted.

    Args:
        folder: where to look.
        skipped: if given, other files and broken symbolic links are appended here as ``{"file", "problem"}``
            records.
        recursive: also walk subfolders.
    """
    found = []
    walker: Iterable = os.walk(folder) if recursive else [(folder, [], os.listdir(folder))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not _visible(name):
                continue
            if not os.path.isfile(path):
                if skipped is not None:
                    report_broken_links(dirpath, [name], skipped)
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
    subfolders = list_subfolders(folder, skipped)
    known = [n for n in subfolders if n.lower() in lookup]
    unknown = [n for n in subfolders if n.lower() not in lookup]
    present = {n.lower() for n in known}
    for name in class_map:
        if name.lower() not in present:
            skipped.append({"file": os.path.join(folder, name), "problem": "class folder absent"})
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


def accepting_reader(reader: Callable[[str], tuple], accepts: Mapping[str, Any]) -> Callable[[str], tuple]:
    """``reader`` (a path to ``(array, meta)``: ``read_xray``) that also raises ``InputFileError`` for an image
    ``accepts`` (a bundle's ``medkit.accepts``) refuses, with ``CheckInputd``'s words."""
    from medkit.transforms.check_inputd import CheckInputd

    check = CheckInputd("image", accepts)

    def read(path: str) -> tuple:
        arr, meta = reader(path)
        problem = check.problem(arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0), meta)
        if problem:
            raise InputFileError(path, problem)
        return arr, meta

    return read


def check_readable(
    items: list[dict], skipped: list[dict], reader: Callable[[str], object] = read_xray, progress: bool = False
) -> list[dict]:
    """Read every item's image with ``reader``; unreadable ones move to ``skipped`` with the reason.

    Args:
        items: dicts with an ``"image"`` path.
        skipped: receives ``{"file", "problem"}`` for each unreadable image.
        reader: function that reads one path and raises ``InputFileError`` when it cannot: ``read_xray`` decodes,
            ``read_xray_header`` reads headers only (size, pixel count) and is cheap.
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

    return probe_items(items, skipped, probe, progress, "checking images")


def probe_items(
    items: list[dict], skipped: list[dict], probe: Callable[[dict], str | None], progress: bool = False, desc: str = ""
) -> list[dict]:
    """Run ``probe`` on every item (a few threads); items it finds a problem with move to ``skipped``.

    Args:
        items: dicts with an ``"image"`` path.
        skipped: receives ``{"file": <image>, "problem": <text>}`` for each item ``probe`` returns text for.
        probe: returns ``None`` for a good item, else the problem in one line; may add keys to the item.
        progress: show a progress bar on stderr, labelled ``desc``.

    Returns:
        the good items, in order.
    """
    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        results = pool.map(probe, items)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(items), desc=desc, unit="img")
        problems = list(results)
    good = []
    for item, problem in zip(items, problems):
        if problem is None:
            good.append(item)
        else:
            skipped.append({"file": item["image"], "problem": problem})
    return good


def _resolve_root(root: str, nested_name: str | None) -> str:
    if not os.path.isdir(root):
        raise DatasetLayoutError(root, "data folder not found")
    if nested_name and list_subfolders(root) == [nested_name]:  # archives often nest the set once more
        return _resolve_root(os.path.join(root, nested_name), nested_name)
    return root


def build_class_folder_datalist(
    name: str,
    dataset_dir: str,
    class_names: Sequence[str],
    folder_classes: Mapping[str, str | None],
    patient_of: Callable[[str], str],
    val_fraction: float = 0.15,
    seed: int = 0,
    check_images: bool = True,
    progress: bool = False,
    images_subfolder: str | None = None,
    nested_name: str | None = None,
    accepts: Mapping[str, Any] | None = None,
) -> dict:
    """A MONAI datalist from ``ROOT/[train|val|test]/<class folder>/*`` or ``ROOT/<class folder>/*``.

    Images of ``train`` and ``val`` (or of the class folders directly) are pooled and split by patient,
    stratified by class; ``test`` is kept apart. Class folders map to class names, several folders may
    share a class, and a folder mapped to ``None`` is left out; an absent class folder is reported once.

    Args:
        name: data set name recorded in the datalist.
        dataset_dir: the folder as published.
        class_names: output classes in label order.
        folder_classes: class folder name (case-insensitive) to class name or ``None``.
        patient_of: file path to patient id.
        val_fraction: fraction of each class's patients held out for validation.
        seed: seed of the patient split.
        check_images: decode every image and leave out (and report) those that cannot be read; without it only
            headers are read (every image's size is checked against ``medkit.io.header.MAX_PIXELS`` either way).
        progress: show progress bars.
        images_subfolder: subfolder of a class folder that holds its images in some releases.
        nested_name: a single subfolder of this name is descended into.
        accepts: the bundle's ``medkit.accepts``: with ``check_images``, images it does not accept (a blank image,
            a CT slice...) are left out and reported, as the preprocessing would refuse them mid-run.

    Returns:
        dict with ``training``, ``validation``, ``test`` item lists, ``labels`` (index -> name),
        ``skipped`` records (``{"file", "problem"}``, one per file or folder left out; ``medkit.data.make_datalist``
        logs them, ``medkit prepare`` prints them) and ``dataset_dir``.

    Raises:
        DatasetLayoutError: the folder is missing, empty or laid out differently.
        ValueError: ``folder_classes`` names a class not in ``class_names``.
    """
    unknown = {c for c in folder_classes.values() if c is not None} - set(class_names)
    if unknown:
        raise ValueError(f"folder_classes maps to {sorted(unknown)}, which are not in class_names {list(class_names)}")
    index = {folder: None if c is None else list(class_names).index(c) for folder, c in folder_classes.items()}
    root = _resolve_root(os.fspath(dataset_dir), nested_name)
    skipped: list[dict] = []
    subs = list_subfolders(root, skipped)
    pooled: list[dict] = []
    test: list[dict] = []
    split_dirs = [s for s in subs if s.lower() in SPLIT_FOLDERS]
    scan = dict(class_map=index, patient_of=patient_of, skipped=skipped, images_subfolder=images_subfolder)
    if split_dirs:
        others = [s for s in subs if s.lower() not in SPLIT_FOLDERS]
        if others:
            raise DatasetLayoutError(
                os.path.join(root, others[0]), f"unexpected folder beside the split folders {list(SPLIT_FOLDERS)}"
            )
        for split in split_dirs:
            items = scan_class_folders(os.path.join(root, split), **scan)
            (test if split.lower() == "test" else pooled).extend(items)
    elif subs:
        pooled = scan_class_folders(root, **scan)
    else:
        raise DatasetLayoutError(root, f"empty: expected {list(SPLIT_FOLDERS)} or {sorted(folder_classes)} folders")
    reader = read_xray if check_images else read_xray_header
    if accepts and check_images:  # what the bundle's preprocessing would refuse is left out here, by name
        reader = accepting_reader(read_xray, accepts)
    pooled = check_readable(pooled, skipped, reader, progress=progress)
    test = check_readable(test, skipped, reader, progress=progress)
    if not pooled and not test:
        raise DatasetLayoutError(root, "no readable images found")
    training, validation = split_by_patient(pooled, val_fraction=val_fraction, seed=seed)
    return {
        "name": name,
        "dataset_dir": os.path.abspath(root),
        "labels": {str(i): n for i, n in enumerate(class_names)},
        "val_fraction": val_fraction,
        "seed": seed,
        "training": training,
        "validation": validation,
        "test": test,
        "skipped": list({rec["file"]: rec for rec in skipped}.values()),  # the root's links are seen twice
    }
