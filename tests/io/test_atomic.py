"""Outputs are written whole or not at all, through symbolic links, never over a folder or a device."""

from __future__ import annotations

import os

import pytest

from medkit.errors import InputFileError
from medkit.io.atomic import write_text_atomic


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_text_atomic("new\n", link)
    assert link.is_symlink() and target.read_text() == "new\n"


@pytest.mark.parametrize("where", ["folder", "/dev/null"])
def test_a_folder_or_device_is_not_replaced(tmp_path, where):
    path = tmp_path / "out" if where == "folder" else where
    if where == "folder":
        path.mkdir()
    with pytest.raises(InputFileError, match="exists and is not a regular file"):
        write_text_atomic("x", path)
    assert os.path.exists(path) and not os.path.isfile(path)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("kept\n")

    with pytest.raises(TypeError):  # the write itself fails (an object the file cannot take)
        write_text_atomic(object(), path)  # type: ignore[arg-type]
    assert path.read_text() == "kept\n" and os.listdir(tmp_path) == ["table.csv"]
