"""One bundle behind the web API: its own inference workflow, created once and run on each request's files.

The workflow is the bundle's ``inference.json`` made by ``medkit.bundle.create_workflow``, as ``medkit infer`` makes
it, so the server's predictions are ``medkit infer``'s: same reader, input check, preprocessing, network, threshold,
post-processing and writer. Only the dataset's items change between requests; the items come from the config's own
``dataset#data`` expression with ``inputs`` set to the request's files. The weights are loaded once, at start-up,
and requests to one bundle run one at a time (a lock): the network, the writer and the dataset are shared.
"""

from __future__ import annotations

import base64
import copy
import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence

import numpy as np

from medkit.errors import MedkitError

__all__ = ["BundleService", "png_data_url"]

logger = logging.getLogger(__name__)

#: what each kind of bundle takes, for ``GET /api/bundles`` and the page
ACCEPTED = {
    2: ["PNG", "JPEG", "DICOM", "TIFF", "zip of images"],
    3: ["DICOM series (zip)", "NIfTI (.nii, .nii.gz)"],
}


def png_bytes(array: np.ndarray) -> bytes:
    """A ``(H, W)`` or ``(H, W, 3)`` uint8 array as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(data: bytes) -> str:
    """PNG bytes as a ``data:`` URL the page can show and download."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _grey(image: np.ndarray) -> np.ndarray:
    """A 2D float image scaled to ``0..255`` uint8 over its own range."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return (np.nan_to_num(scaled) * 255).astype(np.uint8)


def _views(image: np.ndarray, channel: int, max_slices: int) -> list[np.ndarray]:
    """What the page shows of a network input ``(C, H, W)`` or ``(C, X, Y, Z)``: the displayed channel, and for a
    volume up to ``max_slices`` axial slices (rows: y) evenly spaced."""
    shown = np.asarray(image)[min(channel, image.shape[0] - 1)]
    if shown.ndim == 2:
        return [_grey(shown)]
    depth = shown.shape[-1]
    picks = np.unique(np.linspace(0, depth - 1, min(depth, max_slices)).round().astype(int))
    return [_grey(shown[..., z].T) for z in picks]


class _Capture:
    """Keeps, per input path of the evaluator's last run, what the page shows: the network input's displayed
    channel (the image the prediction and its overlays are drawn on) and, when ``explainer`` is set, the Grad-CAM
    overlay of the predicted class (``medkit.handlers.GradCAMSaver.overlays``)."""

    def __init__(self, channel: int, max_slices: int = 64) -> None:
        self.channel, self.max_slices = channel, max_slices
        self.explainer = None
        self.views: dict[str, list[np.ndarray]] = {}
        self.overlays: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.views.clear()
        self.overlays.clear()

    def __call__(self, engine) -> None:
        from medkit.handlers.report_writer import _to_numpy, decollated

        batch = [item for _, item in decollated(engine)]
        for item in batch:
            if not item.get("error"):
                self.views[str(item.get("image_path", ""))] = _views(
                    _to_numpy(item["image"]), self.channel, self.max_slices
                )
        if self.explainer is not None:
            for i, _name, overlay in self.explainer.overlays(engine):
                self.overlays[str(batch[i].get("image_path", ""))] = overlay


class BundleService:
    """A bundle loaded for serving: ``predict`` runs its inference workflow on files and returns the rows.

    Args:
        bundle: a bundle folder, zip or name (``medkit.bundle.resolve_bundle``).
        work_dir: the server's temporary folder; the workflow writes its outputs below it, and they are read back
            and deleted within each request.

    Raises:
        MedkitError: the bundle cannot be found or loaded (its weights included).
    """

    def __init__(self, bundle: str, work_dir: str) -> None:
        from ignite.engine import Events

        from medkit.bundle import channel_names, create_workflow, load_metadata, resolve_bundle

        self.bundle_dir = resolve_bundle(bundle)
        self.name = os.path.basename(self.bundle_dir.rstrip(os.sep))
        self.meta = load_metadata(self.bundle_dir)
        medkit_meta = self.meta.get("medkit", {})
        self.family = medkit_meta.get("template") or medkit_meta.get("task_type", "classification")
        self.class_names = channel_names(self.meta)
        self.out_dir = os.path.join(work_dir, "outputs", self.name)
        os.makedirs(self.out_dir, exist_ok=True)
        self.workflow = create_workflow(self.bundle_dir, "infer", {"inputs": [], "output_dir": self.out_dir})
        parser = self.workflow.parser
        self.evaluator = parser.get_parsed_content("evaluator")
        self.dataset = parser.get_parsed_content("dataset")
        self.dataloader = parser.get_parsed_content("dataloader")
        self.writer = parser.get_parsed_content("writer")
        loader = parser.get_parsed_content("checkpoint_loader")
        if self.evaluator.has_event_handler(loader, Events.STARTED):  # the weights, once, not on every run
            loader(self.evaluator)
            self.evaluator.remove_event_handler(loader, Events.STARTED)
        self.gradcam_layer = medkit_meta.get("gradcam_layer")
        self.display_channel = int(medkit_meta.get("display_channel") or 0)
        self._capture = _Capture(self.display_channel)
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._capture)
        self._explainer = None
        if self.gradcam_layer and self.family == "classification":
            from medkit.handlers import GradCAMSaver

            network = parser.get_parsed_content("network")
            self._explainer = GradCAMSaver(
                network, self.gradcam_layer, self.out_dir, self.class_names, display_channel=self.display_channel
            )
        self.lock = threading.Lock()

    @property
    def spatial_dims(self) -> int:
        return int(self.meta.get("medkit", {}).get("accepts", {}).get("spatial_dims", 2))

    def describe(self) -> dict:
        """The bundle as ``GET /api/bundles`` lists it: name, task, labels, accepted inputs, threshold."""
        medkit_meta = self.meta.get("medkit", {})
        return {
            "name": self.name,
            "version": self.meta.get("version", ""),
            "task": self.family,
            "description": self.meta.get("description", ""),
            "labels": self.class_names,
            "accepts": medkit_meta.get("accepts", {}).get("kind", ""),
            "inputs": ACCEPTED[3 if self.spatial_dims == 3 else 2],
            "threshold": medkit_meta.get("threshold"),
            "explains": self._explainer is not None,
        }

    def _datalist(self, inputs: Sequence[str]) -> list[dict]:
        """The bundle's own inference items for ``inputs``: its config's ``dataset#data`` with ``inputs`` set."""
        from monai.bundle import ConfigParser

        parser = ConfigParser(copy.deepcopy(self.workflow.parser.config))
        parser["inputs"] = list(inputs)
        return list(parser.get_parsed_content("dataset#data"))

    def predict(self, inputs: Sequence[str], explain: bool = False) -> dict:
        """Run the bundle on ``inputs`` (files or folders) and return what the writer wrote.

        Returns:
            ``{"rows": the writer's rows, "table": its CSV text, "views": {path: [images]},
            "overlays": {path: Grad-CAM overlay}, "files": {written path: PNG bytes}, "seconds": run time}``.

        Raises:
            MedkitError: ``explain`` is asked of a bundle without a Grad-CAM layer, or nothing to read was found.
        """
        if explain and self._explainer is None:
            raise MedkitError(f"{self.name}: this bundle has no Grad-CAM (metadata.json names no medkit.gradcam_layer)")
        data = self._datalist(inputs)
        if not data:
            raise MedkitError("no image files found in the upload")
        with self.lock:
            start = time.perf_counter()
            self._clear_outputs()
            try:
                self.dataset.data = data
                self.dataset._reported = set()
                self._capture.reset()
                self._capture.explainer = self._explainer if explain else None
                self.evaluator.state.epoch_length = len(self.dataloader)
                self.evaluator.run()
                return {
                    "rows": [dict(r) for r in self.writer.rows],
                    "table": _read_text(self.writer.output_file),
                    "views": dict(self._capture.views),
                    "overlays": dict(self._capture.overlays),
                    "files": self._written_pngs(),
                    "seconds": time.perf_counter() - start,
                }
            finally:
                self._capture.explainer = None
                self.dataset.data = []
                self._clear_outputs()

    def _written_pngs(self) -> dict[str, bytes]:
        out = {}
        for folder, _, names in os.walk(self.out_dir):
            for name in names:
                if name.endswith(".png"):
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        out[path] = f.read()
        return out

    def _clear_outputs(self) -> None:
        for name in os.listdir(self.out_dir):
            path = os.path.join(self.out_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""
