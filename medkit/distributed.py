"""Training on several processes (``torchrun``): the process group, each process's device and rank.

A bundle's ``configs/multi_gpu_train.json`` overlay calls :func:`setup` for its ``device``; the shared
``train.json`` reads :func:`rank` (0 in a single process) to seed each process differently and to keep logs and
TensorBoard to the first process. NCCL joins the processes on GPUs, gloo on the CPU; the same overlay serves both.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from medkit.errors import MedkitError

__all__ = ["setup", "rank", "world_size", "is_distributed", "device_ids", "barrier", "cleanup", "check_launch"]


def is_distributed() -> bool:
    """Whether this process belongs to an initialised process group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank: the process group's, else ``RANK`` when ``torchrun`` started several processes
    (the group may not be joined yet while a config is parsed), else 0."""
    if is_distributed():
        import torch.distributed as dist

        return dist.get_rank()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("RANK", "0"))
    return 0


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    if is_distributed():
        import torch.distributed as dist

        return dist.get_world_size()
    return 1


def setup(device: Any = None):
    """Join the process group ``torchrun`` describes (its ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` environment),
    once, and return this process's device: ``cuda:<LOCAL_RANK>`` with NCCL when a GPU is visible, else the CPU
    with gloo. Processes other than rank 0 log warnings only.

    Args:
        device: force a device (``"cpu"`` on a GPU machine, for a test); default: by what PyTorch sees.

    Raises:
        MedkitError: not started by ``torchrun`` (no ``WORLD_SIZE``/``RANK`` in the environment).
    """
    import torch
    import torch.distributed as dist

    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing and not is_distributed():
        raise MedkitError(
            f"multi_gpu_train.json needs the processes torchrun starts ({', '.join(missing)} not set): run "
            "'medkit train BUNDLE --nproc N' or 'torchrun --nproc_per_node N -m monai.bundle run ...'"
        )
    chosen = torch.device(device) if device is not None else None
    use_cuda = chosen.type == "cuda" if chosen is not None else torch.cuda.is_available()
    if use_cuda:
        local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(local)
    else:
        local = torch.device("cpu")
    if not is_distributed():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if dist.get_rank() > 0:
        logging.getLogger().setLevel(logging.WARNING)
        for name in ("ignite", "monai", "medkit"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return local


def device_ids(device: Any) -> list[int] | None:
    """``DistributedDataParallel``'s ``device_ids``: ``[index]`` on a GPU, ``None`` on the CPU."""
    import torch

    device = torch.device(device)
    return [device.index or 0] if device.type == "cuda" else None


def barrier() -> None:
    """Wait for every process (nothing in a single process)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


#: set by ``medkit.workflows.stages.train_bundle`` while it runs several stages in one process group
KEEP_GROUP = False


def cleanup(force: bool = False) -> None:
    """Leave the process group (the overlay's ``finalize``), after every process got there; kept while
    ``KEEP_GROUP`` is set (the next training stage uses it) unless ``force``."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()
        if force or not KEEP_GROUP:
            dist.destroy_process_group()


def check_launch(network: Any) -> None:
    """Refuse a training that ``torchrun`` started on several processes without the ``multi_gpu_train.json``
    overlay (each process would train alone on all the data and write the same files).

    Raises:
        MedkitError: ``WORLD_SIZE`` > 1 and ``network`` is not wrapped in ``DistributedDataParallel``.
    """
    from torch.nn.parallel import DistributedDataParallel

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not isinstance(network, DistributedDataParallel):
        raise MedkitError(
            f"started on {size} processes without configs/multi_gpu_train.json: add it to --config_file "
            "(\"['.../train.json','.../multi_gpu_train.json']\") or use 'medkit train BUNDLE --nproc N'"
        )
