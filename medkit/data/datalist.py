"""MONAI datalist JSON files: read back, summarise, class weights (``write_json_atomic`` writes them)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np

from medkit.io.atomic import write_json_atomic

__all__ = ["write_json_atomic", "load_datalist", "class_counts", "class_weights"]


def load_datalist(path: str | os.PathLike) -> dict:
    """Read a datalist JSON written by ``medkit prepare`` (keys ``training``, ``validation``, ``labels``...)."""
    with open(path) as f:
        return json.load(f)


def class_counts(items: Sequence[dict], num_classes: int) -> list[int]:
    """Number of items per integer label ``0..num_classes-1``."""
    counts = Counter(int(i["label"]) for i in items)
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
