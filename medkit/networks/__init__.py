"""Networks and weight loading."""

from __future__ import annotations

from medkit.networks.resunet import ResUNet
from medkit.networks.weights import load_pretrained, sha256_of

__all__ = ["ResUNet", "load_pretrained", "sha256_of"]
