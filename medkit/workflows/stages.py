"""Run a bundle's training recipe: every stage its metadata lists (``medkit.train_stages``), in order."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = ["train_bundle"]

logger = logging.getLogger(__name__)


def train_bundle(
    bundle_dir: str,
    overrides: Mapping[str, Any] | None = None,
    stages: list[int] | None = None,
    on_workflow: Callable[[Any, int], None] | None = None,
    ignore_unknown: bool = False,
) -> str:
    """Train the bundle by its recipe: stage 1 is ``train.json``; each later stage merges its overlay on top
    (``["train.json", "finetune.json"]``) and starts from the model the stage before wrote to ``ckpt_dir``.

    Before a later stage starts, the model of the stage before is kept as ``model_stage<k>.pt`` beside
    ``model.pt`` (the later stage writes ``model.pt``).

    Args:
        bundle_dir: the bundle folder.
        overrides: config ids to values, applied to every stage (``ckpt_dir``, ``dataset_dir``, ``epochs``...).
        stages: which stages to run (1-based), default all; a later stage alone needs the model of the one before
            in ``ckpt_dir``.
        on_workflow: called with each stage's initialised workflow and its stage number before it runs (progress
            bars).
        ignore_unknown: leave out overrides the stage's configs do not define (``create_workflow``).

    Returns:
        the path of the final ``model.pt``.

    Raises:
        MedkitError: an unknown stage.
    """
    from medkit.bundle import create_workflow, train_stages

    recipe = train_stages(bundle_dir)
    chosen = stages or list(range(1, len(recipe) + 1))
    bad = [s for s in chosen if not 1 <= s <= len(recipe)]
    if bad:
        raise MedkitError(f"{bundle_dir}: no training stage {bad[0]} (the recipe has {len(recipe)})")
    ckpt_dir = None
    for stage in chosen:
        wf = create_workflow(
            bundle_dir, "train", overrides, config_files=recipe[stage - 1], ignore_unknown=ignore_unknown
        )
        ckpt_dir = wf.parser.get_parsed_content("ckpt_dir")
        model = os.path.join(ckpt_dir, "model.pt")
        if stage > 1 and os.path.isfile(model):
            shutil.copy2(model, os.path.join(ckpt_dir, f"model_stage{stage - 1}.pt"))
        logger.info("training stage %d of %d: %s", stage, len(recipe), " + ".join(recipe[stage - 1]))
        if on_workflow is not None:
            on_workflow(wf, stage)
        wf.run()
        wf.finalize()
    return os.path.join(ckpt_dir, "model.pt")
