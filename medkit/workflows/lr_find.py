"""Learning-rate range test (Smith 2017) on a bundle's training pipeline, with MONAI's ``LearningRateFinder``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from medkit.bundle import create_workflow

__all__ = ["lr_range_test"]

logger = logging.getLogger(__name__)


def lr_range_test(
    bundle_dir: str,
    overrides: Mapping[str, Any] | None = None,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_iter: int = 100,
    out_dir: str | None = None,
) -> dict:
    """Raise the learning rate exponentially over ``num_iter`` batches and record the smoothed loss.

    The network, optimiser, loss and training data loader are the bundle's own (``network``,
    ``optimizer``, ``loss``, ``train#dataloader``); caching is switched off so the test starts at once.
    The suggestion is the rate of steepest loss descent, divided by nothing: use it as the peak
    (``learning_rate``) of the one-cycle schedule, or a few times lower to be safe.

    Args:
        bundle_dir: bundle folder.
        overrides: config overrides (``dataset_dir`` and so on).
        start_lr: first learning rate.
        end_lr: last learning rate.
        num_iter: number of batches.
        out_dir: when given, ``lr_find.png`` and ``lr_find.json`` are written there.

    Returns:
        dict with ``lrs``, ``losses``, ``suggested_lr`` and ``suggested_loss``.
    """
    from monai.optimizers import LearningRateFinder

    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_iter < 5:
        raise ValueError(f"num_iter must be at least 5, got {num_iter}")
    # the range test runs no trainer and saves no checkpoint, so a model in ckpt_dir is no obstacle
    wf = create_workflow(bundle_dir, "train", {"cache_rate": 0.0, "overwrite": True, **dict(overrides or {})})
    get = wf.parser.get_parsed_content
    network, optimizer, loss = get("network"), get("optimizer"), get("loss")
    loader = get("train#dataloader")
    for group in optimizer.param_groups:
        group["lr"] = start_lr
    finder = LearningRateFinder(network, optimizer, loss, device=get("device"), memory_cache=True)
    finder.range_test(loader, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, step_mode="exp")
    lrs, losses = finder.get_lrs_and_losses()
    lr, best_loss = finder.get_steepest_gradient()
    result = {
        "lrs": [float(x) for x in lrs],
        "losses": [float(x) for x in losses],
        "suggested_lr": None if lr is None else float(lr),
        "suggested_loss": None if best_loss is None else float(best_loss),
        "num_iter": num_iter,
    }
    finder.reset()
    if out_dir:
        from medkit.io.atomic import write_json_atomic
        from medkit.metrics.plots import plot_lr_find

        os.makedirs(out_dir, exist_ok=True)
        write_json_atomic(result, os.path.join(out_dir, "lr_find.json"))
        plot_lr_find(np.asarray(lrs), np.asarray(losses), result["suggested_lr"], os.path.join(out_dir, "lr_find.png"))
    return result
