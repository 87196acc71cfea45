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


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """PIL's PNG encoder reports a full disk behind its own AttributeError ('_idat' has no fileno); the write says
    which file and why, and leaves nothing half-written."""
    import errno

    import numpy as np
    from PIL import Image

    from medkit.cli.main import _one_line
    from medkit.errors import MedkitError
    from medkit.explain.overlay import save_rgb_png

    def full_disk(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        try:
            raise AttributeError("'_idat' object has no attribute 'fileno'")
        except AttributeError:
            raise OSError(errno.ENOSPC, "No space left on device") from None

    monkeypatch.setattr(Image.Image, "save", full_disk)
    target = tmp_path / "masks" / "a_mask.png"
    with pytest.raises(MedkitError) as caught:
        save_rgb_png(np.zeros((8, 8), dtype=np.uint8), str(target))
    assert _one_line(caught.value) == f"{target}: could not be written (No space left on device)"
    assert os.listdir(tmp_path / "masks") == []
