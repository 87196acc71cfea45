"""Ignite handler that writes a Grad-CAM overlay PNG for every input an evaluator sees."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from medkit.explain.gradcam import gradcam_maps, overlay_heatmap
from medkit.explain.overlay import save_rgb_png
from medkit.handlers.report_writer import decollated

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["GradCAMSaver"]

logger = logging.getLogger(__name__)


class GradCAMSaver:
    """After each iteration, compute Grad-CAM for the predicted class and save ``<stem>_gradcam.png`` overlays.

    Inputs that failed to load (an ``error`` in the item) are skipped. The overlay is drawn on the
    network input (after preprocessing), so it matches what the network saw.

    Args:
        network: the classifier the evaluator runs.
        target_layer: module name for Grad-CAM (the bundle's ``medkit.gradcam_layer``).
        output_dir: folder for the PNGs.
        class_names: names in output-channel order, written into the file names.
        path_key: key of the input path in each item.
        display_channel: the input channel the heat map is drawn on (the slice itself of a 2.5D input).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        target_layer: str,
        output_dir: str,
        class_names: Sequence[str],
        path_key: str = "image_path",
        display_channel: int = 0,
    ) -> None:
        self.network = network
        self.display_channel = int(display_channel)
        self.target_layer = target_layer
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.path_key = path_key
        self.written: list[str] = []

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def overlays(self, engine: Engine) -> list[tuple[int, str, np.ndarray]]:
        """Grad-CAM of the predicted class for each read item of the engine's last iteration, without writing it.

        Returns:
            ``(position in the batch, class name, (H, W, 3) uint8 overlay)`` per item that was read.
        """
        pairs = list(decollated(engine))
        outputs, batch = [o for o, _ in pairs], [b for _, b in pairs]
        keep = [i for i, item in enumerate(batch) if not item.get("error")]
        if not keep:
            return []
        device = next(self.network.parameters()).device
        images = torch.stack([torch.as_tensor(batch[i]["image"]) for i in keep]).to(device)
        preds = [int(torch.as_tensor(outputs[i]["pred"]).argmax()) for i in keep]
        maps = gradcam_maps(self.network, images, self.target_layer, class_idx=preds)
        shown = images[:, self.display_channel].cpu().numpy()
        return [(i, self.class_names[preds[k]], overlay_heatmap(shown[k], maps[k])) for k, i in enumerate(keep)]

    def __call__(self, engine: Engine) -> None:
        batch = [b for _, b in decollated(engine)]
        for i, name, overlay in self.overlays(engine):
            stem = os.path.splitext(os.path.basename(str(batch[i].get(self.path_key, f"item{i}"))))[0]
            path = os.path.join(self.output_dir, f"{stem}_{name}_gradcam.png")
            self.written.append(save_rgb_png(overlay, path))
