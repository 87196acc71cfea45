"""Exceptions raised by medkit for problems a user can fix (bad files, bad layouts, bad arguments)."""

from __future__ import annotations

import os

__all__ = ["MedkitError", "InputFileError", "DatasetLayoutError"]


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
