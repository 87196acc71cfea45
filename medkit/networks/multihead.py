"""A 3D classifier with one output head per target on a shared MONAI ResNet backbone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.networks.nets import ResNet
from torch import nn

__all__ = ["MultiHeadClassifier"]

POOLINGS = ("avg", "max", "avgmax")


def check_heads(heads: Mapping[str, int]) -> None:
    """Raise ``ValueError`` unless ``heads`` maps target names to at least 2 classes each."""
    if not heads or any(int(n) < 2 for n in heads.values()):
        raise ValueError(f"heads must map target names to at least 2 classes each, got {dict(heads)}")


class _GlobalPool(nn.Module):
    """Global max pooling, or average and max pooling side by side, in place of ResNet's ``avgpool``."""

    def __init__(self, spatial_dims: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.dims = tuple(range(2, 2 + spatial_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = x.amax(dim=self.dims, keepdim=True)
        return top if self.kind == "max" else torch.cat([x.mean(dim=self.dims, keepdim=True), top], dim=1)


class MultiHeadClassifier(nn.Module):
    """MONAI ``ResNet`` features (global average pooled), then one linear head per target.

    The heads' logits are returned side by side as one ``(N, sum(heads))`` tensor in ``heads`` order, so MONAI's
    engines, handlers and the RSNA score (``medkit.metrics.rsna``, 13 columns) see an ordinary classifier output.

    Args:
        heads: target name -> number of classes, in output order (e.g. bowel 2, extravasation 2, kidney 3, ...).
        in_channels: input channels (the CT windows).
        spatial_dims: 3 for volumes (2 also works).
        layers: residual blocks per stage (``[1, 1, 1, 1]`` is MONAI's ResNet-10).
        block_inplanes: widths of the four stages.
        dropout: dropout before the heads.
        conv1_t_stride: stride of the first convolution (2 halves every axis early: cheaper on CPU).
        pooling: ``"avg"`` (MONAI's global average), ``"max"`` or ``"avgmax"`` (both, concatenated): a small
            lesion anywhere in the volume survives max pooling, where averaging over the abdomen dilutes it.
    """

    def __init__(
        self,
        heads: Mapping[str, int],
        in_channels: int = 3,
        spatial_dims: int = 3,
        layers: Sequence[int] = (1, 1, 1, 1),
        block_inplanes: Sequence[int] = (32, 64, 128, 256),
        dropout: float = 0.2,
        conv1_t_stride: int = 2,
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        check_heads(heads)
        if len(layers) != 4 or len(block_inplanes) != 4:
            raise ValueError(f"layers and block_inplanes need 4 stages, got {list(layers)} and {list(block_inplanes)}")
        self.backbone = ResNet(
            block="basic",
            layers=[int(n) for n in layers],
            block_inplanes=[int(n) for n in block_inplanes],
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_stride=conv1_t_stride,
            feed_forward=False,
        )
        if pooling != "avg":
            self.backbone.avgpool = _GlobalPool(spatial_dims, pooling)
        features = int(block_inplanes[-1]) * (2 if pooling == "avgmax" else 1)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(features, int(n)) for name, n in heads.items()})

    @property
    def head_sizes(self) -> dict[str, int]:
        return {name: head.out_features for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.dropout(self.backbone(x))
        return torch.cat([head(features) for head in self.heads.values()], dim=1)
