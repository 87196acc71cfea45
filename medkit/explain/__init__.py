"""Explanations of classifier decisions: Grad-CAM maps and overlays."""

from __future__ import annotations

from medkit.explain.gradcam import gradcam_maps, overlay_heatmap, save_overlay

__all__ = ["gradcam_maps", "overlay_heatmap", "save_overlay"]
