"""Metrics and reports: classification and segmentation figures, plots."""

from medkit.metrics.rsna import (
    SUBMISSION_COLUMNS,
    TARGETS,
    prior_probabilities,
    rsna_report,
    rsna_score,
    weighted_log_loss,
)
from medkit.metrics.segmentation import PatientDice, dice_counts, dice_from_counts, segmentation_report

__all__ = [
    "SUBMISSION_COLUMNS",
    "TARGETS",
    "prior_probabilities",
    "rsna_report",
    "rsna_score",
    "weighted_log_loss",
    "PatientDice",
    "dice_counts",
    "dice_from_counts",
    "segmentation_report",
]
