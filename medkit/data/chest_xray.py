"""Datalist builder for the Kermany pediatric chest X-ray set (``chest_xray/[train|val|test]/{NORMAL,PNEUMONIA}``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from medkit.data.folders import build_class_folder_datalist
from medkit.data.splits import split_by_patient

__all__ = ["CLASS_NAMES", "VALIDATION_KINDS", "patient_id", "series_of", "split_by_series", "build_chest_xray_datalist"]

#: how the validation set is chosen: at random by patient, or the last acquisitions of each naming series
VALIDATION_KINDS = ("patient", "series")

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


def series_of(path: str) -> tuple[str, int] | None:
    """``(series, number)`` of a Kermany file name: the naming series the file belongs to and the patient's number
    in it, or None for a name of another form.

    The set's names carry three series, each numbered in order: normal radiographs ``IM-<n>-...`` and
    ``NORMAL2-IM-<n>-...``, and pneumonia radiographs ``person<n>_{bacteria,virus}_...`` (one numbering for both).
    """
    patient = patient_id(path)
    for prefix in ("NORMAL2-IM-", "IM-", "person"):
        if patient.upper().startswith(prefix.upper()) and patient[len(prefix) :].isdigit():
            return prefix.rstrip("-"), int(patient[len(prefix) :])
    return None


def split_by_series(items: Sequence[dict], fraction: float = 0.15) -> tuple[list[dict], list[dict]]:
    """``(rest, shifted)``: ``shifted`` holds the patients with the highest numbers of each naming series
    (``series_of``), ``fraction`` of each series' patients; a validation that resembles a later period of
    acquisition rather than a random draw from the same one. Files of no series stay in ``rest``.

    Raises:
        ValueError: ``fraction`` outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    numbers: dict[str, dict[str, int]] = {}
    for item in items:
        found = series_of(item["image"])
        if found is not None:
            numbers.setdefault(found[0], {})[item["patient"]] = found[1]
    held: set[str] = set()
    for patients in numbers.values():
        ordered = sorted(patients, key=lambda p: (patients[p], p))
        n = int(round(fraction * len(ordered)))
        held.update(ordered[len(ordered) - n :] if n else [])
    return [i for i in items if i["patient"] not in held], [i for i in items if i["patient"] in held]


def build_chest_xray_datalist(
    dataset_dir: str,
    class_names: Sequence[str] = CLASS_NAMES,
    val_fraction: float = 0.15,
    seed: int = 0,
    check_images: bool = True,
    progress: bool = False,
    accepts: Mapping[str, Any] | None = None,
    split: str = "patient",
) -> dict:
    """Build a MONAI datalist from a Kermany ``chest_xray`` folder.

    Accepted layouts: ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*`` (any of the split folders), or
    ``ROOT/{NORMAL,PNEUMONIA}/*`` directly; the Kaggle archive's extra ``chest_xray/`` level is
    descended into. Images from ``train`` and ``val`` (the official ``val`` has only 16 images) are
    pooled and split by patient, stratified by class; ``test`` is kept apart.
    ``class_names`` orders the labels (the class folders are named after the classes).
    See ``build_class_folder_datalist`` for the other arguments and the result.

    ``split="series"`` makes ``validation`` the last ``val_fraction`` of each naming series' patients
    (``split_by_series``: a later period of acquisition) and ``validation_patient`` a random patient-level split of
    the same size from the rest, so a model can be chosen on the first and compared on both; ``training`` is what
    remains. ``split="patient"`` (the default) has ``validation`` alone, drawn at random by patient.

    Raises:
        ValueError: an unknown ``split``.
    """
    if split not in VALIDATION_KINDS:
        raise ValueError(f"split must be one of {VALIDATION_KINDS}, got {split!r}")
    datalist = build_class_folder_datalist(
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
    if split == "series":
        pooled = datalist["training"] + datalist["validation"]
        rest, shifted = split_by_series(pooled, val_fraction)
        share = len(shifted) / max(1, len(rest))  # the same number of images, drawn at random by patient
        training, random_val = split_by_patient(rest, val_fraction=min(share, 0.5), seed=seed)
        datalist.update(training=training, validation=shifted, validation_patient=random_val, split="series")
    return datalist
