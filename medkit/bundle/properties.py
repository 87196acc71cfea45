"""The config ids medkit's commands read or set in a bundle's workflow configs, declared in one place.

MONAI's ``check_properties`` covers the ids MONAI's own runners need (``bundle_root``, ``device``,
``train#trainer``...). The ``medkit`` commands need more: ``medkit evaluate`` reads ``report``, ``medkit infer``
sets ``inputs`` and reads ``writer``, the two-stage pipeline sets ``classifier_bundle``. A bundle that lacks one
would fail in the middle of a command; ``medkit verify`` checks them up front (``missing_ids``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = [
    "CLI_IDS",
    "TASK_IDS",
    "RANGES",
    "required_ids",
    "missing_ids",
    "unknown_ids",
    "describe_unknown",
    "check_ranges",
]

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
        "resume",
        "find_unused_parameters",
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
        "engine",
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
    return [ref for ref in required_ids(config_file, meta) if not _has(config, ref)]


#: allowed ranges of the settings a command line may set: (lowest, highest, lowest included)
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "threshold": (0.0, 1.0, True),
    "stack_threshold": (0.0, 1.0, True),
    "epochs": (1, None, True),
    "val_interval": (1, None, True),
    "batch_size": (1, None, True),
    "val_batch_size": (1, None, True),
    "sw_batch_size": (1, None, True),
    "learning_rate": (0.0, None, False),
    "weight_decay": (0.0, None, True),
    "label_smoothing": (0.0, 1.0, True),
    "cache_rate": (0.0, 1.0, True),
    "num_workers": (0, None, True),
    "train_workers": (0, None, True),
    "early_stop_patience": (1, None, True),
    "slice_window": (1, None, True),
    "n_worst": (0, None, True),
}


def _has(config: Any, ref: str) -> bool:
    node = config
    for part in ref.split("#"):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def unknown_ids(configs: Iterable[Mapping[str, Any]], meta: Mapping[str, Any], ids: Iterable[str]) -> list[str]:
    """The ``ids`` (``a#b`` paths; ``_meta_#...`` in the metadata) that none of the raw ``configs`` defines."""
    configs = list(configs)
    unknown = []
    for ref in ids:
        if ref.startswith("_meta_#"):
            found = _has(meta, ref.split("#", 1)[1])
        else:
            found = ref == "_meta_" or any(_has(c, ref) for c in configs)
        if not found:
            unknown.append(ref)
    return unknown


def describe_unknown(ref: str, configs: Iterable[Mapping[str, Any]], where: str) -> str:
    """One line for an id no config defines, with the closest top-level ids as a hint."""
    names = sorted({k for c in configs for k in c})
    close = difflib.get_close_matches(ref.split("#", 1)[0], names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{ref}: no such config id in {where}{hint}"


def check_ranges(overrides: Mapping[str, Any]) -> None:
    """Raise ``MedkitError`` for an override outside its allowed range (``RANGES``) or of the wrong type."""
    for ref, value in overrides.items():
        if ref not in RANGES or value is None or (isinstance(value, str) and value.startswith(("$", "@"))):
            continue
        low, high, low_included = RANGES[ref]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MedkitError(f"{ref}={value!r}: expected a number")
        below = low is not None and (value < low if low_included else value <= low)
        if below or (high is not None and value > high):
            opening, closing = "[" if low_included else "(", "]" if high is not None else ")"
            span = f"{opening}{low}, {'inf' if high is None else high}{closing}"
            raise MedkitError(f"{ref}={value!r}: out of range, expected a value in {span}")
