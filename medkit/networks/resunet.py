"""``ResUNet``: a U-Net whose encoder and decoder stages are residual units (Zhang et al. 2018, "Road
Extraction by Deep Residual U-Net"), the architecture of the earlier LGG notebook work, built from MONAI blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.layers import Conv
from torch import nn

__all__ = ["ResUNet"]


class ResUNet(nn.Module):
    """Residual encoder-decoder with skip connections, for 2D or 3D segmentation.

    Each encoder stage is a residual unit (two conv-norm-act subunits and an identity or 1x1 projection
    shortcut) whose first convolution has stride 2 from the second stage on; each decoder stage upsamples by
    a transposed convolution, concatenates the encoder features of the same size and applies a residual unit.
    Inputs must have sides divisible by ``2 ** (len(channels) - 1)``; sliding-window inference with such a
    patch size handles any image size.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (3 for the LGG slices: pre-contrast, FLAIR, post-contrast).
        out_channels: output channels (logits; 1 for a binary mask with a sigmoid).
        channels: features of each encoder stage, e.g. ``(16, 32, 64, 128, 256)``.
        norm: normalisation of the residual units (MONAI name).
        dropout: dropout in the bottleneck stage.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        norm: str | tuple = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"channels needs at least two stages, got {channels}")
        self.depth = len(channels) - 1
        self.encoder = nn.ModuleList()
        prev = in_channels
        for i, ch in enumerate(channels):
            self.encoder.append(
                ResidualUnit(
                    spatial_dims,
                    prev,
                    ch,
                    strides=1 if i == 0 else 2,
                    norm=norm,
                    act="RELU",
                    dropout=dropout if i == self.depth else None,
                )
            )
            prev = ch
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for ch in reversed(channels[:-1]):
            self.up.append(Conv[Conv.CONVTRANS, spatial_dims](prev, ch, kernel_size=2, stride=2))
            self.decoder.append(ResidualUnit(spatial_dims, 2 * ch, ch, norm=norm, act="RELU"))
            prev = ch
        self.head = Convolution(spatial_dims, prev, out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.depth
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"input sides {tuple(x.shape[2:])} must be divisible by {factor}")
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        skips.pop()
        for up, stage in zip(self.up, self.decoder):
            x = stage(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
