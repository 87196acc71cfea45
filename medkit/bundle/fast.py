"""The fast path of a bundle's training on the machine it runs on: reduced precision and memory layout.

``train.json``'s settings ``bf16_cpu`` and ``channels_last`` take ``true``, ``false`` or ``"auto"`` (the default).
``"auto"`` picks what ``scripts/benchmark_training.py`` measured faster, so no flag is needed for the fast path:

* ``bf16_cpu``: the training forward pass under bfloat16 autocast (``medkit.inferers.AutocastInferer``) when
  training runs on a CPU with native bfloat16 instructions (AVX512-BF16 or AMX). Without them bfloat16 is
  emulated and slower, so ``"auto"`` stays in float32. On CUDA the engine's own ``amp`` applies instead.
* ``channels_last``: the network's weights in channels-last memory layout when the network has 2D convolutions
  and runs on the CPU (oneDNN's native layout). 3D networks and GPUs keep the default layout under ``"auto"``
  (not measured faster there).

Validation and inference are unchanged by ``bf16_cpu``: they run in float32, so the metric that chooses the
checkpoint is the one ``medkit evaluate`` reproduces.
"""

from __future__ import annotations

from typing import Any

import torch

from medkit.errors import MedkitError

__all__ = ["cpu_has_bf16", "use_bf16", "use_channels_last", "memory_format"]

_CHOICES = (True, False, "auto")


def _choice(name: str, value: Any) -> bool | str:
    if isinstance(value, str) and value.lower() in ("true", "false", "auto"):
        value = {"true": True, "false": False}.get(value.lower(), "auto")
    if value not in _CHOICES or isinstance(value, (int, float)) and not isinstance(value, bool):
        raise MedkitError(f"{name}: {value!r} is not one of true, false, 'auto'")
    return value


def _device_type(device: Any) -> str:
    return torch.device(device).type


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as oneDNN needs for fast bf16."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # a build without the probe's backend
            continue
    return False


def use_bf16(setting: Any, device: Any) -> bool:
    """The ``bf16_cpu`` setting resolved for ``device``: ``"auto"`` is true on a CPU with native bfloat16.

    Raises:
        MedkitError: a value other than true, false or ``"auto"``.
    """
    choice = _choice("bf16_cpu", setting)
    if choice != "auto":
        return bool(choice)
    return _device_type(device) == "cpu" and cpu_has_bf16()


def _conv_dims(network: torch.nn.Module) -> set[int]:
    dims = set()
    for module in network.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            dims.add(module.weight.dim() - 2)
    return dims


def use_channels_last(setting: Any, device: Any, network: torch.nn.Module) -> bool:
    """The ``channels_last`` setting resolved: ``"auto"`` is true for a network of 2D convolutions on the CPU.

    Raises:
        MedkitError: a value other than true, false or ``"auto"``, or true for a network with 3D convolutions
            (channels-last is a layout of 4D tensors).
    """
    choice = _choice("channels_last", setting)
    dims = _conv_dims(network)
    if choice == "auto":
        return _device_type(device) == "cpu" and dims == {2}
    if choice and 3 in dims:
        raise MedkitError("channels_last: true needs a network of 2D convolutions; this one has 3D convolutions")
    return bool(choice)


def memory_format(setting: Any, device: Any, network: torch.nn.Module) -> torch.memory_format:
    """The memory format to move ``network`` to (``network.to(device, memory_format=...)``)."""
    return torch.channels_last if use_channels_last(setting, device, network) else torch.preserve_format
