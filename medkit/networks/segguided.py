"""A 3D multi-head classifier that also segments: voxel labels teach it where the organs and injuries are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from medkit.networks.multihead import check_heads

__all__ = ["SegGuidedClassifier", "HEAD_INPUTS"]

HEAD_INPUTS = ("all", "seg")


class SegGuidedClassifier(nn.Module):
    """Residual encoder-decoder with a segmentation output and one classification head per target.

    A handful of injured patients per class is too little for a classifier to find small lesions in a whole
    abdomen from patient labels alone. Voxel labels (organs and injuries, ``medkit.data.rsna.SEGMENTATION_LABELS``)
    give it thousands of examples per patient. The encoder works from half resolution (a strided stem) down to
    1/16; the decoder returns to 1/4 resolution (24 mm voxels at 6 mm input: enough to say where an injury is,
    and about as cheap to train as a ResNet-10 on 2 CPU cores), where a 1x1 convolution gives the segmentation
    logits. Each head sees the encoder's deepest features (global average and max) and,
    for every foreground label, the largest and the mean predicted probability over the volume: "how sure is
    the network that there is a liver injury anywhere".

    In training mode ``forward`` returns ``(class_logits, seg_logits)``, the latter at 1/4 resolution, for a
    loss that uses both (``medkit.losses.RSNASegLoss`` brings the labels to that size); in eval mode only the
    ``(N, sum(heads))`` class logits, so evaluation, inference and the RSNA score treat it as an ordinary
    classifier (as MONAI's DynUNet returns its deep supervision outputs in training only). ``forward_all`` gives
    both in any mode, the segmentation upsampled to the input size.

    Args:
        heads: target name -> classes, in output order.
        seg_classes: segmentation labels including background (11 for ``SEGMENTATION_LABELS``).
        in_channels: input channels (the CT windows).
        spatial_dims: 3 (2 works too).
        channels: widths at 1/2, 1/4, 1/8 and 1/16 resolution (the segmentation comes from the 1/4 level).
        dropout: dropout before the heads.
        head_inputs: ``"all"`` (deep features and segmentation evidence) or ``"seg"`` (the per-label largest and
            mean probabilities only: 2 x (seg_classes - 1) numbers, so each head is a small logistic
            regression on "where is what" and cannot memorise patients through the deep features).
    """

    def __init__(
        self,
        heads: Mapping[str, int],
        seg_classes: int = 11,
        in_channels: int = 3,
        spatial_dims: int = 3,
        channels: Sequence[int] = (16, 32, 64, 128),
        dropout: float = 0.2,
        head_inputs: str = "all",
    ) -> None:
        super().__init__()
        if head_inputs not in HEAD_INPUTS:
            raise ValueError(f"head_inputs must be one of {list(HEAD_INPUTS)}, got {head_inputs!r}")
        self.head_inputs = head_inputs
        check_heads(heads)
        if int(seg_classes) < 2:
            raise ValueError(f"seg_classes must be at least 2 (background and one label), got {seg_classes}")
        ch = [int(c) for c in channels]
        if len(ch) != 4 or min(ch) < 1:
            raise ValueError(f"channels needs 4 positive widths, got {list(channels)}")
        self.seg_classes = int(seg_classes)

        def unit(cin: int, cout: int, stride: int = 1) -> nn.Module:
            return ResidualUnit(spatial_dims, cin, cout, strides=stride, subunits=2, norm="batch")

        self.stem = Convolution(spatial_dims, in_channels, ch[0], strides=2, kernel_size=3, norm="batch")
        self.down = nn.ModuleList([unit(ch[i], ch[i + 1], stride=2) for i in range(3)])
        self.up = nn.ModuleList([unit(ch[i + 1] + ch[i], ch[i]) for i in (2, 1)])
        self.seg_head = Convolution(spatial_dims, ch[1], self.seg_classes, kernel_size=1, conv_only=True)
        self.dims = tuple(range(2, 2 + spatial_dims))
        features = 2 * (self.seg_classes - 1) + (2 * ch[3] if head_inputs == "all" else 0)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(features, int(n)) for name, n in heads.items()})

    @property
    def head_sizes(self) -> dict[str, int]:
        return {name: head.out_features for name, head in self.heads.items()}

    def _coarse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits and the segmentation logits at 1/4 resolution."""
        skips = [self.down[0](self.stem(x))]
        for block in self.down[1:]:
            skips.append(block(skips[-1]))
        deep = skips.pop()
        y = deep
        for block in self.up:
            skip = skips.pop()
            y = block(torch.cat([F.interpolate(y, size=skip.shape[2:], mode="nearest"), skip], dim=1))
        seg_coarse = self.seg_head(y)
        probs = torch.softmax(seg_coarse, dim=1)[:, 1:]
        evidence = [probs.amax(dim=self.dims), probs.mean(dim=self.dims)]
        deep_features = [deep.mean(dim=self.dims), deep.amax(dim=self.dims)] if self.head_inputs == "all" else []
        features = torch.cat(deep_features + evidence, dim=1)
        features = self.dropout(features)
        return torch.cat([head(features) for head in self.heads.values()], dim=1), seg_coarse

    def forward_all(self, x: torch.Tensor, full_size: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(class_logits (N, sum(heads)), seg_logits (N, seg_classes, *x.shape[2:]))`` in any mode; with
        ``full_size=False`` the segmentation logits stay on the network's 1/4 grid."""
        logits, seg_coarse = self._coarse(x)
        if not full_size:
            return logits, seg_coarse
        mode = "trilinear" if len(self.dims) == 3 else "bilinear"
        return logits, F.interpolate(seg_coarse, size=x.shape[2:], mode=mode, align_corners=False)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """The segmentation logits on the network's own 1/4 grid, in any mode."""
        return self._coarse(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits, seg = self._coarse(x)
        return (logits, seg) if self.training else logits
