"""Exceptions raised by medkit for problems a user can fix (bad files, bad layouts, bad arguments)."""

from __future__ import annotations

import os
import sys

__all__ = ["MedkitError", "InputFileError", "DatasetLayoutError", "medkit_cause", "install_excepthook"]


class MedkitError(Exception):
    """Base class of every error medkit raises on purpose; the CLI prints these as one line."""


class InputFileError(MedkitError, ValueError):
    """A file that cannot be used as input: message is ``"<path>: <problem>"``.

    Args:
        path: the offending file.
        problem: what is wrong with it, in a few words.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetLayoutError(InputFileError):
    """A data folder that is not laid out as the data set publishes it."""


def medkit_cause(exc: BaseException) -> MedkitError | None:
    """The ``MedkitError`` that ``exc`` is or was raised from (MONAI wraps config and transform errors), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MedkitError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _excepthook(exc_type, exc, tb, previous=sys.excepthook) -> None:
    cause = medkit_cause(exc)
    if cause is None or os.environ.get("MEDKIT_DEBUG"):
        previous(exc_type, exc, tb)
    else:
        print(f"Error: {cause}", file=sys.stderr)


def install_excepthook() -> None:
    """Print an uncaught exception that comes from a ``MedkitError`` as its one line, ``Error: <message>``, instead of
    the traceback (``MEDKIT_DEBUG=1`` shows it); any other exception as before. Installed when a bundle config is
    parsed, so ``python -m monai.bundle run`` reports a refused run (an existing model, a bad data folder) as
    ``medkit`` does; the exit status stays 1."""
    sys.excepthook = _excepthook
