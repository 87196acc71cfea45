"""The config ids medkit's commands read or set in a bundle's workflow configs, declared in one place.

MONAI's ``check_properties`` covers the ids MONAI's own runners need (``bundle_root``, ``device``,
``train#trainer``...). The ``medkit`` commands need more: ``medkit evaluate`` reads ``report``, ``medkit infer``
sets ``inputs`` and reads ``writer``, the two-stage pipeline sets ``classifier_bundle``. A bundle that lacks one
would fail in the middle of a command; ``medkit verify`` checks them up front (``missing_ids``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CLI_IDS", "TASK_IDS", "required_ids", "missing_ids"]

#: ids every bundle's workflow configs must define, by config file
CLI_IDS: dict[str, tuple[str, ...]] = {
    "train.json": (
        "bundle_root",
        "device",
        "dataset_dir",
        "datalist_file",
        "all_patients",
        "ckpt_dir",
        "output_dir",
        "epochs",
        "val_interval",
        "early_stop_patience",
        "pretrained",
        "cache_rate",
        "network",
        "optimizer",
        "loss",
        "train#dataloader",
        "train#trainer",
        "validate#evaluator",
    ),
    "evaluate.json": (
        "bundle_root",
        "device",
        "dataset_dir",
        "datalist_file",
        "split",
        "output_dir",
        "ckpt_path",
        "network",
        "evaluator",
        "report",
    ),
    "inference.json": (
        "bundle_root",
        "device",
        "inputs",
        "output_dir",
        "output_file",
        "ckpt_path",
        "batch_size",
        "network",
        "network_def",
        "preprocessing",
        "postprocessing",
        "inferer",
        "evaluator",
        "writer",
    ),
}

#: further ids by the bundle's ``medkit.task_type`` (the threshold and two-stage options of evaluate and infer)
TASK_IDS: dict[str, dict[str, tuple[str, ...]]] = {
    "classification": {
        "evaluate.json": ("threshold", "stack_threshold", "n_worst"),
        "inference.json": ("threshold", "stack_threshold", "class_names"),
    },
    "segmentation": {
        "evaluate.json": ("threshold", "stack_threshold", "classifier_bundle", "n_worst"),
        "inference.json": ("threshold", "stack_threshold", "classifier_bundle", "pixel_spacing", "overlays"),
    },
}


def required_ids(config_file: str, meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The ids ``config_file`` (``train.json``, ``evaluate.json``, ``inference.json``) of a bundle with this metadata
    must define for the ``medkit`` commands."""
    task = meta.get("medkit", {}).get("task_type", "")
    template = meta.get("medkit", {}).get("template", "")
    extra = TASK_IDS.get(task, {}).get(config_file, ()) if template != "trauma" else ()
    return CLI_IDS.get(config_file, ()) + extra


def missing_ids(config: Mapping[str, Any], config_file: str, meta: Mapping[str, Any]) -> list[str]:
    """The required ids (``required_ids``) that the raw config dict does not define (``a#b`` looks into ``a``)."""
    missing = []
    for ref in required_ids(config_file, meta):
        node: Any = config
        for part in ref.split("#"):
            if not isinstance(node, Mapping) or part not in node:
                missing.append(ref)
                break
            node = node[part]
    return missing
