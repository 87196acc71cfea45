from __future__ import annotations

import pytest
import torch

from medkit.transforms import segmentation_postprocessing


def test_small_islands_are_removed_and_large_ones_kept():
    logits = torch.full((1, 12, 12), -10.0)
    logits[0, 1:5, 1:5] = 10.0  # 16 pixels
    logits[0, 8, 8] = logits[0, 9, 9] = 10.0  # 2 pixels touching at a corner: one 8-connected island
    logits[0, 2, 10] = 10.0  # 1 pixel
    kept = segmentation_postprocessing(min_size=3)({"pred": logits})["pred"]
    assert int(kept.sum()) == 16 and int(kept[0, 1:5, 1:5].sum()) == 16
    corner = segmentation_postprocessing(min_size=2)({"pred": logits})["pred"]
    assert int(corner.sum()) == 18  # the diagonal pair counts as one island of 2
    assert int(segmentation_postprocessing()({"pred": logits})["pred"].sum()) == 19  # 0 keeps everything


def test_bad_min_size():
    with pytest.raises(ValueError, match="min_size"):
        segmentation_postprocessing(min_size=-1)
