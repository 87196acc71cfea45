"""MONAI Label's bundle infer and train tasks, run through the bundle's own medkit workflows.

``MedkitInferTask`` is a ``BundleInferTask`` (MONAI Label reads the bundle's metadata, network, labels and
dimension as for any bundle) whose type comes from the metadata (``medkit.task_type``), not from the folder name,
and whose run is ``medkit.label.predict``: the same pipeline as ``medkit infer``. ``MedkitTrainTask`` is a
``BundleTrainTask`` whose run is ``medkit.label.train.train_on_pairs`` on the datastore's final labels.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask
from monailabel.utils.others.generic import device_list, name_to_device

from medkit.bundle import load_metadata
from medkit.errors import MedkitError
from medkit.label.predict import predict
from medkit.label.train import read_train_stats, train_on_pairs

__all__ = ["MedkitInferTask", "MedkitTrainTask"]

logger = logging.getLogger(__name__)


class MedkitInferTask(BundleInferTask):
    """Infer with a medkit bundle; ``type`` is the metadata's ``medkit.task_type``.

    A request's result: for a classifier the JSON of ``medkit.label.predict`` (``label``, ``probabilities``,
    ``threshold``); for a segmenter also the mask (PNG of the slice's size, 0 background, 1 tumour); for the CT
    bundle per-target probabilities. A failed input raises ``MedkitError`` with the bundle's one-line reason.
    """

    def __init__(self, path: str, conf: dict) -> None:
        meta = load_metadata(path)
        kind = meta.get("medkit", {}).get("task_type")
        if kind not in ("classification", "segmentation"):
            raise MedkitError(f"{path}: metadata medkit.task_type is {kind!r}, not classification or segmentation")
        # the CT bundle's output is a vector: MONAI Label's Restored step (resize to the input) does not apply
        super().__init__(path, conf, type=kind, add_post_restore=False)

    def __call__(self, request, callbacks=None):
        start = time.time()
        out_dir = tempfile.mkdtemp(prefix="medkit-label-")
        try:
            device = name_to_device(request.get("device")) if request.get("device") else None
            label_file, result = predict(self.bundle_path, request.get("image") or "", out_dir, device=device)
            if label_file:  # MONAI Label removes the file it sends; the rest of out_dir goes now
                fd, kept = tempfile.mkstemp(suffix=".png", prefix="medkit-label-")
                os.close(fd)
                label_file = shutil.move(label_file, kept)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        result["latencies"] = {"total": round(time.time() - start, 3)}
        return label_file, result


class MedkitTrainTask(BundleTrainTask):
    """Train a medkit segmentation bundle on the datastore's final labels (``medkit.label.train``)."""

    def config(self) -> dict:
        return {"device": device_list(), "pretrained": True, "max_epochs": 10, "val_split": 0.2}

    def stats(self) -> dict:
        return read_train_stats(self.bundle_path)

    def __call__(self, request, datastore):
        device = name_to_device(request.get("device")) if request.get("device") else None
        pairs = [{"image": d["image"], "label": d["label"]} for d in datastore.datalist() if d]
        try:
            stats = train_on_pairs(
                self.bundle_path,
                pairs,
                epochs=int(request.get("max_epochs", 10)),
                val_split=float(request.get("val_split", 0.2)),
                device=device,
                pretrained=bool(request.get("pretrained", True)),
            )
        except MedkitError as e:  # MONAI Label runs this in a process of its own: one line, exit status 1
            logger.error("Error: %s", e)
            raise SystemExit(1) from None
        logger.info(
            "training finished: %s %.4f (epoch %d) -> %s",
            stats["key_metric"],
            stats["best_metric"],
            stats["best_metric_epoch"],
            stats["model"],
        )
        return stats
