"""Datalist builder for the Kermany pediatric chest X-ray set (``chest_xray/[train|val|test]/{NORMAL,PNEUMONIA}``)."""

from __future__ import annotations

import logging
import os
import re

from medkit.data.folders import check_readable, list_subfolders, scan_class_folders
from medkit.data.splits import split_by_patient
from medkit.errors import DatasetLayoutError

__all__ = ["CLASS_NAMES", "patient_id", "build_chest_xray_datalist"]

logger = logging.getLogger(__name__)

CLASS_NAMES = ("NORMAL", "PNEUMONIA")
_SPLITS = ("train", "val", "test")
_PATTERNS = (
    re.compile(r"^(person\d+)_(?:bacteria|virus)_\d+$", re.IGNORECASE),
    re.compile(r"^((?:NORMAL2-)?IM-\d+)-\d+$", re.IGNORECASE),
)


def patient_id(path: str) -> str:
    """Patient id from a Kermany file name.

    ``person1_bacteria_1.jpeg`` -> ``person1``; ``IM-0115-0001.jpeg`` -> ``IM-0115``;
    ``NORMAL2-IM-0381-0001.jpeg`` -> ``NORMAL2-IM-0381``. Names of another form are their own patient.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    for pattern in _PATTERNS:
        match = pattern.match(stem)
        if match:
            return match.group(1)
    return stem


def _resolve_root(root: str) -> str:
    if not os.path.isdir(root):
        raise DatasetLayoutError(root, "data folder not found")
    subs = list_subfolders(root)
    if subs == ["chest_xray"]:  # the Kaggle archive nests the set once more
        return _resolve_root(os.path.join(root, "chest_xray"))
    return root


def build_chest_xray_datalist(
    dataset_dir: str, val_fraction: float = 0.15, seed: int = 0, check_images: bool = True, progress: bool = False
) -> dict:
    """Build a MONAI datalist from a Kermany ``chest_xray`` folder.

    Accepted layouts: ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*`` (any of the split folders), or
    ``ROOT/{NORMAL,PNEUMONIA}/*`` directly. Images from ``train`` and ``val`` (the official ``val``
    has only 16 images) are pooled and split by patient, stratified by class; ``test`` is kept apart.

    Args:
        dataset_dir: the folder as published.
        val_fraction: fraction of each class's patients held out for validation.
        seed: seed of the patient split.
        check_images: decode every image and leave out (and report) those that cannot be read.
        progress: show progress bars.

    Returns:
        dict with ``training``, ``validation``, ``test`` item lists, ``labels`` (index -> name),
        ``skipped`` records and ``dataset_dir``.

    Raises:
        DatasetLayoutError: the folder is missing, empty or laid out differently.
    """
    root = _resolve_root(os.fspath(dataset_dir))
    class_map = {name: i for i, name in enumerate(CLASS_NAMES)}
    subs = list_subfolders(root)
    skipped: list[dict] = []
    pooled, test = [], []
    split_dirs = [s for s in subs if s.lower() in _SPLITS]
    if split_dirs:
        others = [s for s in subs if s.lower() not in _SPLITS]
        if others:
            raise DatasetLayoutError(
                os.path.join(root, others[0]), f"unexpected folder beside the split folders {list(_SPLITS)}"
            )
        for split in split_dirs:
            items = scan_class_folders(os.path.join(root, split), class_map, patient_id, skipped)
            (test if split.lower() == "test" else pooled).extend(items)
    elif subs:
        pooled = scan_class_folders(root, class_map, patient_id, skipped)
    else:
        raise DatasetLayoutError(root, f"empty: expected {list(_SPLITS)} or {list(CLASS_NAMES)} folders")
    if check_images:
        pooled = check_readable(pooled, skipped, progress=progress)
        test = check_readable(test, skipped, progress=progress)
    if not pooled and not test:
        raise DatasetLayoutError(root, "no readable images found")
    training, validation = split_by_patient(pooled, val_fraction=val_fraction, seed=seed)
    if skipped:
        logger.warning("%d file(s) left out of the datalist; see its 'skipped' list", len(skipped))
    return {
        "name": "chest_xray",
        "dataset_dir": os.path.abspath(root),
        "labels": {str(i): n for i, n in enumerate(CLASS_NAMES)},
        "val_fraction": val_fraction,
        "seed": seed,
        "training": training,
        "validation": validation,
        "test": test,
        "skipped": skipped,
    }
