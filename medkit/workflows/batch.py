"""Batch preparation for engines whose loss needs the voxel label maps instead of ``label``."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import PrepareBatch, default_prepare_batch

__all__ = ["PrepareBatchWithSeg"]


class PrepareBatchWithSeg(PrepareBatch):
    """``(image, seg)`` for a trainer whose network is trained on the segmentation alone.

    For ``medkit.networks.EvidenceClassifier`` with ``medkit.losses.MaskedDiceCELoss``: the target is the
    ``(N, 1, *spatial)`` label map under ``seg_key`` (-1 where a case has none), not the patient labels.

    Args:
        seg_key: key of the label maps; a batch without a tensor there (none, or collated mask paths) raises
            ``KeyError`` naming the key.
        seg_only: must be ``True`` (kept so bundle configs can say what the batch holds); the
            ``(image, (label, seg))`` batches of the earlier segment-and-classify loss were removed with it.

    Raises:
        ValueError: ``seg_only`` is not true.
    """

    def __init__(self, seg_key: str = "seg", seg_only: bool = True) -> None:
        if not seg_only:
            raise ValueError(
                "seg_only must be True: PrepareBatchWithSeg gives (image, seg) only; "
                "the (image, (label, seg)) batches were removed with RSNASegLoss"
            )
        self.seg_key = seg_key
        self.seg_only = True

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        image, _ = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        seg = batchdata.get(self.seg_key) if isinstance(batchdata, dict) else None
        if not isinstance(seg, torch.Tensor):
            raise KeyError(f"{self.seg_key}: the batch has no voxel label maps under this key")
        return image, seg.to(device=device, non_blocking=non_blocking, **kwargs)
