"""Metrics and reports: classification and segmentation figures, plots."""

from medkit.metrics.segmentation import PatientDice, dice_counts, dice_from_counts, segmentation_report

__all__ = ["PatientDice", "dice_counts", "dice_from_counts", "segmentation_report"]
