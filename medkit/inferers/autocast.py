"""Mixed precision on the CPU for MONAI engines, whose own ``amp`` switch only autocasts on CUDA."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer

__all__ = ["AutocastInferer"]


def _to_float(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_float(v) for k, v in out.items()}
    return out


class AutocastInferer(Inferer):
    """Run ``inferer`` (default ``SimpleInferer``) under ``torch.autocast(device_type, dtype)`` when the inputs
    are on ``device_type``, and hand back float32 so the loss, metrics and post-processing see full precision.

    MONAI's ``SupervisedTrainer(amp=True)`` autocasts on CUDA only; on a CPU with bfloat16 instructions
    (AVX512-BF16 or AMX) a convolutional network trains about twice as fast this way
    (``scripts/benchmark_train_step.py``). Inputs on another device pass through unchanged, so one config serves
    CPU and GPU (where the engine's own ``amp`` applies).

    Args:
        inferer: the inferer to wrap.
        device_type: the device type to autocast on.
        dtype: the reduced precision type.
        enabled: False runs ``inferer`` as it is.
    """

    def __init__(
        self,
        inferer: Inferer | None = None,
        device_type: str = "cpu",
        dtype: torch.dtype | str = torch.bfloat16,
        enabled: bool = True,
    ) -> None:
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.device_type = device_type
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if not isinstance(self.dtype, torch.dtype):
            raise ValueError(f"AutocastInferer: {dtype!r} is not a torch dtype")
        self.enabled = bool(enabled)

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled or inputs.device.type != self.device_type:
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.inferer(inputs, network, *args, **kwargs)
        return _to_float(out)
