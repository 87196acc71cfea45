"""Ignite handler that writes a segmenter's masks, overlays, per-patient NIfTI volumes and one row per input."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medkit.explain.overlay import mask_outline_overlay, save_rgb_png
from medkit.handlers.report_writer import RowWriter, _to_numpy, decollated, item_threshold
from medkit.io.atomic import atomic_path, write_table_atomic
from medkit.metrics.classification import slice_order
from medkit.transforms.segmentation import NONFINITE_KEY, classifier_weights, largest_component

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SegmentationWriter", "COLUMNS"]

logger = logging.getLogger(__name__)

#: columns of the per-input table
COLUMNS = (
    "image",
    "case",
    "slice",
    "tumour_probability",
    "segmented",
    "tumour_pixels",
    "tumour_area_mm2",
    "mask_file",
    "overlay_file",
    "neighbour_missing",
    "case_incomplete",
    "error",
)


class SegmentationWriter(RowWriter):
    """Write, for each input slice, ``masks/<name>_mask.png`` (0/255) and ``overlays/<name>_overlay.png`` (prediction
    outlined in red); for each case (a patient folder given as input), ``nifti/<case>_mask.nii.gz`` with the masks
    stacked in slice order; and ``output_file`` (``.csv`` or ``.json``) with one row per input.

    Rows carry the gating classifier's ``tumour_probability`` when there is one, ``segmented`` (whether the
    segmenter ran on the slice), ``tumour_pixels`` and, when ``pixel_spacing`` is known, ``tumour_area_mm2``.
    Inputs that failed to load (see ``TolerantDataset``) and slices whose mask or gate probability came out NaN or
    Inf get a row with the error and no files; ``n_failed`` counts them.

    Rows of inputs that were read also say what their result depends on but could not be read, since a slice's
    result uses other slices of its patient:

    - ``neighbour_missing``: ``True`` when a slice of the slice's own 2.5D input window (``NeighbourSlicesd``, the
      input's ``neighbour_missing``), or of the gate's stack window (``GatedInferer``, output ``neighbour_missing_key``:
      a slice there that failed or whose own input missed a neighbour) could not be read. The missing slice was
      replaced by the nearest readable one, never by zeros or a placeholder's probability, so the result is the
      slice's as if the volume ended there; slices whose windows were all read are exactly as with every slice read.
    - ``case_incomplete``: ``True`` when some slice of the case (patient) could not be read: the per-patient
      intensity scale (``CaseChannelScaled``, the input's ``case_missing``) and the largest 3D component were
      computed without it (the component joins the readable slices either side of the gap), so every slice of
      the case may differ slightly from its result on the complete case. The case's NIfTI volume is not written
      (its slices would no longer sit at their places); the 2D masks are.

    Args:
        output_dir: folder for masks, overlays and volumes.
        output_file: the table; a relative name is placed in ``output_dir``.
        pixel_spacing: ``(row, column)`` spacing in mm, or one number for both; ``None`` when unknown.
        threshold: the gating classifier's threshold (decides ``segmented`` where the output has no threshold of
            its own under ``threshold_key``, as ``GatedInferer`` gives each item).
        overlays: also write overlay PNGs.
        path_key: key of the input path kept by the preprocessing.
        case_key: key of the case (patient folder) of an input, set by ``inference_datalist(..., with_case=True)``.
        prob_key: engine output key of the classifier's tumour probability.
        threshold_key: engine output key of the threshold that probability was decided against.
        neighbour_key: input key of the unreadable neighbours of the slice's input (``NeighbourSlicesd``).
        case_missing_key: input key of the case's unreadable slices left out of its scale (``CaseChannelScaled``).
        stack_missing_key: engine output key of whether the gate's stack window held an unreadable slice
            (``GatedInferer``).
        pred_layout: ``"rc"`` when ``pred`` is ``(rows, columns)`` as medkit reads slices, ``"xy"`` when the
            post-processing turned it to MONAI's ``(x, y)`` order for MONAI Label
            (``segmentation_postprocessing(for_writers=True)``).
        largest_component_3d: keep only the largest 26-connected component of each case's masks stacked in slice
            order (``medkit.transforms.largest_component``; when every slice of the case has a classifier
            probability, as in the two-stage pipeline, a component's pixels count by their slice's probability);
            a case's files are then written once all its slices are in. Inputs without a case (single files) keep
            their 2D masks as predicted.
        display_channel: the input channel shown in overlays (e.g. the slice itself of a 2.5D input whose
            neighbours are channels too); ``None`` shows the input as it is (three channels as RGB).
    """

    def __init__(
        self,
        output_dir: str,
        output_file: str = "predictions.csv",
        pixel_spacing: float | Sequence[float] | None = None,
        threshold: float | None = None,
        overlays: bool = True,
        path_key: str = "image_path",
        case_key: str = "case",
        prob_key: str = "tumour_probability",
        threshold_key: str = "gate_threshold",
        pred_layout: str = "rc",
        largest_component_3d: bool = False,
        display_channel: int | None = None,
        neighbour_key: str = "neighbour_missing",
        case_missing_key: str = "case_missing",
        stack_missing_key: str = "stack_neighbour_missing",
    ) -> None:
        if pred_layout not in ("rc", "xy"):
            raise ValueError(f"pred_layout must be 'rc' or 'xy', got {pred_layout}")
        self.pred_layout = pred_layout
        self.output_dir = os.fspath(output_dir)
        self.output_file = os.path.join(self.output_dir, self.table_name(output_file))
        if pixel_spacing is None:
            self.spacing = None
        else:
            sp = np.atleast_1d(np.asarray(pixel_spacing, dtype=np.float64))
            self.spacing = (float(sp[0]), float(sp[-1]))
            if min(self.spacing) <= 0:
                raise ValueError(f"pixel_spacing must be positive, got {pixel_spacing}")
        self.threshold = threshold
        self.overlays = overlays
        self.path_key = path_key
        self.case_key = case_key
        self.prob_key = prob_key
        self.threshold_key = threshold_key
        self.largest_component_3d = bool(largest_component_3d)
        self.display_channel = display_channel
        self.neighbour_key, self.case_missing_key, self.stack_missing_key = (
            neighbour_key,
            case_missing_key,
            stack_missing_key,
        )
        self.rows: list[dict] = []
        #: cases with a slice left out of their scale or 3D component (unreadable)
        self._incomplete: set[str] = set()
        self._volumes: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
        #: per case, slices waiting for the whole case (largest_component_3d): (order, row, mask, image, name)
        self._pending: dict[str, list[tuple]] = defaultdict(list)

    def _reset(self, engine: Engine | None = None) -> None:
        self.rows.clear()
        self._volumes.clear()
        self._pending.clear()
        self._incomplete.clear()

    def _name(self, path: str, case: str) -> str:
        stem = os.path.basename(path)
        for suffix in (".nii.gz", ".tiff", ".tif", ".png", ".jpg", ".jpeg", ".dcm"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        return os.path.join(case, stem) if case else stem

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            path = str(item.get(self.path_key, ""))
            case = str(item.get(self.case_key, "") or "")
            row = {"image": path, "case": case, "slice": item.get("slice", ""), "error": str(item.get("error", ""))}
            pred = _to_numpy(out["pred"])
            prob = out.get(self.prob_key)
            if not row["error"]:  # NaN or Inf logits or gate probability: a failed slice, never "no tumour"
                finite = not out.get(NONFINITE_KEY) and (prob is None or np.isfinite(_to_numpy(prob)).all())
                row["error"] = self.output_error(path, pred if finite else np.array(np.nan))
            if row["error"]:
                self.rows.append(row)
                if case:
                    self._incomplete.add(case)
                continue
            if case and item.get(self.case_missing_key):
                self._incomplete.add(case)
            stack_missing = out.get(self.stack_missing_key)
            row["neighbour_missing"] = bool(item.get(self.neighbour_key)) or (
                stack_missing is not None and bool(_to_numpy(stack_missing).any())
            )
            mask = (pred.reshape(pred.shape[-2:]) > 0.5).astype(np.uint8)
            if self.pred_layout == "xy":
                mask = mask.T
            if prob is not None:
                p = float(_to_numpy(prob).ravel()[0])
                row["tumour_probability"] = round(p, 6)
                threshold = item_threshold(out, self.threshold_key, self.threshold)
                row["segmented"] = threshold is None or p >= threshold
            else:
                row["segmented"] = True
            image = None
            if self.overlays:
                image = _to_numpy(item["image"])
                if self.display_channel is not None:
                    image = image[self.display_channel : self.display_channel + 1]
            self.rows.append(row)
            if case and self.largest_component_3d:  # written in write(), once the case is complete
                order = slice_order(row["slice"], len(self._pending[case]))
                shown = None if image is None else image.astype(np.float16)
                self._pending[case].append((order, row, mask, shown, self._name(path, case)))
            else:
                self._emit(row, mask, image, self._name(path, case))

    def _emit(self, row: dict, mask: np.ndarray, image: np.ndarray | None, name: str) -> None:
        """Fill ``row``'s mask figures and write the slice's mask (and overlay) files."""
        row["tumour_pixels"] = int(mask.sum())
        if self.spacing is not None:
            row["tumour_area_mm2"] = round(row["tumour_pixels"] * self.spacing[0] * self.spacing[1], 3)
        row["mask_file"] = save_rgb_png(mask * 255, self._out("masks", f"{name}_mask.png"))
        if image is not None:
            overlay = mask_outline_overlay(image.astype(np.float32), pred=mask)
            row["overlay_file"] = save_rgb_png(overlay, self._out("overlays", f"{name}_overlay.png"))
        case = row["case"]
        if case:
            self._volumes[case].append((slice_order(row["slice"], len(self._volumes[case])), mask))

    def _flush_pending(self) -> None:
        """Apply ``largest_component_3d`` to each waiting case and write its slices."""
        for case, slices in self._pending.items():
            slices.sort(key=lambda s: s[0])
            shapes = {m.shape for _, _, m, _, _ in slices}
            masks = [m for _, _, m, _, _ in slices]
            if len(shapes) == 1:
                weights = classifier_weights([row.get("tumour_probability") for _, row, _, _, _ in slices])
                masks = list(largest_component(np.stack(masks), weights).astype(np.uint8))
            else:
                logger.error("%s: slices of different sizes %s, masks kept per slice", case, sorted(shapes))
            for (_, row, _, image, name), mask in zip(slices, masks):
                self._emit(row, mask, image, name)
        self._pending.clear()

    @staticmethod
    def _in_slice_order(rows: list[dict]) -> list[dict]:
        """``rows`` with each case's slices by slice number (cases in order of first arrival; rows without a case,
        or without a slice number, keep their arrival order)."""
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            first.setdefault(row["case"], i)

        def key(entry: tuple[int, dict]) -> tuple[int, int, int]:
            i, row = entry
            return first[row["case"]], slice_order(row["slice"], i) if row["case"] else i, i

        return [row for _, row in sorted(enumerate(rows), key=key)]

    def _out(self, *parts: str) -> str:
        path = os.path.join(self.output_dir, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def _finish(self, engine: Engine | None = None) -> str:
        return self.write()

    def write(self, engine: Engine | None = None) -> str:
        """Write the cases waiting for ``largest_component_3d``, the per-case NIfTI volumes and the table; returns
        the table's path."""
        import nibabel as nib

        self._flush_pending()
        for row in self.rows:
            if not row["error"]:
                row["case_incomplete"] = row["case"] in self._incomplete
        for case, slices in self._volumes.items():
            if case in self._incomplete and any(r["error"] for r in self.rows if r["case"] == case):
                logger.error("%s: a slice could not be read, no NIfTI volume written", case)
                continue
            shapes = {m.shape for _, m in slices}
            if len(shapes) != 1:
                logger.error("%s: slices of different sizes %s, no NIfTI volume written", case, sorted(shapes))
                continue
            volume = np.stack([m for _, m in sorted(slices, key=lambda s: s[0])], axis=-1)
            sx, sy = self.spacing or (1.0, 1.0)
            image = nib.Nifti1Image(volume, np.diag([sx, sy, 1.0, 1.0]))
            target = self._out("nifti", f"{os.path.basename(case)}_mask.nii.gz")
            with atomic_path(target) as tmp:  # the temporary name keeps the .nii.gz suffix nibabel goes by
                nib.save(image, tmp)
        self.rows[:] = self._in_slice_order(self.rows)
        write_table_atomic(self.rows, COLUMNS, self.output_file)
        logger.info("%d slices, %d failed -> %s", len(self.rows) - self.n_failed, self.n_failed, self.output_dir)
        return self.output_file
