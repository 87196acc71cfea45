"""Memory held by a MONAI CacheDataset: what each cached (preprocessed) item costs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

__all__ = ["cache_memory", "log_cache_memory"]

logger = logging.getLogger(__name__)


def _nbytes(obj: object) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, Mapping):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return sum(_nbytes(v) for v in obj)
    return 0


def cache_memory(dataset: object) -> dict:
    """``{"n_cached", "bytes_per_item", "bytes_total", "device"}`` of a CacheDataset's cache (tensors and arrays)."""
    cache = [c for c in getattr(dataset, "_cache", []) or [] if c is not None]
    sizes = [_nbytes(c) for c in cache]
    device = "cpu"
    for c in cache[:1]:
        tensors = [v for v in (c.values() if isinstance(c, Mapping) else []) if isinstance(v, torch.Tensor)]
        device = str(tensors[0].device) if tensors else "cpu"
    return {
        "n_cached": len(sizes),
        "bytes_per_item": int(np.mean(sizes)) if sizes else 0,
        "bytes_total": int(sum(sizes)),
        "device": device,
    }


def log_cache_memory(dataset: object, name: str = "dataset") -> dict:
    """Log (and return) ``cache_memory(dataset)`` in MB: one line per dataset at the start of training."""
    info = cache_memory(dataset)
    logger.info(
        "%s cache: %d items, %.1f MB per item, %.1f MB in all (%s)",
        name,
        info["n_cached"],
        info["bytes_per_item"] / 2**20,
        info["bytes_total"] / 2**20,
        info["device"],
    )
    return info
