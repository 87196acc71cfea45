"""An inferer that asks a segment-and-classify network for its segmentation instead of its class logits."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["SegmentInferer"]


class SegmentInferer(Inferer):
    """Call ``network.segment(inputs)``: the voxel logits of a network whose ``forward`` returns class logits in
    eval mode (``medkit.networks.EvidenceClassifier``), for validating its segmenter with MONAI's metrics."""

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        segment = getattr(network, "segment", None)
        if not callable(segment):
            raise TypeError(f"{type(network).__name__} has no segment() method")
        return segment(inputs)
