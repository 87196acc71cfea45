"""Mask outlines drawn over an MRI slice, for inference overlays and evaluation grids."""

from __future__ import annotations

import numpy as np

__all__ = ["mask_outline_overlay", "save_rgb_png"]

#: outline colours: prediction red, ground truth green
PRED_COLOUR = (255, 40, 40)
TRUTH_COLOUR = (40, 230, 40)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` floats in ``[0, 1]`` to ``(H, W, 3)`` uint8; three channels shown as RGB."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
        img = np.moveaxis(img, 0, -1)
    else:
        img = np.repeat(img[..., None], 3, axis=-1)
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def mask_outline_overlay(
    image: np.ndarray, pred: np.ndarray | None = None, truth: np.ndarray | None = None
) -> np.ndarray:
    """An RGB ``(H, W, 3)`` uint8 image with the outline of ``pred`` in red and of ``truth`` in green.

    Args:
        image: ``(C, H, W)`` (three channels shown as RGB, one as grey) or ``(H, W)``, values in ``[0, 1]``.
        pred: predicted mask ``(H, W)`` or ``(1, H, W)``, foreground > 0.5.
        truth: true mask of the same shape.
    """
    from skimage.segmentation import find_boundaries

    rgb = _as_rgb(image)
    for mask, colour in ((truth, TRUTH_COLOUR), (pred, PRED_COLOUR)):
        if mask is None:
            continue
        m = np.asarray(mask).reshape(rgb.shape[:2]) > 0.5
        if m.any():
            rgb[find_boundaries(m, mode="inner")] = colour
    return rgb


def save_rgb_png(array: np.ndarray, path: str) -> str:
    """Save a ``(H, W)`` or ``(H, W, 3)`` uint8 array as PNG atomically (no half-written file)."""
    from PIL import Image

    from medkit.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(tmp, format="PNG")
    return path
