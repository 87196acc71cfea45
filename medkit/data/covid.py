"""Datalist builder for the COVID-19 Radiography Database (COVID, Lung_Opacity, Normal, Viral Pneumonia)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from medkit.data.folders import build_class_folder_datalist

__all__ = ["FOLDERS", "THREE_CLASSES", "THREE_CLASS_MAP", "FOUR_CLASS_MAP", "build_covid_datalist"]

#: class folders as published
FOLDERS = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
#: the default three classes: COVID, other lung disease (lung opacity and viral pneumonia), normal
THREE_CLASSES = ("COVID", "Other_lung_disease", "Normal")
THREE_CLASS_MAP = {
    "COVID": "COVID",
    "Lung_Opacity": "Other_lung_disease",
    "Viral Pneumonia": "Other_lung_disease",
    "Normal": "Normal",
}
#: the database's own four classes
FOUR_CLASS_MAP = {name: name for name in FOLDERS}


def _image_id(path: str) -> str:
    # the database names files <class>-<n>.png and gives no patient id: each image is its own case
    return os.path.splitext(os.path.basename(path))[0]


def build_covid_datalist(
    dataset_dir: str,
    class_names: Sequence[str] = THREE_CLASSES,
    folder_classes: Mapping[str, str | None] | None = None,
    val_fraction: float = 0.15,
    seed: int = 0,
    check_images: bool = True,
    progress: bool = False,
    accepts: Mapping[str, Any] | None = None,
) -> dict:
    """Build a MONAI datalist from a COVID-19 Radiography Database folder.

    Class folders hold PNGs directly or, in later releases, under ``images/`` (``masks/`` and the
    metadata spreadsheets are ignored). The folder-to-class map comes from the bundle config; the
    default merges Lung_Opacity and Viral Pneumonia into one "other lung disease" class, and
    ``FOUR_CLASS_MAP`` with ``FOLDERS`` as class names keeps the original four. The database has no
    patient ids, so the split is by image, stratified by class.
    See ``build_class_folder_datalist`` for the other arguments and the result.
    """
    return build_class_folder_datalist(
        "covid19_radiography",
        dataset_dir,
        class_names,
        THREE_CLASS_MAP if folder_classes is None else folder_classes,
        _image_id,
        val_fraction=val_fraction,
        seed=seed,
        check_images=check_images,
        progress=progress,
        accepts=accepts,
        images_subfolder="images",
        nested_name="COVID-19_Radiography_Dataset",
    )
