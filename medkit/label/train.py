"""Train a segmentation bundle on the image/label pairs of a MONAI Label datastore, by the bundle's own recipe.

Nothing here needs MONAI Label: ``train_on_pairs`` writes the pairs as a datalist split by patient and runs the
first stage of the bundle's recipe (``train.json``, as ``medkit train --stage 1``) with the epochs asked for; the
best model by the bundle's validation key metric replaces ``models/model.pt`` and the figures go to
``runs/train_stats.json`` (what MONAI Label shows as the trainer's ``train_stats``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import numpy as np

from medkit.errors import MedkitError

__all__ = ["train_on_pairs", "read_train_stats", "STATS_FILE", "DATALIST_FILE"]

#: where a training from MONAI Label leaves its figures and its datalist, under the bundle folder
STATS_FILE = os.path.join("runs", "train_stats.json")
DATALIST_FILE = os.path.join("runs", "monailabel_datalist.json")


def _with_patients(pairs: Sequence[dict]) -> list[dict]:
    """Datalist items of ``{"image", "label"}`` pairs, with the case (``<case>_<n>.tif`` -> ``<case>``, else the
    image's own name) and the patient of each."""
    from medkit.data.lgg import case_of_slice, patient_of_case

    items = []
    for pair in pairs:
        image = os.fspath(pair["image"])
        case = case_of_slice(image) or os.path.basename(image).split(".")[0]
        items.append(
            {"image": image, "label": os.fspath(pair["label"]), "case": case, "patient": patient_of_case(case)}
        )
    return items


def _split(items: list[dict], val_split: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Training and validation items, no patient on both sides: ``val_split`` of the patients (at least one)."""
    patients = sorted({i["patient"] for i in items})
    if len(patients) < 2:
        raise MedkitError(
            f"{len(items)} labelled image(s) of {len(patients)} patient(s) in the datastore: training needs "
            "final labels of at least 2 patients (one for validation)"
        )
    n_val = min(len(patients) - 1, max(1, int(round(val_split * len(patients)))))
    order = np.random.default_rng(seed).permutation(len(patients))
    val_patients = {patients[i] for i in order[:n_val]}
    return [i for i in items if i["patient"] not in val_patients], [i for i in items if i["patient"] in val_patients]


def train_on_pairs(
    bundle_dir: str,
    pairs: Sequence[dict],
    epochs: int,
    val_split: float = 0.2,
    device: str | None = None,
    pretrained: bool = True,
) -> dict:
    """Train ``bundle_dir`` on ``pairs`` (``{"image": path, "label": mask path}``) for ``epochs`` epochs.

    Args:
        bundle_dir: a segmentation bundle (its ``models/model.pt`` is replaced by the best model of this run).
        pairs: the labelled images.
        epochs: epochs of the first stage of the recipe.
        val_split: fraction of the patients held out for validation (at least one patient).
        device: ``"cpu"``, ``"cuda:0"``...; default the bundle's.
        pretrained: start from the bundle's current ``models/model.pt`` when there is one.

    Returns:
        the figures also written to ``<bundle_dir>/runs/train_stats.json``: ``key_metric`` (its name),
        ``best_metric``, ``best_metric_epoch``, ``epochs``, ``train_images``, ``validation_images``,
        ``validation_patients``, ``model`` (the path written), ``total_time`` (seconds).

    Raises:
        MedkitError: not a segmentation bundle, fewer than two patients, epochs < 1, no model written.
    """
    from medkit.bundle import load_metadata
    from medkit.io.atomic import write_json_atomic
    from medkit.workflows.stages import train_bundle

    if load_metadata(bundle_dir).get("medkit", {}).get("task_type") != "segmentation":
        raise MedkitError(f"{bundle_dir}: training from MONAI Label's labels is offered for segmentation bundles")
    if int(epochs) < 1:
        raise MedkitError(f"max_epochs must be at least 1, got {epochs}")
    training, validation = _split(_with_patients(pairs), val_split)
    datalist = write_json_atomic(
        {"training": training, "validation": validation}, os.path.join(bundle_dir, DATALIST_FILE)
    )
    ckpt_dir = os.path.join(bundle_dir, "models")
    model = os.path.join(ckpt_dir, "model.pt")
    overrides = {"datalist_file": datalist, "epochs": int(epochs), "ckpt_dir": ckpt_dir, "overwrite": True}
    if pretrained and os.path.isfile(model):
        overrides["pretrained"] = model
    if device:
        overrides["device"] = f"$torch.device({str(device)!r})"
    before = os.path.getmtime(model) if os.path.isfile(model) else None
    workflows = []
    start = time.time()
    train_bundle(bundle_dir, overrides, stages=[1], on_workflow=lambda wf, stage: workflows.append(wf))
    if not os.path.isfile(model) or os.path.getmtime(model) == before:
        raise MedkitError(f"{model}: training ran but wrote no model (no validation round finished)")
    evaluator = workflows[-1].parser.get_parsed_content("validate#evaluator")
    stats = {
        "key_metric": evaluator.state.key_metric_name,
        "best_metric": float(evaluator.state.best_metric),
        "best_metric_epoch": int(evaluator.state.best_metric_epoch),
        "epochs": int(epochs),
        "train_images": len(training),
        "validation_images": len(validation),
        "validation_patients": sorted({i["patient"] for i in validation}),
        "model": model,
        "total_time": round(time.time() - start, 1),
    }
    write_json_atomic(stats, os.path.join(bundle_dir, STATS_FILE))
    return stats


def read_train_stats(bundle_dir: str) -> dict:
    """The figures of the last training from MONAI Label (``runs/train_stats.json``), ``{}`` before any."""
    try:
        with open(os.path.join(bundle_dir, STATS_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
