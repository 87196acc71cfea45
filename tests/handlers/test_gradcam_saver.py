"""GradCAMSaver: ``medkit explain`` writes one overlay per read input, drawn on the network input."""

from __future__ import annotations

import glob
import os

import numpy as np
from click.testing import CliRunner
from PIL import Image

from medkit.cli.main import cli


def test_explain_writes_an_overlay_per_read_input(synthetic_cxr, tmp_path):
    images = sorted(glob.glob(os.path.join(synthetic_cxr, "test", "PNEUMONIA", "*")))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    out = tmp_path / "explain"
    result = CliRunner().invoke(cli, ["explain", "pneumonia", *images, str(broken), "--out", str(out)])
    assert result.exit_code == 1 and "broken.png" in result.output  # the broken file reported, the others explained
    written = sorted(os.listdir(out))
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    pngs = [n for n in written if n.endswith("_gradcam.png")]
    assert len(pngs) == 2 and all(any(n.startswith(s + "_") for n in pngs) for s in stems)
    overlay = np.asarray(Image.open(out / pngs[0]))
    assert overlay.shape == (160, 160, 3) and overlay.std() > 0  # the network input's size, coloured
