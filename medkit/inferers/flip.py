"""Flip test-time augmentation around another inferer."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["FlipTTAInferer"]


class FlipTTAInferer(Inferer):
    """The mean logit of ``inferer`` over the input and its flips along ``spatial_axes`` (every combination: for
    the two axes of a slice, as is, up-down, left-right and both), each prediction flipped back before averaging.

    Averaging logits, not probabilities, keeps a pixel's decision at threshold 0.5 the vote of the four views
    weighted by confidence. It costs one pass of ``inferer`` per view.

    Args:
        inferer: the inferer of each view (e.g. ``SlidingWindowInferer``).
        spatial_axes: tensor axes to flip (``(2, 3)``: rows and columns of a ``(B, C, H, W)`` batch).
    """

    def __init__(self, inferer: Inferer, spatial_axes: Sequence[int] = (2, 3)) -> None:
        super().__init__()
        axes = [int(a) for a in spatial_axes]
        if not axes or any(a < 2 for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"spatial_axes must be distinct axes >= 2 (after batch and channel), got {spatial_axes}")
        self.inferer = inferer
        self.flips = [dims for n in range(len(axes) + 1) for dims in itertools.combinations(axes, n)]

    def views(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Iterator[torch.Tensor]:
        """Each view's output of ``inferer``, flipped back and as float, the unflipped view first."""
        for dims in self.flips:
            out = self.inferer(inputs.flip(dims) if dims else inputs, network, *args, **kwargs)
            yield (out.flip(dims) if dims else out).float()

    @staticmethod
    def average(views: Iterable[torch.Tensor]) -> torch.Tensor:
        """The mean of the views' outputs (``views`` gives them), summed in order."""
        total, n = None, 0
        for out in views:
            total, n = (out if total is None else total + out), n + 1
        if total is None:
            raise ValueError("average needs at least one view")
        return total / n

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.average(self.views(inputs, network, *args, **kwargs))
