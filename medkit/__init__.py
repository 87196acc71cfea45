"""medkit: a medical-imaging toolkit on MONAI and PyTorch-Ignite.

Submodules load on first use, so bundle configs can write ``"$import medkit"`` and then
``medkit.data.make_datalist(...)`` without importing everything up front.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "bundle",
    "inferers",
    "cli",
    "data",
    "errors",
    "explain",
    "handlers",
    "io",
    "losses",
    "metrics",
    "networks",
    "transforms",
    "workflows",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"medkit.{name}")
    raise AttributeError(f"module 'medkit' has no attribute '{name}'")
