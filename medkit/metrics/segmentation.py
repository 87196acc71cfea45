"""Dice figures of binary segmentations: per slice, per patient (3D) and their means, as an Ignite metric."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from ignite.metrics import Metric

__all__ = ["dice_counts", "dice_from_counts", "slice_record", "segmentation_report", "PatientDice"]


def dice_counts(pred, label) -> tuple[int, int, int]:
    """``(intersection, predicted pixels, true pixels)`` of two binary masks (any value > 0.5 is foreground)."""
    p = torch.as_tensor(pred) > 0.5
    g = torch.as_tensor(label) > 0.5
    return int((p & g).sum()), int(p.sum()), int(g.sum())


def dice_from_counts(intersection: float, pred_sum: float, true_sum: float) -> float:
    """``2 I / (P + G)``; 1.0 when both masks are empty (nothing to find, nothing found)."""
    total = pred_sum + true_sum
    return 1.0 if total == 0 else 2.0 * intersection / total


def slice_record(pred, label, case: str) -> dict:
    """``{"case", "intersection", "pred_pixels", "true_pixels"}`` of one slice, the input of ``segmentation_report``."""
    i, p, g = dice_counts(pred, label)
    return {"case": case, "intersection": i, "pred_pixels": p, "true_pixels": g}


def segmentation_report(records: Iterable[Mapping]) -> dict:
    """Dice figures from per-slice records ``{"case", "intersection", "pred_pixels", "true_pixels"}``.

    The per-patient Dice sums the counts of all slices of a case, which is exactly the 3D Dice of the
    stacked volume. Returns ``n_cases`` (patients), ``n_slices``, ``dice_patient_mean`` (mean of the
    per-patient 3D Dice), ``dice_slice_mean`` (mean over slices with tumour), ``dice_global`` (all pixels
    pooled), ``false_positive_slices`` (slices without tumour where tumour was predicted), ``slice_detection``
    (the output masks read as slice decisions, tumour = any foreground pixel: accuracy, sensitivity,
    specificity, confusion matrix with rows = truth) and ``per_case``.
    """
    sums: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(3))
    slice_dice, n_slices, fp_slices = [], 0, 0
    detected = np.zeros((2, 2), dtype=int)  # rows: tumour in truth, columns: tumour in the output mask
    for r in records:
        counts = np.array([r["intersection"], r["pred_pixels"], r["true_pixels"]], dtype=np.float64)
        sums[str(r["case"])] += counts
        n_slices += 1
        detected[int(counts[2] > 0), int(counts[1] > 0)] += 1
        if counts[2] > 0:
            slice_dice.append(dice_from_counts(*counts))
        elif counts[1] > 0:
            fp_slices += 1
    per_case = {c: dice_from_counts(*v) for c, v in sorted(sums.items())}
    pooled = np.sum(list(sums.values()), axis=0) if sums else np.zeros(3)
    return {
        "n_cases": len(per_case),
        "n_slices": n_slices,
        "dice_patient_mean": float(np.mean(list(per_case.values()))) if per_case else float("nan"),
        "dice_slice_mean": float(np.mean(slice_dice)) if slice_dice else float("nan"),
        "dice_global": dice_from_counts(*pooled),
        "false_positive_slices": fp_slices,
        "slice_detection": {
            "accuracy": float(np.trace(detected) / max(n_slices, 1)),
            "sensitivity": float(detected[1, 1] / max(detected[1].sum(), 1)),
            "specificity": float(detected[0, 0] / max(detected[0].sum(), 1)),
            "confusion_matrix": detected.tolist(),
        },
        "per_case": per_case,
    }


class PatientDice(Metric):
    """Mean per-patient 3D Dice over an epoch, for a validation key metric.

    Reads ``pred`` and ``label`` (binary, ``(1, H, W)`` per item) from the engine's output and the case id
    from the batch (``case_key``), so slices of one patient may arrive in any batches and any order.
    """

    def __init__(self, case_key: str = "case", device: str | torch.device = "cpu") -> None:
        self.case_key = case_key
        super().__init__(output_transform=lambda x: x, device=device)

    def reset(self) -> None:
        self.records: list[dict] = []

    def update(self, output) -> None:
        for out, item in output:
            self.records.append(slice_record(out["pred"], out["label"], item.get(self.case_key, "")))

    def iteration_completed(self, engine) -> None:
        from medkit.handlers.report_writer import decollated

        self.update(list(decollated(engine)))

    def compute(self) -> float:
        """The mean over every process's slices (their records gathered when training on several processes)."""
        from medkit import distributed

        records = self.records
        if distributed.is_distributed():
            import torch.distributed as dist

            gathered: list = [None] * distributed.world_size()
            dist.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        return segmentation_report(records)["dice_patient_mean"]
