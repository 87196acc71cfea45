"""The state a killed training resumes from: ``checkpoint_last.pt``, written atomically after every epoch."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from ignite.engine import Events

from medkit.errors import MedkitError

__all__ = ["LastCheckpoint", "LAST_CHECKPOINT", "check_resume"]

logger = logging.getLogger(__name__)

#: the file name in ``ckpt_dir``
LAST_CHECKPOINT = "checkpoint_last.pt"


def check_resume(ckpt_dir: str, resume: Any) -> None:
    """Refuse ``resume`` when there is nothing to resume from, before any work.

    Raises:
        MedkitError: ``resume`` is set and ``<ckpt_dir>/checkpoint_last.pt`` does not exist.
    """
    from medkit.handlers.checkpoint import as_flag

    path = os.path.join(os.fspath(ckpt_dir), LAST_CHECKPOINT)
    if as_flag(resume) and not os.path.isfile(path):
        raise MedkitError(f"{path}: not found, so there is nothing to resume (train without --resume)")


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network


def _random_transforms(transform: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every transform holding its own random state (MONAI ``Randomizable``) under ``transform``, in order: the
    members of a ``Compose`` and the transforms a transform holds (``RandAffined`` draws with the ``R`` of its
    ``RandAffine``'s ``RandAffineGrid``, not its own)."""
    from monai.transforms import Randomizable, Transform

    seen = set() if seen is None else seen
    if id(transform) in seen or not isinstance(transform, (Transform, Randomizable)):
        return
    seen.add(id(transform))
    if isinstance(transform, Randomizable) and isinstance(getattr(transform, "R", None), np.random.RandomState):
        yield transform
    for value in vars(transform).values():
        for child in value if isinstance(value, (list, tuple)) else (value,):
            yield from _random_transforms(child, seen)


def _rng_state(transforms: list[Any]) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "transforms": [t.R.get_state() for t in transforms],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], transforms: list[Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if len(state["transforms"]) != len(transforms):
        raise MedkitError(
            f"{LAST_CHECKPOINT}: holds {len(state['transforms'])} random transforms' states, the training has "
            f"{len(transforms)} (another augmentation); it cannot be resumed exactly"
        )
    for t, s in zip(transforms, state["transforms"]):
        t.R.set_state(s)


class LastCheckpoint:
    """Write ``<save_dir>/checkpoint_last.pt`` after every epoch (after validation, the best ``model.pt`` and the
    early stop have seen it) and, with ``resume``, continue a training from it when it starts.

    The file holds the network, optimizer, LR scheduler, the trainer's epoch and iteration, the early stop's count
    and best score, the best-model saver's record, the validation metrics, and the random states (Python, NumPy,
    PyTorch, CUDA, and each random transform of the training data's pipeline; one set per process). It replaces
    the previous one in one step (a temporary file renamed), so a kill leaves the last complete epoch. Only rank 0
    writes; every process reads its own random states back.

    Args:
        save_dir: the folder (the bundle's ``ckpt_dir``).
        network: the trained network (``DistributedDataParallel`` unwrapped).
        optimizer: its optimizer.
        lr_scheduler: the LR scheduler, or ``None``.
        early_stop: MONAI's ``EarlyStopHandler`` of the evaluator, or ``None``.
        best: the ``CheckpointSaver`` that keeps the best ``model.pt``, or ``None``.
        evaluator: the validation engine (its metrics and best metric are kept), or ``None``.
        resume: load ``checkpoint_last.pt`` when the trainer starts.
    """

    def __init__(
        self,
        save_dir: str,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: Any = None,
        early_stop: Any = None,
        best: Any = None,
        evaluator: Any = None,
        resume: Any = False,
    ) -> None:
        from medkit.handlers.checkpoint import as_flag

        self.path = os.path.join(os.fspath(save_dir), LAST_CHECKPOINT)
        self.network = network
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.early_stop = early_stop
        self.best = best
        self.evaluator = evaluator
        self.resume = as_flag(resume)
        self._transforms: list[Any] = []

    def attach(self, engine) -> None:
        loader = getattr(engine, "data_loader", None)
        self._transforms = list(_random_transforms(getattr(getattr(loader, "dataset", None), "transform", None)))
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def _best_checkpoint(self):
        return getattr(self.best, "_key_metric_checkpoint", None)

    def state(self, engine) -> dict[str, Any]:
        """What ``checkpoint_last.pt`` holds after the current epoch (random states: one entry per process)."""
        from medkit import distributed

        rng = _rng_state(self._transforms)
        if distributed.is_distributed():
            import torch.distributed as dist

            gathered: list[Any] = [None] * distributed.world_size()
            dist.all_gather_object(gathered, rng)
            rngs = gathered
        else:
            rngs = [rng]
        state: dict[str, Any] = {
            "network": _unwrap(self.network).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": {"epoch": engine.state.epoch, "iteration": engine.state.iteration},
            "rng": rngs,
        }
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        handler = getattr(self.early_stop, "_handler", None)
        if handler is not None:
            state["early_stop"] = handler.state_dict()
        if self._best_checkpoint() is not None:
            state["best"] = self._best_checkpoint().state_dict()
        if self.evaluator is not None:
            ev = self.evaluator.state
            state["metrics"] = {k: v for k, v in ev.metrics.items() if isinstance(v, (int, float))}
            state["evaluator"] = {"best_metric": ev.best_metric, "best_metric_epoch": ev.best_metric_epoch}
        return state

    def save(self, engine) -> None:
        from medkit import distributed
        from medkit.io.atomic import atomic_path

        state = self.state(engine)  # every process: the random states are gathered
        if distributed.rank() == 0:
            with atomic_path(self.path) as tmp:
                torch.save(state, tmp)

    def load(self, engine) -> None:
        """Restore everything from ``checkpoint_last.pt`` (when ``resume``); the run continues after its epoch.

        Raises:
            MedkitError: the file is missing or is not a checkpoint of this training.
        """
        from medkit import distributed

        if not self.resume:
            return
        check_resume(os.path.dirname(self.path), True)
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
            _unwrap(self.network).load_state_dict(state["network"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.lr_scheduler is not None:
                self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        except MedkitError:
            raise
        except Exception as e:  # a truncated file, another network's state
            raise MedkitError(f"{self.path}: cannot be resumed from ({type(e).__name__}: {e})") from None
        epoch = state["trainer"]["epoch"]
        if epoch > engine.state.max_epochs:
            raise MedkitError(f"{self.path}: already at epoch {epoch}, past the {engine.state.max_epochs} asked for")
        engine.state.epoch = epoch
        engine.state.iteration = state["trainer"]["iteration"]
        handler = getattr(self.early_stop, "_handler", None)
        if handler is not None and "early_stop" in state:
            handler.load_state_dict(state["early_stop"])
        if self._best_checkpoint() is not None and "best" in state:
            self._best_checkpoint().load_state_dict(state["best"])
        if self.evaluator is not None and "evaluator" in state:
            self.evaluator.state.best_metric = state["evaluator"]["best_metric"]
            self.evaluator.state.best_metric_epoch = state["evaluator"]["best_metric_epoch"]
        rngs = state["rng"]
        _set_rng_state(rngs[min(distributed.rank(), len(rngs) - 1)], self._transforms)
        logger.info("resumed from %s after epoch %d of %d", self.path, epoch, engine.state.max_epochs)
