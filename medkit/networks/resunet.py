"""``ResUNet``: a U-Net whose encoder and decoder stages are residual units (Zhang et al. 2018, "Road
Extraction by Deep Residual U-Net"), the architecture of the earlier LGG notebook work, built from MONAI blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.layers import Conv
from torch import nn

__all__ = ["ResUNet", "ResEncoderClassifier"]


def _residual_encoder(
    spatial_dims: int, in_channels: int, channels: Sequence[int], norm: str | tuple, dropout: float
) -> nn.ModuleList:
    """Residual units, the first at full resolution, each further one halving the size (stride 2)."""
    stages = nn.ModuleList()
    prev = in_channels
    for i, ch in enumerate(channels):
        stages.append(
            ResidualUnit(
                spatial_dims,
                prev,
                ch,
                strides=1 if i == 0 else 2,
                norm=norm,
                act="RELU",
                dropout=dropout if i == len(channels) - 1 else None,
            )
        )
        prev = ch
    return stages


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
        self.encoder = _residual_encoder(spatial_dims, in_channels, channels, norm, dropout)
        prev = channels[-1]
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


class ResEncoderClassifier(nn.Module):
    """A residual (ResNet-family) image classifier whose feature extractor is ``ResUNet``'s encoder.

    Parameter names match ``ResUNet``'s (``encoder.*``), so ``medkit.networks.load_pretrained(net, seg_checkpoint)``
    starts it from a trained segmenter: the encoder has then learnt from every pixel of every mask, which a
    slice-level label alone cannot teach on a few hundred slices. The head pools the last stage by average and
    maximum (a small tumour is a local maximum) and applies dropout and a linear layer.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        num_classes: output logits.
        channels: features of each encoder stage (as the segmenter's to share its weights).
        norm: normalisation of the residual units.
        dropout: dropout before the linear layer.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        num_classes: int = 2,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        norm: str | tuple = "batch",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.encoder = _residual_encoder(spatial_dims, in_channels, channels, norm, 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.encoder:
            x = stage(x)
        flat = x.flatten(2)
        return self.head(torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1))
