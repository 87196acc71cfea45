"""A full-resolution segmenter whose per-label evidence feeds one small classification head per target."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet
from torch import nn

__all__ = ["EvidenceClassifier"]


def _check_heads(heads: Mapping[str, int]) -> None:
    """Raise ``ValueError`` unless ``heads`` maps target names to at least 2 classes each."""
    if not heads or any(int(n) < 2 for n in heads.values()):
        raise ValueError(f"heads must map target names to at least 2 classes each, got {dict(heads)}")


class EvidenceClassifier(nn.Module):
    """Segment organs and injuries at the input's resolution, then classify each target from "where is what".

    A whole-abdomen network trained from patient labels (or from a coarse segmentation) does not find a
    lesion of a few voxels on 2 CPU cores. This network separates the two jobs: a MONAI ``UNet`` gives voxel
    logits at full resolution (``segment``; any input size) and can be trained on patches centred on the rare
    labels; each target's head is a logistic regression on the per-label evidence of the whole volume: for
    every foreground label the largest probability and the log of the soft voxel count (``log1p`` of the
    summed probability), standardised with the ``feature_mean`` / ``feature_std`` buffers. The heads are
    fitted afterwards on patients the segmenter did not train on (``medkit.workflows.fit_evidence_heads``), so
    they learn how far to trust it.

    In training mode ``forward`` returns the segmentation logits ``(N, seg_classes, *spatial)`` (for a
    segmentation loss); in eval mode the ``(N, sum(heads))`` class logits, side by side in ``heads`` order, so
    evaluation, inference and the RSNA score treat it as an ordinary classifier.

    Args:
        heads: target name -> classes, in output order.
        seg_classes: segmentation labels including background (11 for ``medkit.data.rsna.SEGMENTATION_LABELS``).
        in_channels: input channels (the CT windows).
        spatial_dims: 3 (2 works too).
        channels: the UNet's widths per level.
        strides: the UNet's downsampling per level (one fewer than ``channels``).
        num_res_units: residual units per UNet block.
        head_labels: target name -> the segmentation labels (1 .. seg_classes - 1) whose evidence its head reads
            (e.g. the liver head: liver and liver injury); a target not named, or ``None``, reads every label.
            Fewer inputs per head: less to overfit with a few dozen injured patients.
    """

    def __init__(
        self,
        heads: Mapping[str, int],
        seg_classes: int = 11,
        in_channels: int = 3,
        spatial_dims: int = 3,
        channels: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] = (2, 2, 2),
        num_res_units: int = 2,
        head_labels: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        _check_heads(heads)
        if int(seg_classes) < 2:
            raise ValueError(f"seg_classes must be at least 2 (background and one label), got {seg_classes}")
        if len(strides) != len(channels) - 1:
            raise ValueError(
                f"strides needs {len(channels) - 1} values for channels {list(channels)}, got {list(strides)}"
            )
        self.seg_classes = int(seg_classes)
        self.segmenter = UNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=self.seg_classes,
            channels=[int(c) for c in channels],
            strides=[int(s) for s in strides],
            num_res_units=int(num_res_units),
            norm="batch",
        )
        self.dims = tuple(range(2, 2 + spatial_dims))
        self.divisor = math.prod(int(s) for s in strides)
        n_labels = self.seg_classes - 1
        self.register_buffer("feature_mean", torch.zeros(2 * n_labels))
        self.register_buffer("feature_std", torch.ones(2 * n_labels))
        chosen = dict(head_labels or {})
        unknown = sorted(set(chosen) - set(heads))
        bad = [lab for labs in chosen.values() for lab in labs if not 1 <= int(lab) <= n_labels]
        if unknown or bad or any(not labs for labs in chosen.values()):
            raise ValueError(
                f"head_labels must map targets of heads to labels 1..{n_labels}, got {dict(chosen)} "
                f"for heads {list(heads)}"
            )
        self.feature_index: dict[str, torch.Tensor] = {}
        for name in heads:
            labels = [int(lab) - 1 for lab in chosen[name]] if name in chosen else list(range(n_labels))
            self.feature_index[name] = torch.tensor(labels + [n_labels + lab for lab in labels])
        self.heads = nn.ModuleDict(
            {name: nn.Linear(len(self.feature_index[name]), int(n)) for name, n in heads.items()}
        )

    @property
    def head_sizes(self) -> dict[str, int]:
        return {name: head.out_features for name, head in self.heads.items()}

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``(N, seg_classes, *x.shape[2:])``; sizes the UNet cannot halve are zero-padded (air
        in every CT window) at the far end and cropped back."""
        size = x.shape[2:]
        pad = [(-s) % self.divisor for s in size]
        if any(pad):
            x = F.pad(x, [p for p in reversed(pad) for p in (0, p)])
        seg = self.segmenter(x)
        return seg[(..., *(slice(0, s) for s in size))] if any(pad) else seg

    def evidence(self, seg_logits: torch.Tensor) -> torch.Tensor:
        """``(N, 2 * (seg_classes - 1))``: per foreground label, the largest probability, then ``log1p`` of the summed
        probability (soft voxel count), over the whole volume."""
        probs = torch.softmax(seg_logits.float(), dim=1)[:, 1:]
        return torch.cat([probs.amax(dim=self.dims), torch.log1p(probs.sum(dim=self.dims))], dim=1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, sum(heads))`` from ``evidence`` features."""
        z = (features - self.feature_mean) / self.feature_std
        return torch.cat([head(z[:, self.feature_index[name]]) for name, head in self.heads.items()], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seg = self.segment(x)
        return seg if self.training else self.classify(self.evidence(seg))
