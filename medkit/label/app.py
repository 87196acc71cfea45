"""The MONAI Label app that serves medkit bundles: ``<app dir>/main.py`` imports ``MedkitLabelApp`` from here.

The bundles are the folders ``<app dir>/model/<name>`` named in the app's ``models`` setting (``medkit label-server``
copies them there); each is served under its folder name. The studies folder is a MONAI Label local datastore that
also lists ``.jpeg``, ``.tiff`` and ``.dcm`` files. A request that fails answers with its one-line reason: a bad
input 422, an unknown image or model 404.
"""

from __future__ import annotations

import logging
import os

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import MONAILabelException
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

import medkit
from medkit.bundle import load_metadata
from medkit.errors import MedkitError
from medkit.label.tasks import MedkitInferTask, MedkitTrainTask

__all__ = ["MedkitLabelApp", "STUDY_EXTENSIONS"]

logger = logging.getLogger(__name__)

#: the files the studies folder lists: MONAI Label's own and what medkit's bundles read
STUDY_EXTENSIONS = [
    "*.nii.gz",
    "*.nii",
    "*.nrrd",
    "*.jpg",
    "*.jpeg",
    "*.png",
    "*.tif",
    "*.tiff",
    "*.dcm",
]


class MedkitLabelApp(MONAILabelApp):
    """MONAI Label app of medkit bundles (conf ``models``: comma-separated folder names under ``<app>/model``)."""

    def __init__(self, app_dir: str, studies: str, conf: dict) -> None:
        names = [n.strip() for n in conf.get("models", "").split(",") if n.strip()]
        if not names:
            raise MedkitError("MONAI Label app: no bundles named (conf models)")
        self.bundles = {name: os.path.join(app_dir, "model", name) for name in names}
        for path in self.bundles.values():
            load_metadata(path)  # a missing or broken bundle is named here, before the server listens
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="medkit",
            description=f"medkit bundles: {', '.join(names)}",
            version=medkit.__version__,
        )

    def init_datastore(self) -> LocalDatastore:
        return LocalDatastore(
            self.studies,
            extensions=STUDY_EXTENSIONS,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def init_infers(self) -> dict:
        infers = {}
        for name, path in self.bundles.items():
            task = MedkitInferTask(path, self.conf)
            if not task.is_valid():
                raise MedkitError(f"{path}: MONAI Label cannot load this bundle (no models/model.pt?)")
            infers[name] = task
        return infers

    def init_trainers(self) -> dict:
        return {
            name: MedkitTrainTask(path, self.conf)
            for name, path in self.bundles.items()
            if load_metadata(path).get("medkit", {}).get("task_type") == "segmentation"
        }

    def init_strategies(self) -> dict:
        return {"random": Random(), "first": First()}

    def infer(self, request, datastore=None):
        """MONAI Label's infer, with every failure answered by its one-line reason."""
        model, image = request.get("model"), request.get("image")
        if model not in self._infers:
            raise HTTPException(404, f"no bundle '{model}' here (served: {', '.join(self._infers)})")
        store = datastore or self.datastore()
        if isinstance(image, str) and not os.path.exists(image) and not store.get_image_uri(image):
            raise HTTPException(404, f"{image}: no such image in the studies folder {self.studies}")
        try:
            return super().infer(request, datastore)
        except MedkitError as e:
            raise HTTPException(422, str(e)) from None
        except MONAILabelException as e:
            raise HTTPException(400, e.msg) from None
        except Exception as e:  # noqa: BLE001 - anything else: still one line, naming the bundle
            logger.exception("infer %s failed", model)
            raise HTTPException(500, f"{model}: {type(e).__name__}: {e}".splitlines()[0]) from None
