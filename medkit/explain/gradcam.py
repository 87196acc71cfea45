"""Grad-CAM heat maps (MONAI's ``GradCAM``) and their overlays on the input image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["gradcam_maps", "overlay_heatmap", "save_overlay"]


def gradcam_maps(
    network: torch.nn.Module, images: torch.Tensor, target_layer: str, class_idx: Sequence[int] | int | None = None
) -> np.ndarray:
    """Grad-CAM maps for a batch, upsampled to the image size and scaled to ``[0, 1]`` per image.

    Args:
        network: the classifier; it is put in eval mode and left so.
        images: ``(B, C, H, W)`` network inputs.
        target_layer: name of the module whose activations are weighted (``"class_layers.relu"`` for
            MONAI's DenseNet).
        class_idx: class per image (or one for all); the predicted class when ``None``.

    Returns:
        ``(B, H, W)`` float32 array.
    """
    from monai.visualize import GradCAM

    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    names = {n for n, _ in network.named_modules()}
    if target_layer not in names:
        raise ValueError(f"target_layer '{target_layer}' is not a module of {type(network).__name__}")
    network.eval()
    cam = GradCAM(nn_module=network, target_layers=target_layer)
    images = images.detach().float()
    with torch.enable_grad():
        if class_idx is None or isinstance(class_idx, int):
            maps = cam(images, class_idx=class_idx)
        else:  # MONAI takes one class for the batch: run per image
            maps = torch.cat([cam(images[i : i + 1], class_idx=int(c)) for i, c in enumerate(class_idx)])
    return maps[:, 0].detach().cpu().numpy().astype(np.float32)


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a ``[0, 1]`` heat map (jet colours) over a grayscale image; returns ``(H, W, 3)`` uint8."""
    from matplotlib import colormaps

    image = np.asarray(image, dtype=np.float32)
    if image.shape != heat.shape:
        raise ValueError(f"image {image.shape} and heat map {heat.shape} differ in shape")
    lo, hi = float(image.min()), float(image.max())
    gray = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    colour = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    rgb = (1 - alpha) * gray[..., None] + alpha * colour
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def save_overlay(path: str, image: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> str:
    """Write the overlay as PNG through a temporary file; returns ``path``."""
    from medkit.explain.overlay import save_rgb_png

    return save_rgb_png(overlay_heatmap(image, heat, alpha), path)
