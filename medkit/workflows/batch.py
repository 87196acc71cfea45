"""Batch preparation for engines whose loss needs more than ``label``."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import PrepareBatch, default_prepare_batch

__all__ = ["PrepareBatchWithSeg"]


class PrepareBatchWithSeg(PrepareBatch):
    """``(image, (label, seg))`` for a trainer whose network also segments (``medkit.losses.RSNASegLoss``).

    A batch without ``seg_key`` (or with a non-tensor there, such as collated mask paths) falls back to MONAI's
    ``(image, label)``, so one trainer config serves data sets with and without voxel labels.

    Args:
        seg_key: key of the ``(N, 1, *spatial)`` label maps (-1 where a case has none).
        seg_only: ``(image, seg)`` instead, for a network trained on the segmentation alone
            (``medkit.networks.EvidenceClassifier``); a batch without label maps then fails by key.
    """

    def __init__(self, seg_key: str = "seg", seg_only: bool = False) -> None:
        self.seg_key = seg_key
        self.seg_only = bool(seg_only)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        seg = batchdata.get(self.seg_key) if isinstance(batchdata, dict) else None
        if not isinstance(seg, torch.Tensor):
            if self.seg_only:
                raise KeyError(f"{self.seg_key}: the batch has no voxel label maps under this key")
            return image, label
        if self.seg_only:
            return image, seg.to(device=device, non_blocking=non_blocking, **kwargs)
        return image, (label, seg.to(device=device, non_blocking=non_blocking, **kwargs))
