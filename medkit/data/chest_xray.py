"""Datalist builder for the Kermany pediatric chest X-ray set (``chest_xray/[train|val|test]/{NORMAL,PNEUMONIA}``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medkit.data.folders import build_class_folder_datalist
from medkit.data.splits import split_by_patient

__all__ = [
    "CLASS_NAMES",
    "VALIDATION_KINDS",
    "patient_id",
    "series_of",
    "split_by_series",
    "acquisition_traits",
    "trait_scores",
    "split_by_traits",
    "build_chest_xray_datalist",
]

#: how the validation set is chosen: at random by patient, the last patients of each naming series, or the
#: patients whose acquisition traits look like the other class (``split_by_series``, ``split_by_traits``)
VALIDATION_KINDS = ("patient", "series", "traits")
#: names of ``acquisition_traits``' values
TRAITS = ("border_mean", "border_std", "border_black", "corner_p99", "corner_mean", "white")

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


def acquisition_traits(image: np.ndarray) -> np.ndarray:
    """What an image shows of how it was acquired rather than of the lungs (``TRAITS``): the mean and spread of a
    border band (5% of each side), its share of black pixels (collimation, framing), the brightest and mean corner
    (burnt-in markers; corners of a seventh of each side) and the share of saturated pixels. ``image``: one
    radiograph, any range (scaled to [0, 1] here)."""
    a = np.asarray(image, dtype=np.float32)
    low, high = float(a.min()), float(a.max())
    a = (a - low) / (high - low) if high > low else np.zeros_like(a)
    rows, cols = a.shape[:2]
    b, c = max(1, rows // 20), max(1, min(rows, cols) // 7)
    border = np.concatenate([a[:b].ravel(), a[-b:].ravel(), a[:, :b].ravel(), a[:, -b:].ravel()])
    corners = [a[:c, :c], a[:c, -c:], a[-c:, :c], a[-c:, -c:]]
    return np.array(
        [
            border.mean(),
            border.std(),
            (border < 0.04).mean(),
            max(float(np.percentile(k, 99)) for k in corners),
            float(np.mean([k.mean() for k in corners])),
            (a > 0.96).mean(),
        ],
        dtype=np.float64,
    )


def trait_scores(traits: np.ndarray, labels: np.ndarray, steps: int = 800, l2: float = 1e-3) -> np.ndarray:
    """How strongly each image's acquisition traits alone say "class 1": a logistic regression of ``labels`` on the
    standardised ``traits`` (``(n, k)``), fitted by gradient descent on all of them; probabilities ``(n,)``."""
    x = np.asarray(traits, dtype=np.float64)
    spread = x.std(0)
    x = (x - x.mean(0)) / np.where(spread > 0, spread, 1.0)
    a = np.c_[x, np.ones(len(x))]
    y = np.asarray(labels, dtype=np.float64)
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-a @ w))
        w -= 0.5 * (a.T @ (p - y) / len(y) + l2 * w)
    return 1.0 / (1.0 + np.exp(-a @ w))


def split_by_traits(
    items: Sequence[dict], fraction: float = 0.15, read: Any = None
) -> tuple[list[dict], list[dict], np.ndarray]:
    """``(rest, shifted, scores)``: ``shifted`` holds, for each class, the ``fraction`` of its patients whose
    acquisition traits (``acquisition_traits``, through ``trait_scores``) point most to the other class: normal
    radiographs framed like the pneumonia ones and the reverse. A network that learnt the acquisition instead of the
    lungs fails there, as it fails on another hospital's images; ``scores`` are the items' trait probabilities.

    Args:
        items: datalist items (``image``, ``patient``, ``label`` 0 or 1).
        fraction: share of each class's patients held out, in [0, 1).
        read: ``path -> (array, meta)`` (default ``medkit.io.read_xray``).

    Raises:
        ValueError: ``fraction`` outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if read is None:
        from medkit.io import read_xray as read
    labels = np.array([int(i["label"]) for i in items])
    scores = trait_scores(np.stack([acquisition_traits(read(i["image"])[0]) for i in items]), labels)
    by_patient: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        by_patient.setdefault(item["patient"], []).append(k)
    held: set[str] = set()
    for label in (0, 1):
        patients = [p for p, ks in by_patient.items() if round(float(labels[ks].mean())) == label]
        # how strongly a patient's images look acquired like the other class
        against = {p: float(np.mean(scores[by_patient[p]])) * (1 if label == 0 else -1) for p in patients}
        ordered = sorted(patients, key=lambda p: (-against[p], p))
        held.update(ordered[: int(round(fraction * len(ordered)))])
    rest = [i for i in items if i["patient"] not in held]
    return rest, [i for i in items if i["patient"] in held], scores


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
    remains. ``split="traits"`` does the same with ``split_by_traits`` (the patients whose acquisition traits point
    to the other class; each item then carries its ``trait_score``). ``split="patient"`` (the default) has
    ``validation`` alone, drawn at random by patient.

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
    if split in ("series", "traits"):
        pooled = datalist["training"] + datalist["validation"]
        if split == "series":
            rest, shifted = split_by_series(pooled, val_fraction)
        else:
            rest, shifted, scores = split_by_traits(pooled, val_fraction)
            for item, score in zip(pooled, scores):  # the same dictionaries as in rest and shifted
                item["trait_score"] = round(float(score), 6)
        share = len(shifted) / max(1, len(rest))  # the same number of images, drawn at random by patient
        training, random_val = split_by_patient(rest, val_fraction=min(share, 0.5), seed=seed)
        datalist.update(training=training, validation=shifted, validation_patient=random_val, split=split)
    return datalist
