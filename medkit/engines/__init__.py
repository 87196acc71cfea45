"""Running a bundle's network through one of three engines: PyTorch, TorchScript, ONNX Runtime.

Every entry point (``medkit infer --engine``, ``python -m monai.bundle run ... --engine onnx``, the two-stage gate)
gets its network from ``load_network``: the bundle's own ``network_def`` for ``torch`` (its weights loaded by
``checkpoint_loader``), or the file ``medkit export --format torchscript|onnx`` wrote beside the checkpoint
(``models/model.ts``, ``models/model.onnx``) wrapped as a ``torch.nn.Module``, so the preprocessing, inferers and
post-processing are the same whatever runs the network. An exported file records the SHA-256 of the checkpoint it
was made from; one made from other weights is refused by name (export it again).
"""

from __future__ import annotations

import os
from typing import Any

from medkit.errors import MedkitError

__all__ = [
    "ENGINES",
    "ENGINE_FILES",
    "SOURCE_KEY",
    "require",
    "engine_file",
    "load_network",
    "load_exported",
    "checkpoint_loader",
]

#: the engines, ``torch`` first (the default)
ENGINES = ("torch", "torchscript", "onnx")
#: the file each exported engine reads, in the checkpoint's folder
ENGINE_FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}
#: the metadata key under which an exported file records the SHA-256 of the checkpoint it was made from
SOURCE_KEY = "medkit_source_sha256"
#: the extra that installs the optional packages of the exported engines
EXTRA = "export"


def require(module: str) -> Any:
    """Import an optional package of the exported engines (``onnx``, ``onnxruntime``).

    Raises:
        MedkitError: not installed; the message names the extra that installs it.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MedkitError(
            f"{module} is not installed: pip install 'medkit[{EXTRA}]' (or bash scripts/setup.sh)"
        ) from None


def check_engine(engine: str) -> str:
    """``engine`` if it is one of ``ENGINES``.

    Raises:
        MedkitError: any other name.
    """
    if engine not in ENGINES:
        raise MedkitError(f"unknown engine '{engine}', expected one of {list(ENGINES)}")
    return engine


def engine_file(ckpt_path: str | os.PathLike, engine: str) -> str:
    """The exported file of ``engine`` beside the checkpoint ``ckpt_path`` (``models/model.onnx``...)."""
    return os.path.join(os.path.dirname(os.path.abspath(os.fspath(ckpt_path))), ENGINE_FILES[check_engine(engine)])


def load_network(engine: str, network_def: Any, ckpt_path: str | os.PathLike, device: Any = "cpu"):
    """The network an inference config runs (its ``network``): ``network_def`` on ``device`` for ``torch`` (the
    checkpoint is loaded by ``checkpoint_loader`` when the evaluator starts), else the exported file beside
    ``ckpt_path`` in that engine, as a module in eval mode.

    Raises:
        MedkitError: unknown engine, the exported file missing, unreadable, or made from another checkpoint than
            ``ckpt_path``, or the engine's package not installed.
    """
    if check_engine(engine) == "torch":
        return network_def.to(device)
    return load_exported(engine_file(ckpt_path, engine), ckpt_path, device)


def load_exported(path: str, ckpt_path: str | os.PathLike, device: Any = "cpu"):
    """The exported network ``path`` (``.ts``: TorchScript, else ONNX Runtime) as a module in eval mode, checked to
    have been made from the checkpoint ``ckpt_path`` (``check_source``).

    Raises:
        MedkitError: the file missing, unreadable or stale, the engine's package not installed.
    """
    import torch

    from medkit.engines.exported import OnnxNetwork, TorchScriptNetwork

    if not os.path.isfile(path):
        engine = "torchscript" if path.endswith(".ts") else "onnx"
        raise MedkitError(
            f"{path}: missing; write it with medkit export BUNDLE --format {engine} "
            "(the engines read the exported network beside the checkpoint)"
        )
    net = (TorchScriptNetwork if path.endswith(".ts") else OnnxNetwork)(path, device=torch.device(device))
    check_source(net, path, ckpt_path)
    return net.eval()


def check_source(net: Any, path: str, ckpt_path: str | os.PathLike) -> None:
    """Refuse an exported network whose recorded source is not the checkpoint ``ckpt_path`` (stale weights).

    Raises:
        MedkitError: the recorded SHA-256 differs from the checkpoint's, or none is recorded.
    """
    from medkit.networks.weights import sha256_of

    recorded = net.metadata.get(SOURCE_KEY)
    if not os.path.isfile(ckpt_path):
        return  # a bundle shipped with an exported network only: nothing to be stale against
    if recorded != sha256_of(ckpt_path):
        what = "another checkpoint" if recorded else "an unknown checkpoint"
        raise MedkitError(f"{path}: exported from {what}, not {ckpt_path}; export it again (medkit export)")


class _NoCheckpoint:
    """The ``checkpoint_loader`` of an exported engine: its weights are in the exported file."""

    def attach(self, engine) -> None:
        return None


def checkpoint_loader(engine: str, load_path: str, network: Any):
    """The inference config's ``checkpoint_loader``: ``StrictCheckpointLoader`` for ``torch``, nothing to load for
    an exported engine (``load_network`` checked its file against ``load_path``)."""
    from medkit.handlers.checkpoint import StrictCheckpointLoader

    if check_engine(engine) == "torch":
        return StrictCheckpointLoader(load_path=load_path, network=network)
    return _NoCheckpoint()
