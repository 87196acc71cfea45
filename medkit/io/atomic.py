"""Write files through a temporary file in the same folder, so no half-written output is ever left."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

__all__ = ["atomic_path", "write_text_atomic", "write_json_atomic", "write_table_atomic"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    A ``path`` that is a symbolic link is written through to its target (the link stays a link); one that exists
    and is not a regular file (a folder, ``/dev/null``) is refused before anything is written.

    Raises:
        InputFileError: ``path`` exists and is not a regular file.
        MedkitError: the system refused the write (a full disk, no permission): ``"<path>: could not be written
            (<reason>)"``, whatever library was writing (PIL's PNG encoder hides the disk error behind its own).
    """
    from medkit.errors import InputFileError, MedkitError

    path = os.path.realpath(os.path.abspath(os.fspath(path)))
    if os.path.exists(path) and not os.path.isfile(path):
        raise InputFileError(path, "exists and is not a regular file, so it cannot be replaced by an output file")
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.errno is None:
            raise
        raise MedkitError(f"{path}: could not be written ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(text: str, path: str | os.PathLike) -> str:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(text)
    return os.fspath(path)


def write_json_atomic(obj: object, path: str | os.PathLike) -> str:
    """Write ``obj`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text_atomic(json.dumps(obj, indent=2) + "\n", path)


def write_table_atomic(rows: Sequence[Mapping], columns: Sequence[str], path: str | os.PathLike) -> str:
    """Write ``rows`` as CSV, or as a JSON list of objects when ``path`` ends in ``.json``; missing cells are ``""``."""
    import csv
    import io

    path = os.fspath(path)
    if path.lower().endswith(".json"):
        return write_text_atomic(json.dumps([{c: r.get(c, "") for c in columns} for r in rows], indent=2) + "\n", path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(buf.getvalue(), path)
