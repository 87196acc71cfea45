"""MONAI datalist JSON files: read back, summarise, class weights (``write_json_atomic`` writes them)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from medkit.errors import InputFileError
from medkit.io.atomic import write_json_atomic

__all__ = ["write_json_atomic", "load_datalist", "item_class", "class_counts", "class_weights"]


def load_datalist(path: str | os.PathLike) -> dict:
    """Read a datalist JSON written by ``medkit prepare`` (keys ``training``, ``validation``, ``labels``...)."""
    with open(path) as f:
        return json.load(f)


def item_class(label: Any) -> int:
    """The integer class of a datalist ``label``: a number (``1``, ``"1"``), or the path of a mask file, which is
    class 1 when it has a foreground pixel and 0 when it is empty.

    ``medkit prepare`` writes numbers; MONAI Label's datastore hands a classification bundle's trainer the label
    file it keeps for each image (for the brain slices, the tumour mask), so a slice classifier trains from it.

    Raises:
        InputFileError: the mask file cannot be read.
    """
    if isinstance(label, str) and not label.strip().lstrip("+-").isdigit():
        from medkit.io.tiff import TIFF_SUFFIXES, read_mask

        if not os.path.isfile(label):
            raise InputFileError(label, "label is neither a class number nor a mask file")
        if label.lower().endswith(tuple(TIFF_SUFFIXES)):
            mask = read_mask(label)
        else:
            from monai.transforms import LoadImage

            try:
                mask = np.asarray(LoadImage(image_only=True)(label))
            except Exception as err:  # noqa: BLE001 - any reader failure is this file's problem
                raise InputFileError(label, f"cannot read the mask ({err})") from err
        return int(bool(np.any(mask)))
    return int(label)


def class_counts(items: Sequence[dict], num_classes: int) -> list[int]:
    """Number of items per integer label ``0..num_classes-1`` (labels as ``item_class`` reads them)."""
    counts = Counter(item_class(i["label"]) for i in items)
    return [counts.get(c, 0) for c in range(num_classes)]


def class_weights(items: Sequence[dict], num_classes: int) -> list[float]:
    """Inverse-frequency class weights normalised to mean 1 (the "balanced" heuristic).

    A class absent from ``items`` gets weight 0 so it cannot dominate the loss.
    """
    counts = np.asarray(class_counts(items, num_classes), dtype=np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    present = weights[counts > 0]
    if present.size:
        weights = weights / present.mean()
    return [float(w) for w in weights]
