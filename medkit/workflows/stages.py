"""Run a bundle's training recipe: every stage its metadata lists (``medkit.train_stages``), in order; on one
process, or on each of the processes ``torchrun`` starts (``python -m medkit.workflows.stages``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = ["train_bundle", "MULTI_PROCESS_OVERLAY", "torchrun_command", "main"]

logger = logging.getLogger(__name__)

#: the overlay every bundle holds for training on several processes (``templates/multi_gpu_train.json``)
MULTI_PROCESS_OVERLAY = "multi_gpu_train.json"


def _resume_from(ckpt_dir: str, chosen: list[int]) -> tuple[list[int], bool]:
    """The stages left to run after a kill and whether the first of them resumes from ``checkpoint_last.pt``.

    A later stage k has started when the model of stage k-1 was kept as ``model_stage<k-1>.pt``; a stage that
    started fresh removed the ``checkpoint_last.pt`` of the stage before.
    """
    from medkit.handlers.last_checkpoint import LAST_CHECKPOINT

    started = [k for k in chosen[1:] if os.path.isfile(os.path.join(ckpt_dir, f"model_stage{k - 1}.pt"))]
    first = max(started, default=chosen[0])
    has_last = os.path.isfile(os.path.join(ckpt_dir, LAST_CHECKPOINT))
    return [k for k in chosen if k >= first], has_last or first == chosen[0]


def train_bundle(
    bundle_dir: str,
    overrides: Mapping[str, Any] | None = None,
    stages: list[int] | None = None,
    on_workflow: Callable[[Any, int], None] | None = None,
    ignore_unknown: bool = False,
    distributed: bool = False,
    resume: bool = False,
) -> str:
    """Train the bundle by its recipe: stage 1 is ``train.json``; each later stage merges its overlay on top
    (``["train.json", "finetune.json"]``) and starts from the model the stage before wrote to ``ckpt_dir``.

    Before a later stage starts, the model of the stage before is kept as ``model_stage<k>.pt`` beside
    ``model.pt`` (the later stage writes ``model.pt``) and the stage before's ``checkpoint_last.pt`` is removed.

    Args:
        bundle_dir: the bundle folder.
        overrides: config ids to values, applied to every stage (``ckpt_dir``, ``dataset_dir``, ``epochs``...).
        stages: which stages to run (1-based), default all; a later stage alone needs the model of the one before
            in ``ckpt_dir``.
        on_workflow: called with each stage's initialised workflow and its stage number before it runs (progress
            bars).
        ignore_unknown: leave out overrides the stage's configs do not define (``create_workflow``).
        distributed: this is one of the processes ``torchrun`` started: every stage adds ``multi_gpu_train.json``.
        resume: continue a killed training from ``<ckpt_dir>/checkpoint_last.pt``: the stage it was in resumes
            from its last complete epoch, the stages after it run as usual.

    Returns:
        the path of the final ``model.pt``.

    Raises:
        MedkitError: an unknown stage; ``resume`` without a ``checkpoint_last.pt``.
    """
    from medkit import distributed as dist
    from medkit.bundle import create_workflow, train_stages
    from medkit.handlers.last_checkpoint import LAST_CHECKPOINT

    recipe = train_stages(bundle_dir)
    chosen = stages or list(range(1, len(recipe) + 1))
    bad = [s for s in chosen if not 1 <= s <= len(recipe)]
    if bad:
        raise MedkitError(f"{bundle_dir}: no training stage {bad[0]} (the recipe has {len(recipe)})")
    overrides = dict(overrides or {})
    resuming = False
    if resume:
        chosen, resuming = _resume_from(overrides.get("ckpt_dir") or os.path.join(bundle_dir, "models"), chosen)
    ckpt_dir = None
    dist.KEEP_GROUP = distributed and len(chosen) > 1
    try:
        for stage in chosen:
            files = recipe[stage - 1] + ([MULTI_PROCESS_OVERLAY] if distributed else [])
            this = {**overrides, "resume": True} if resuming and stage == chosen[0] else overrides
            wf = create_workflow(bundle_dir, "train", this, config_files=files, ignore_unknown=ignore_unknown)
            ckpt_dir = wf.parser.get_parsed_content("ckpt_dir")
            model = os.path.join(ckpt_dir, "model.pt")
            if stage > 1 and os.path.isfile(model) and dist.rank() == 0 and "resume" not in this:
                shutil.copy2(model, os.path.join(ckpt_dir, f"model_stage{stage - 1}.pt"))
                last = os.path.join(ckpt_dir, LAST_CHECKPOINT)
                if os.path.isfile(last):
                    os.remove(last)
            dist.barrier()
            logger.info("training stage %d of %d: %s", stage, len(recipe), " + ".join(files))
            if on_workflow is not None:
                on_workflow(wf, stage)
            wf.run()
            wf.finalize()
        if distributed:
            dist.cleanup(force=True)
    finally:  # after an error no barrier: the other processes may never get there (torchrun stops them)
        dist.KEEP_GROUP = False
    return os.path.join(ckpt_dir, "model.pt")


def torchrun_command(
    bundle_dir: str,
    overrides: Mapping[str, Any],
    nproc: int,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    stages: list[int] | None = None,
    resume: bool = False,
) -> list[str]:
    """The ``torchrun`` command line that trains the bundle's recipe on ``nproc`` processes per node (on
    ``nnodes`` nodes meeting at ``rdzv_endpoint``, c10d rendezvous; the same command on every node).

    Raises:
        MedkitError: several nodes without a rendezvous endpoint.
    """
    if nnodes > 1 and not rdzv_endpoint:
        raise MedkitError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (a node every node can reach)")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes > 1 or rdzv_endpoint:
        name = os.path.basename(os.path.normpath(bundle_dir))
        cmd += ["--nnodes", str(nnodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", rdzv_endpoint]
        cmd += ["--rdzv_id", f"medkit-{name}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "medkit.workflows.stages", bundle_dir, "--overrides", json.dumps(dict(overrides))]
    cmd += [arg for s in stages or [] for arg in ("--stage", str(s))]
    return cmd + (["--resume"] if resume else [])


def main(argv: list[str] | None = None) -> int:
    """``python -m medkit.workflows.stages BUNDLE --overrides JSON [--stage K] [--resume]``: what each process
    ``torchrun`` starts for ``medkit train --nproc N`` runs (the recipe with ``multi_gpu_train.json``)."""
    parser = argparse.ArgumentParser(prog="python -m medkit.workflows.stages", description=main.__doc__)
    parser.add_argument("bundle")
    parser.add_argument("--overrides", default="{}", help="config ids to values, as JSON")
    parser.add_argument("--stage", type=int, action="append", default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        train_bundle(args.bundle, json.loads(args.overrides), args.stage, distributed=True, resume=args.resume)
    except MedkitError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
