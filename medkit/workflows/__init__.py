"""Entry points over bundle workflows (training, evaluation, inference, LR range test) and batch preparation."""

from __future__ import annotations

from medkit.workflows.batch import PrepareBatchWithSeg

__all__ = ["PrepareBatchWithSeg"]
