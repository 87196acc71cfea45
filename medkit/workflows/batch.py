"""Batch preparation for MONAI engines: plain tensors on the device, the batch augmentation, voxel label maps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from monai.engines.utils import PrepareBatch, default_prepare_batch

__all__ = ["DeviceBatch", "PrepareBatchWithSeg"]


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


def _plain(value: Any) -> Any:
    """``value`` with every MONAI ``MetaTensor`` in it as a plain ``torch.Tensor`` (the same storage)."""
    if isinstance(value, torch.Tensor):
        return value.as_tensor() if hasattr(value, "as_tensor") else value
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class DeviceBatch(PrepareBatch):
    """A trainer's or evaluator's batch as plain tensors on the device, augmented there as a whole batch.

    The network sees plain tensors: a MONAI ``MetaTensor`` input makes every operation of the forward and
    backward pass go through its ``__torch_function__`` and copy metadata (the pneumonia bundle's training went
    from 47 to 51 images/s on 2 CPU cores without it; ``bundles/pneumonia/docs/experiments.md``). The collated
    batch the engine keeps (``engine.state.batch``, which handlers and writers read) is not changed.

    Args:
        prepare_batch: how ``(inputs, targets[, args, kwargs])`` are taken from the batch (MONAI's
            ``default_prepare_batch``: ``image`` and ``label``).
        augmentation: a ``medkit.transforms.BatchAugmentation`` (or any callable from a batch dictionary to a
            batch dictionary) applied to the batch on the device before ``prepare_batch``; its keys are moved to
            the device first.
    """

    def __init__(
        self,
        prepare_batch: Callable[..., Any] = default_prepare_batch,
        augmentation: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.prepare_batch = prepare_batch
        self.augmentation = augmentation

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> Any:
        if self.augmentation is not None and isinstance(batchdata, Mapping):
            keys = getattr(self.augmentation, "keys", None) or list(batchdata)
            batchdata = dict(batchdata)
            for key in keys:
                value = batchdata.get(key)
                if isinstance(value, torch.Tensor):
                    batchdata[key] = _plain(value).to(device=device, non_blocking=non_blocking)
            batchdata = self.augmentation(batchdata)
        return _plain(self.prepare_batch(batchdata, device, non_blocking, **kwargs))
