"""MONAI's ``StatsHandler`` that reports medkit's own errors as one line instead of a logged traceback."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ignite.engine import Engine
from monai.handlers import StatsHandler as _MonaiStatsHandler

from medkit.errors import MedkitError

__all__ = ["StatsHandler"]


class StatsHandler(_MonaiStatsHandler):
    """``monai.handlers.StatsHandler`` (same arguments); an error medkit raises on purpose (a diverged loss, a bad
    input) is logged as its one-line message, Ctrl-C as one line too, an unexpected error with its traceback as
    MONAI does.

    Its lines go where the bundle's ``logging.conf`` sends the log (stderr): MONAI's own handler gets a logger of its
    own that writes to stdout, mixing the log into a command's results.
    """

    def __init__(self, *args: Any, name: str = "medkit.handlers.StatsHandler", **kwargs: Any) -> None:
        super().__init__(*args, name=name, **kwargs)
        for handler in list(self.logger.handlers):  # the stdout handler monai.apps.get_logger added
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                self.logger.removeHandler(handler)
        self.logger.propagate = True
        self.logger.setLevel(logging.NOTSET)

    def exception_raised(self, _engine: Engine, e: BaseException) -> None:
        if isinstance(e, KeyboardInterrupt):
            self.logger.error("interrupted (Ctrl-C)")
            raise e
        if isinstance(e, MedkitError):
            self.logger.error(str(e))
            raise e
        super().exception_raised(_engine, e)
