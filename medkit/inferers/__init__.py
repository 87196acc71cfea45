"""Inferers medkit adds to MONAI's."""

from __future__ import annotations

from medkit.inferers.autocast import AutocastInferer
from medkit.inferers.flip import FlipTTAInferer
from medkit.inferers.gated import GatedInferer
from medkit.inferers.segment import SegmentInferer

__all__ = ["AutocastInferer", "FlipTTAInferer", "GatedInferer", "SegmentInferer"]
