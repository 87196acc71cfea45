"""A bundle's inference rows turned into the JSON the page and API clients read, with server paths left out."""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from medkit.serve.service import BundleService, png_bytes, png_data_url

__all__ = ["summarize", "trauma_verdict"]


class _Paths:
    """Replaces the server's folders in texts with names relative to the upload (a client never sees them)."""

    def __init__(self, *folders: str) -> None:
        self.folders = [os.path.abspath(f) for f in folders]

    def name(self, path: str) -> str:
        for folder in self.folders:
            if path.startswith(folder + os.sep):
                return os.path.relpath(path, folder)
        return os.path.basename(path)

    def hide(self, text: str) -> str:
        for folder in self.folders:
            text = text.replace(folder + os.sep, "").replace(folder, "upload")
        return text


def trauma_verdict(probabilities: dict[str, float]) -> str:
    """The most probable grade of each RSNA target (``bowel``, ``extravasation``, ``kidney``...): ``"no injury"``
    when every target's is ``healthy``, else the injured targets' grades (``"injury: liver_low"``)."""
    groups: dict[str, tuple[str, float]] = {}
    for column, p in probabilities.items():
        target = column.rsplit("_", 1)[0]
        if target not in groups or p > groups[target][1]:
            groups[target] = (column, p)
    injured = [column for column, _ in groups.values() if not column.endswith("_healthy")]
    return "injury: " + ", ".join(injured) if injured else "no injury"


def _number(value: Any) -> float | None:
    try:
        return None if value in ("", None) else round(float(value), 6)
    except (TypeError, ValueError):
        return None


def summarize(service: BundleService, result: dict, upload_dir: str) -> dict:
    """The response of ``POST /api/predict/{bundle}``.

    Args:
        service: the bundle that ran.
        result: ``service.predict``'s result.
        upload_dir: the request's upload folder, whose paths become names relative to it.

    Returns:
        ``{"bundle", "task", "threshold", "items": [...], "n_failed", "csv", "seconds"}``; each item has ``name``,
        ``case``, ``error`` (one line, empty when read), ``label`` (the verdict), ``probabilities``
        (``{name: p}``), ``images`` and ``overlays`` (PNG data URLs of what the network saw and the Grad-CAM or mask
        outline over it; a volume gives several slices), and per task ``mask`` (PNG data URL), ``tumour_pixels``,
        ``tumour_area_mm2``, ``segmented``, ``stack_probability`` or ``patient``.
    """
    paths = _Paths(upload_dir, service.out_dir)
    patients = _table_rows(result["table"]) if service.family == "trauma" else {}
    items = []
    for row in result["rows"]:
        path = str(row.get("image", ""))
        item: dict[str, Any] = {
            "name": paths.name(path),
            "case": str(row.get("case", "") or ""),
            "slice": str(row.get("slice", "")),
            "error": paths.hide(str(row.get("error", ""))),
            "label": "",
            "probabilities": {},
            "images": [png_data_url(png_bytes(v)) for v in result["views"].get(path, [])],
            "overlays": [],
        }
        if not item["error"]:
            _fill(service, item, row, result, patients)
        items.append(item)
    items.sort(key=_display_order)
    return {
        "bundle": service.name,
        "task": service.family,
        "threshold": service.meta.get("medkit", {}).get("threshold"),
        "items": items,
        "n_failed": sum(1 for i in items if i["error"]),
        "csv": paths.hide(result["table"]),
        "seconds": round(result["seconds"], 3),
    }


def _fill(service: BundleService, item: dict, row: dict, result: dict, patients: dict[str, dict]) -> None:
    """Set the task's figures of a read item from its writer row."""
    path = str(row.get("image", ""))
    if service.family == "segmentation":
        prob = _number(row.get("tumour_probability"))
        item["probabilities"] = {} if prob is None else {service.class_names[-1]: prob}
        item["tumour_pixels"] = int(row.get("tumour_pixels", 0) or 0)
        item["tumour_area_mm2"] = _number(row.get("tumour_area_mm2"))
        item["segmented"] = bool(row.get("segmented"))
        item["label"] = service.class_names[-1] if item["tumour_pixels"] else f"no {service.class_names[-1]}"
        files = result["files"]
        item["mask"] = png_data_url(files[row["mask_file"]]) if row.get("mask_file") in files else None
        if row.get("overlay_file") in files:
            item["overlays"] = [png_data_url(files[row["overlay_file"]])]
    elif service.family == "trauma":
        item["patient"] = row.get("patient", "")
        item["probabilities"] = patients.get(str(row.get("patient", "")), {})
        item["label"] = trauma_verdict(item["probabilities"]) if item["probabilities"] else ""
    else:
        item["label"] = row.get("label", "")
        item["probabilities"] = {n: _number(row.get(f"prob_{n}")) for n in service.class_names}
        stack = _number(row.get(f"prob_{service.class_names[-1]}_stack"))
        if stack is not None:
            item["stack_probability"] = stack
        if path in result["overlays"]:
            item["overlays"] = [png_data_url(png_bytes(result["overlays"][path]))]


def _display_order(item: dict) -> tuple:
    """Items in the order the page's slider walks them: by case, then slice number (``2`` before ``10``), then name
    (the table keeps the writer's own order)."""
    number = item["slice"]
    return item["case"], float(number) if number.lstrip("-").isdigit() else float("inf"), item["name"]


def _table_rows(text: str) -> dict[str, dict[str, float]]:
    """The submission table's rows by ``patient_id``: ``{patient: {column: probability}}``."""
    out = {}
    for record in csv.DictReader(io.StringIO(text)):
        patient = record.pop("patient_id", "")
        out[patient] = {k: float(v) for k, v in record.items() if v not in ("", None)}
    return out
