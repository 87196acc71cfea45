"""medkit: a medical-imaging toolkit on MONAI and PyTorch-Ignite.

Submodules load on first use, so bundle configs can write ``"$import medkit"`` and then
``medkit.data.make_datalist(...)`` without importing everything up front.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# MONAI 1.6 warns at every image loader it builds where NVIDIA's nvImageCodec (a GPU DICOM decoder) is absent and
# pydicom's own decoders are used, as medkit intends; the bundles' logging.conf quiets the matching log line.
warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register")

_SUBMODULES = (
    "bundle",
    "inferers",
    "cli",
    "data",
    "distributed",
    "engines",
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
