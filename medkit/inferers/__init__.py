"""Inferers medkit adds to MONAI's."""

from __future__ import annotations

from medkit.inferers.gated import GatedInferer

__all__ = ["GatedInferer"]
