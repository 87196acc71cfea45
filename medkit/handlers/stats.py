"""MONAI's ``StatsHandler`` that reports medkit's own errors as one line instead of a logged traceback."""

from __future__ import annotations

from ignite.engine import Engine
from monai.handlers import StatsHandler as _MonaiStatsHandler

from medkit.errors import MedkitError

__all__ = ["StatsHandler"]


class StatsHandler(_MonaiStatsHandler):
    """``monai.handlers.StatsHandler`` (same arguments); an error medkit raises on purpose (a diverged loss, a bad
    input) is logged as its one-line message, Ctrl-C as one line too, an unexpected error with its traceback as
    MONAI does."""

    def exception_raised(self, _engine: Engine, e: BaseException) -> None:
        if isinstance(e, KeyboardInterrupt):
            self.logger.error("interrupted (Ctrl-C)")
            raise e
        if isinstance(e, MedkitError):
            self.logger.error(str(e))
            raise e
        super().exception_raised(_engine, e)
