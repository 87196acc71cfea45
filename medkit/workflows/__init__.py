"""Entry points over bundle workflows (training, evaluation, inference, LR range test) and batch preparation."""

from __future__ import annotations

from medkit.workflows.batch import DeviceBatch, PrepareBatchWithSeg
from medkit.workflows.evidence_heads import collect_evidence, fit_evidence_heads

__all__ = ["DeviceBatch", "PrepareBatchWithSeg", "collect_evidence", "fit_evidence_heads"]
