"""Datalist builders for the published layouts, patient-level splits and synthetic look-alikes."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Sequence

from medkit.data.cache import cache_memory, log_cache_memory
from medkit.data.chest_xray import build_chest_xray_datalist
from medkit.data.covid import build_covid_datalist
from medkit.data.datalist import (
    DistributedWeightedSampler,
    class_counts,
    class_weights,
    debias_sample_weights,
    debias_weights,
    distributed_train_sampler,
    load_datalist,
    train_sampler,
    write_json_atomic,
)
from medkit.data.inference import TolerantDataset, inference_datalist, series_datalist
from medkit.data.lgg import as_segmentation_datalist, build_lgg_datalist, group_cases
from medkit.data.rsna import build_rsna_datalist, read_rsna_labels
from medkit.data.splits import split_by_patient
from medkit.data.synthetic_ct import synthetic_ct_volume, write_synthetic_rsna
from medkit.errors import MedkitError

logger = logging.getLogger(__name__)

__all__ = [
    "BUILDERS",
    "make_datalist",
    "log_skipped",
    "SPLITS",
    "select_split",
    "build_chest_xray_datalist",
    "build_covid_datalist",
    "build_lgg_datalist",
    "group_cases",
    "inference_datalist",
    "series_datalist",
    "cache_memory",
    "log_cache_memory",
    "build_rsna_datalist",
    "TolerantDataset",
    "split_by_patient",
    "class_counts",
    "class_weights",
    "debias_weights",
    "debias_sample_weights",
    "train_sampler",
    "distributed_train_sampler",
    "DistributedWeightedSampler",
    "load_datalist",
    "write_json_atomic",
    "read_rsna_labels",
    "synthetic_ct_volume",
    "write_synthetic_rsna",
]

#: datalist builder of each data source, by the name used in ``medkit prepare`` and bundle configs
BUILDERS: dict[str, Callable[..., dict]] = {
    "pneumonia": build_chest_xray_datalist,
    "covid": build_covid_datalist,
    "lgg": build_lgg_datalist,
    "rsna": build_rsna_datalist,
}

#: the splits a datalist may hold (``validation_patient``: the random patient-level validation beside a shifted one)
SPLITS = ("training", "validation", "validation_patient", "test", "all")


def make_datalist(
    source: str, dataset_dir: str = "", datalist_file: str = "", class_names: Sequence[str] | None = None, **kwargs
) -> dict:
    """A datalist from a prepared JSON file if one is given, else built from ``dataset_dir``.

    Args:
        source: builder name, one of ``BUILDERS``.
        dataset_dir: the data set folder as published.
        datalist_file: a JSON written by ``medkit prepare``; wins over ``dataset_dir`` when not empty.
        class_names: the bundle's classes in label order (its label map); the datalist must use the same.
        kwargs: passed to the builder (``val_fraction``, ``seed``, ...); ``accepts`` (the bundle's ``medkit.accepts``)
            only to builders that decode the images and so can leave out those the bundle would refuse.

    A datalist built from ``dataset_dir`` lists the files it left out (unreadable, too large, broken links,
    table rows without images) under ``"skipped"``; each is logged here as a warning naming the file, and the
    datalist goes on with the rest.

    Raises:
        MedkitError: unknown source, or neither a datalist file nor a data folder is given.
    """
    if datalist_file:
        datalist = load_datalist(datalist_file)
        _check_labels(datalist, class_names, datalist_file)
        return as_segmentation_datalist(datalist) if kwargs.get("mask_as_label") else datalist
    if source not in BUILDERS:
        raise MedkitError(f"unknown data source '{source}', expected one of {sorted(BUILDERS)}")
    if not dataset_dir:
        raise MedkitError("no data folder given: pass --dataset_dir (bundle), --data (medkit) or set MEDKIT_DATA")
    if class_names is not None:
        kwargs["class_names"] = list(class_names)
    builder = BUILDERS[source]
    if kwargs.get("accepts") is not None and "accepts" not in inspect.signature(builder).parameters:
        kwargs.pop("accepts")  # a source whose builder decodes no image (RSNA: series are checked when loaded)
    datalist = builder(os.path.expanduser(os.fspath(dataset_dir)), **kwargs)
    log_skipped(datalist)
    return datalist


def log_skipped(datalist: dict) -> None:
    """Log each ``{"file", "problem"}`` record of ``datalist["skipped"]`` as one warning line, then their number."""
    skipped = datalist.get("skipped") or []
    for rec in skipped:
        logger.warning("%s: %s", rec["file"], rec["problem"])
    if skipped:
        logger.warning("%d file(s) or folder(s) left out of the datalist", len(skipped))


def _check_labels(datalist: dict, class_names: Sequence[str] | None, where: str) -> None:
    labels = datalist.get("labels")
    if class_names is not None and labels is not None:
        found = [labels[str(i)] for i in range(len(labels))]
        if found != list(class_names):
            raise MedkitError(f"{where}: datalist classes {found} differ from the bundle's {list(class_names)}")


#: item keys only training reads (``debias_score``'s scores); evaluation leaves them out, so a split joined from
#: scored and unscored parts (``"all"``: the test images carry no score) still batches
TRAINING_ONLY_KEYS = ("trait_score",)


def select_split(datalist: dict, split: str) -> list[dict]:
    """Items of one split of a datalist, without ``TRAINING_ONLY_KEYS``; ``"all"`` joins every split."""
    if split not in SPLITS:
        raise MedkitError(f"unknown split '{split}', expected one of {list(SPLITS)}")
    names = SPLITS[:-1] if split == "all" else (split,)
    return [
        {k: v for k, v in item.items() if k not in TRAINING_ONLY_KEYS}
        for name in names
        for item in datalist.get(name, [])
    ]
