"""Networks and weight loading."""

from __future__ import annotations

from medkit.networks.evidence import EvidenceClassifier
from medkit.networks.resunet import ResEncoderClassifier, ResUNet
from medkit.networks.weights import load_pretrained, sha256_of

__all__ = [
    "EvidenceClassifier",
    "ResUNet",
    "ResEncoderClassifier",
    "load_pretrained",
    "sha256_of",
]
