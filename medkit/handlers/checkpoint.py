"""Checkpoints that are never half-written, never hold non-finite weights, and never replace a model unannounced."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver

from medkit.errors import MedkitError

__all__ = ["AtomicCheckpointSaver", "StrictCheckpointLoader", "NonFiniteLossHandler", "check_overwrite", "as_flag"]

logger = logging.getLogger(__name__)


def as_flag(value: Any) -> bool:
    """A config flag as given on a command line (``true``/``false``/``1``/``0`` text) or as a boolean.

    Raises:
        MedkitError: any other text.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in {"true", "false", "1", "0", "yes", "no"}:
            raise MedkitError(f"expected true or false, got '{value}'")
        return text in {"true", "1", "yes"}
    return bool(value)


def check_overwrite(ckpt_dir: str, overwrite: Any, filename: str = "model.pt", resume: Any = False) -> None:
    """Refuse to start a run that would replace a model it did not write (a rerun into the same folder, the
    shipped weights of a bundle) unless ``overwrite`` says so. A run that resumes (``resume``) continues the run
    that wrote the model, and needs its ``checkpoint_last.pt``.

    Raises:
        MedkitError: ``<ckpt_dir>/<filename>`` exists and neither ``overwrite`` nor ``resume`` is set; ``resume``
            is set and there is no ``checkpoint_last.pt`` to resume from.
    """
    if as_flag(resume):
        from medkit.handlers.last_checkpoint import check_resume

        check_resume(ckpt_dir, resume)
        return
    path = os.path.join(os.fspath(ckpt_dir), filename)
    if os.path.exists(path) and not as_flag(overwrite):
        raise MedkitError(
            f"{path}: a model is already there and this run would replace it; choose another output folder "
            "or allow it (medkit train --overwrite, monai.bundle run --overwrite true)"
        )


def _non_finite(state: Mapping[str, Any]) -> list[str]:
    bad = []
    for name, value in state.items():
        if isinstance(value, Mapping):
            bad += [f"{name}.{k}" for k in _non_finite(value)]
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            bad.append(name)
    return bad


class _AtomicSaver(DiskSaver):
    """ignite's ``DiskSaver`` writing through a temporary file that replaces the target (``atomic=True``), to a fixed
    file name, refusing non-finite weights. With a fixed name the replace is the removal of the older checkpoint,
    so ``remove`` does nothing: there is never a moment without a complete ``model.pt``."""

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        bad = _non_finite(checkpoint)
        if bad:
            raise MedkitError(f"not saved: the weights hold non-finite values ({', '.join(bad[:3])}...)")
        super().__call__(checkpoint=checkpoint, filename=self.filename or filename, metadata=metadata)

    def remove(self, filename: str) -> None:
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` (same arguments) whose files are written atomically: a full disk or a kill
    during a save leaves the previous complete checkpoint, never a truncated or empty one (MONAI's own saver
    truncates ``model.pt`` in place, and with a fixed file name removes the old one before writing the new);
    weights with a NaN or infinity are never saved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        filenames = {
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_final_checkpoint": kwargs.get("final_filename"),
            "_interval_checkpoint": None,
        }
        for attr, filename in filenames.items():
            checkpoint = getattr(self, attr, None)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicSaver(self.save_dir, filename)


class StrictCheckpointLoader:
    """Load a bundle's weights into its network when the engine starts (MONAI's ``CheckpointLoader`` for the
    ``{"model": network}`` case), every tensor required to fit, and any problem one line naming the file: missing,
    not a PyTorch checkpoint (a corrupt or truncated ``model.pt``), or another architecture's weights.

    Args:
        load_path: the checkpoint (``models/model.pt``).
        network: the network to fill.
        map_location: unused (the weights are read on the CPU and copied into the network where it lives); kept so
            the arguments are ``CheckpointLoader``'s.
    """

    def __init__(self, load_path: str, network: torch.nn.Module, map_location: Any = None) -> None:
        self.load_path = os.fspath(load_path)
        self.network = network

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine=None) -> None:
        from medkit.networks.weights import load_pretrained

        load_pretrained(self.network, self.load_path, strict=True)


class NonFiniteLossHandler:
    """Stop training at the first iteration whose loss is NaN or infinite, with one line saying where.

    ignite's ``TerminateOnNan`` ends the run quietly (exit 0, and the last checkpoint may be the diverged one);
    this raises ``MedkitError`` instead, so ``medkit train`` exits 1 with the message and nothing more is saved.
    """

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    @staticmethod
    def loss_of(output: Any) -> float | None:
        """The iteration's loss from a trainer's output (decollated list of dicts, or one dict)."""
        item = output[0] if isinstance(output, (list, tuple)) and output else output
        loss = item.get("loss") if isinstance(item, Mapping) else None
        if loss is None:
            return None
        return float(loss.detach().float().mean()) if isinstance(loss, torch.Tensor) else float(loss)

    def __call__(self, engine) -> None:
        loss = self.loss_of(engine.state.output)
        if loss is not None and not math.isfinite(loss):
            optimizer = getattr(engine, "optimizer", None)
            lr = optimizer.param_groups[0]["lr"] if optimizer is not None else None
            raise MedkitError(
                f"training diverged: the loss is {loss} at epoch {engine.state.epoch}, iteration "
                f"{engine.state.iteration}"
                + (f" (learning rate {lr:.3g})" if lr is not None else "")
                + "; stopped, and no checkpoint of the diverged weights was saved"
            )
