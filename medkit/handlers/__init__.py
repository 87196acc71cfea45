"""Ignite handlers medkit adds to MONAI's: report and prediction writers, gradient clipping, atomic checkpoints
and a stop on a non-finite loss."""

from __future__ import annotations

from medkit.handlers.checkpoint import AtomicCheckpointSaver, NonFiniteLossHandler, StrictCheckpointLoader
from medkit.handlers.gradcam_saver import GradCAMSaver
from medkit.handlers.gradient_clip import GradientClipHandler
from medkit.handlers.last_checkpoint import LastCheckpoint
from medkit.handlers.prediction_writer import PredictionWriter
from medkit.handlers.report_writer import ClassificationReportWriter
from medkit.handlers.segmentation_report import SegmentationReportWriter
from medkit.handlers.segmentation_writer import SegmentationWriter
from medkit.handlers.stats import StatsHandler
from medkit.handlers.submission_writer import SubmissionWriter

__all__ = [
    "AtomicCheckpointSaver",
    "NonFiniteLossHandler",
    "StrictCheckpointLoader",
    "GradCAMSaver",
    "GradientClipHandler",
    "LastCheckpoint",
    "ClassificationReportWriter",
    "PredictionWriter",
    "SegmentationReportWriter",
    "SegmentationWriter",
    "StatsHandler",
    "SubmissionWriter",
]
