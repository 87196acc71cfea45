"""Explanations of model outputs: Grad-CAM maps and overlays, mask outlines."""

from __future__ import annotations

from medkit.explain.gradcam import gradcam_maps, overlay_heatmap, save_overlay
from medkit.explain.overlay import mask_outline_overlay, save_rgb_png

__all__ = ["gradcam_maps", "overlay_heatmap", "save_overlay", "mask_outline_overlay", "save_rgb_png"]
