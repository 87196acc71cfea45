"""Post-processing of binary segmentation logits shared by training, evaluation and inference."""

from __future__ import annotations

from monai.transforms import Activationsd, AsDiscreted, Compose, EnsureTyped

__all__ = ["segmentation_postprocessing"]


def segmentation_postprocessing(threshold: float = 0.5) -> Compose:
    """Sigmoid the one-channel logits in ``pred`` and binarise them at ``threshold`` (``pred`` becomes 0/1)."""
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return Compose(
        [
            EnsureTyped(keys="pred", track_meta=False),
            Activationsd(keys="pred", sigmoid=True),
            AsDiscreted(keys="pred", threshold=float(threshold)),
        ]
    )
