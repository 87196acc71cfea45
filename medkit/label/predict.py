"""One image through a bundle's own inference workflow, as ``medkit infer`` runs it, for a MONAI Label request.

Nothing here needs MONAI Label: ``predict`` runs ``inference.json`` (the same preprocessing, input checks, two-stage
gate, post-processing and writer as ``medkit infer`` and ``monai.bundle run``) on one input and turns the writer's
row into what MONAI Label answers: the result JSON and, for a segmenter, a label file.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from medkit.errors import MedkitError

__all__ = ["predict", "bundle_family"]


def bundle_family(meta: dict) -> str:
    """What a bundle's inference returns: ``"classification"``, ``"segmentation"`` or ``"trauma"`` (per-target
    probabilities of a CT volume), from its metadata (``medkit.template``, else ``medkit.task_type``)."""
    medkit_meta = meta.get("medkit", {})
    family = medkit_meta.get("template") or medkit_meta.get("task_type", "")
    if family not in ("classification", "segmentation", "trauma"):
        raise MedkitError(f"{meta.get('name', 'bundle')}: metadata names no medkit.template or medkit.task_type")
    return family


def predict(bundle_dir: str, image: str, out_dir: str, device: str | None = None) -> tuple[str | None, dict]:
    """Run the bundle's ``inference.json`` on one input (a file, or a DICOM series folder for the CT bundle).

    Args:
        bundle_dir: the bundle folder.
        image: the input path.
        out_dir: folder the workflow writes into (its table; a segmenter's masks and overlays).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: the bundle's (a GPU when one is visible).

    Returns:
        ``(label_file, result)``: for a segmenter the mask as a PNG of the slice's size with the label index (0
        background, 1 tumour) and ``result`` with the slice's tumour probability, whether it was segmented and the
        tumour pixels; for a classifier no file, and ``label``, ``probabilities`` (class name to probability),
        ``threshold`` (the bundle's decision threshold, ``None`` for the most probable class); for the CT bundle no
        file, ``probabilities`` (the 13 submission columns) and ``targets`` (per target, its classes). A
        segmenter's ``label_names`` maps its channel names to the mask's values.

    Raises:
        MedkitError: the input is missing, unreadable or not what the bundle accepts (the one-line reason the
            bundle's writer gives), or its prediction is not finite.
    """
    from medkit.bundle import create_workflow, load_metadata

    if not image or not os.path.exists(image):
        raise MedkitError(f"{image or '(no image)'}: no such file or folder")
    meta = load_metadata(bundle_dir)
    family = bundle_family(meta)
    if os.path.isdir(image) and family != "trauma":
        raise MedkitError(f"{image}: a folder; {os.path.basename(bundle_dir)} takes one image file")
    settings: dict[str, Any] = {"inputs": [os.path.abspath(image)], "output_dir": os.path.abspath(out_dir)}
    if device:
        settings["device"] = f"$torch.device({str(device)!r})"
    wf = create_workflow(bundle_dir, "infer", settings)
    if not len(wf.parser.get_parsed_content("dataset")):
        raise MedkitError(f"{image}: not an image file this bundle reads")
    wf.parser.get_parsed_content("evaluator").run()
    writer = wf.parser.get_parsed_content("writer")
    errors = [row["error"] for row in writer.rows if row.get("error")]
    if errors or not writer.rows:
        raise MedkitError(errors[0] if errors else f"{image}: nothing was predicted")
    row = writer.rows[0]
    if family == "segmentation":
        return _segmentation_result(row, out_dir, meta)
    if family == "trauma":
        return None, _trauma_result(writer)
    return None, _classification_result(row, meta)


def _classification_result(row: dict, meta: dict) -> dict:
    from medkit.bundle import channel_names

    names = channel_names(meta)
    probabilities = {name: float(row[f"prob_{name}"]) for name in names}
    threshold = meta.get("medkit", {}).get("threshold")
    return {"label": row["label"], "probabilities": probabilities, "threshold": threshold}


def _segmentation_result(row: dict, out_dir: str, meta: dict) -> tuple[str, dict]:
    from PIL import Image

    from medkit.bundle import channel_names

    with Image.open(row["mask_file"]) as png:
        mask = (np.asarray(png) > 0).astype(np.uint8)
    label_file = os.path.join(out_dir, os.path.basename(row["mask_file"]).removesuffix(".png") + "_label.png")
    Image.fromarray(mask).save(label_file)
    result = {
        "label_names": {name: i for i, name in enumerate(channel_names(meta))},
        "tumour_probability": _number(row.get("tumour_probability")),
        "segmented": bool(row.get("segmented")),
        "tumour_pixels": int(mask.sum()),
    }
    return label_file, result


def _trauma_result(writer) -> dict:
    from medkit.metrics.rsna import SUBMISSION_COLUMNS

    _, probs = writer.patient_predictions()
    probabilities = {column: float(p) for column, p in zip(SUBMISSION_COLUMNS, probs[0])}
    targets: dict[str, dict[str, float]] = {}
    for column, p in probabilities.items():
        target, grade = column.rsplit("_", 1)
        targets.setdefault(target, {})[grade] = p
    return {"probabilities": probabilities, "targets": targets}


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
