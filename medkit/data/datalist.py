"""MONAI datalist JSON files: read back, summarise, class weights (``write_json_atomic`` writes them)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from medkit.errors import InputFileError
from medkit.io.atomic import write_json_atomic

__all__ = [
    "write_json_atomic",
    "load_datalist",
    "item_class",
    "class_counts",
    "class_weights",
    "debias_weights",
    "debias_sample_weights",
    "train_sampler",
    "distributed_train_sampler",
    "DistributedWeightedSampler",
]


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


def debias_weights(items: Sequence[dict], score_key: str, floor: float = 0.05) -> np.ndarray:
    """Sampling weights under which a known shortcut no longer predicts the label, for two classes.

    ``item[score_key]`` is what a model of the shortcut alone (e.g. acquisition traits, ``trait_score`` of the
    chest X-ray ``split="traits"``) gives as the probability of class 1. Each item gets ``1 / p(its label |
    shortcut)``, with the probability kept at least ``floor`` so a few images cannot take over; the weights are then
    scaled so each class keeps its share of the draws. Drawn this way, images whose shortcut points the wrong way
    are seen as often as those it points the right way.

    Raises:
        ValueError: an item lacks ``score_key`` or has a label other than 0 or 1.
    """
    labels, scores = [], []
    for i, item in enumerate(items):
        if score_key not in item:
            name = item.get("image", f"item {i}")
            raise ValueError(f"{name}: no '{score_key}' in the datalist item (debias_score needs a scored datalist)")
        labels.append(item_class(item["label"]))
        scores.append(float(item[score_key]))
    y, s = np.asarray(labels), np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"debias_score works on two classes (labels 0 and 1), got {sorted(set(y.tolist()))}")
    weights = 1.0 / np.maximum(np.where(y == 1, s, 1.0 - s), float(floor))
    for c in (0, 1):
        chosen = y == c
        if chosen.any():
            weights[chosen] *= chosen.sum() / weights[chosen].sum()
    return weights


def debias_sample_weights(items: Sequence[dict], score_key: str, floor: float = 0.05) -> Any:
    """``debias_weights`` of ``items`` as a tensor, for ``train_sampler``; ``None`` (uniform draws) when
    ``score_key`` is empty, or, with a warning, when no item carries it (a datalist of other images, e.g. MONAI
    Label's or ``medkit prepare``'s, where the scored shortcut does not apply). Some items scored and others not is
    an error (``debias_weights``)."""
    if not score_key:
        return None
    if items and not any(score_key in item for item in items):
        import logging

        logging.getLogger(__name__).warning(
            "debias_score '%s': no training item carries it (it comes with the datalist builder's scored split, "
            "e.g. chest X-ray split='traits'); training images are drawn uniformly",
            score_key,
        )
        return None
    return torch.as_tensor(debias_weights(items, score_key, floor), dtype=torch.double)


def train_sampler(weights: Any, seed: int = 0) -> Any:
    """The training data loader's sampler in one process: ``None`` (the loader shuffles) without ``weights``, else
    ``DistributedWeightedSampler`` of one replica. Its draws depend only on the seed and the epoch (the engines call
    ``set_epoch``), so a resumed training draws what the uninterrupted one would have."""
    if weights is None:
        return None
    return DistributedWeightedSampler(weights, weights, num_replicas=1, rank=0, seed=int(seed))


def distributed_train_sampler(dataset: Any, weights: Any = None, seed: int = 0) -> Any:
    """The training sampler of one of several processes (``configs/multi_gpu_train.json``): MONAI's
    ``DistributedSampler`` (shuffled, evenly divisible) without ``weights``, else ``DistributedWeightedSampler``."""
    if weights is None:
        from monai.data import DistributedSampler

        return DistributedSampler(dataset, even_divisible=True, shuffle=True, seed=int(seed))
    return DistributedWeightedSampler(dataset, weights, seed=int(seed))


class DistributedWeightedSampler(DistributedSampler):
    """Weighted draws with replacement, ``ceil(len(dataset) / replicas)`` per process an epoch. Each process has
    its own stream (seed + rank) of which epoch ``e`` (as the engines number them, from 1) takes the ``e``-th draw,
    so the draws depend only on seed, rank and epoch: a resumed run repeats them, and one replica draws exactly
    what ``torch.utils.data.WeightedRandomSampler`` with a generator seeded by ``seed`` draws epoch after epoch.
    A ``DistributedSampler``, so the engines call ``set_epoch`` at each epoch.

    Args:
        dataset: the training dataset (its length must match ``weights``).
        weights: one non-negative weight per item.
        num_replicas, rank: as ``DistributedSampler`` (default: the process group's).
        seed: base seed of the draws.
    """

    def __init__(
        self, dataset: Any, weights: Any, num_replicas: int | None = None, rank: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        if len(self.weights) != len(dataset):
            raise ValueError(f"{len(self.weights)} weights for a dataset of {len(dataset)} items")

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.rank)
        for _ in range(max(self.epoch - 1, 0)):  # the draws of the epochs before this one
            torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        return iter(torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator).tolist())
