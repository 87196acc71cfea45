"""Datalist builder for the Kermany pediatric chest X-ray set (``chest_xray/[train|val|test]/{NORMAL,PNEUMONIA}``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from medkit.data.folders import build_class_folder_datalist

__all__ = ["CLASS_NAMES", "patient_id", "build_chest_xray_datalist"]

CLASS_NAMES = ("NORMAL", "PNEUMONIA")
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


def build_chest_xray_datalist(
    dataset_dir: str,
    class_names: Sequence[str] = CLASS_NAMES,
    val_fraction: float = 0.15,
    seed: int = 0,
    check_images: bool = True,
    progress: bool = False,
    accepts: Mapping[str, Any] | None = None,
) -> dict:
    """Build a MONAI datalist from a Kermany ``chest_xray`` folder.

    Accepted layouts: ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*`` (any of the split folders), or
    ``ROOT/{NORMAL,PNEUMONIA}/*`` directly; the Kaggle archive's extra ``chest_xray/`` level is
    descended into. Images from ``train`` and ``val`` (the official ``val`` has only 16 images) are
    pooled and split by patient, stratified by class; ``test`` is kept apart.
    ``class_names`` orders the labels (the class folders are named after the classes).
    See ``build_class_folder_datalist`` for the other arguments and the result.
    """
    return build_class_folder_datalist(
        "chest_xray",
        dataset_dir,
        class_names,
        {name: name for name in CLASS_NAMES},
        patient_id,
        val_fraction=val_fraction,
        seed=seed,
        check_images=check_images,
        progress=progress,
        accepts=accepts,
        nested_name="chest_xray",
    )
