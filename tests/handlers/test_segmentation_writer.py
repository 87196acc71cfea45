from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medkit.handlers import SegmentationWriter
from medkit.transforms import segmentation_postprocessing


class _State:
    def __init__(self, output, batch):
        self.output, self.batch = output, batch


class _Engine:
    def __init__(self, output, batch):
        self.state = _State(output, batch)


@pytest.mark.parametrize("for_writers", [False, True])
def test_masks_keep_the_slice_orientation(tmp_path, for_writers):
    logits = torch.full((1, 6, 9), -10.0)
    logits[0, 1:3, 5:8] = 10.0  # a block in rows 1-2, columns 5-7 of a 6 x 9 slice
    out = segmentation_postprocessing(for_writers=for_writers)({"pred": logits})
    writer = SegmentationWriter(str(tmp_path), pixel_spacing=(0.5, 2.0), pred_layout="xy" if for_writers else "rc")
    image = torch.rand(3, 6, 9)
    writer._collect(
        _Engine([out], [{"image": image, "image_path": "/x/s_1.tif", "case": "P", "slice": 1, "error": ""}])
    )
    writer.write()
    mask = np.asarray(Image.open(tmp_path / "masks" / "P" / "s_1_mask.png"))
    expected = np.zeros((6, 9), np.uint8)
    expected[1:3, 5:8] = 255
    np.testing.assert_array_equal(mask, expected)
    row = writer.rows[0]
    assert row["tumour_pixels"] == 6 and row["tumour_area_mm2"] == pytest.approx(6.0)
    if for_writers:
        assert out["pred"].dtype == torch.uint8 and tuple(out["pred"].shape) == (9, 6)  # MONAI's (x, y) 2D label
