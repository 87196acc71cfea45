from __future__ import annotations

import numpy as np
import pytest
import torch

from medkit.transforms import segmentation_postprocessing
from medkit.transforms.segmentation import largest_component


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


def test_fill_holes_fills_enclosed_background_only():
    logits = torch.full((1, 10, 10), -10.0)
    logits[0, 1:6, 1:6] = 10.0
    logits[0, 2:4, 2:4] = -10.0  # a 4-pixel hole inside a 25-pixel square
    logits[0, 7:10, 6:9] = 10.0
    logits[0, 8:10, 7] = -10.0  # a notch open to the border: not a hole
    logits[0, 5, 5] = -10.0  # a dent at the square's corner, open to the outside
    plain = segmentation_postprocessing()({"pred": logits})["pred"]
    filled = segmentation_postprocessing(fill_holes=True)({"pred": logits})["pred"]
    assert int(plain.sum()) == 20 + 7 and int(filled.sum()) == 24 + 7
    assert filled[0, 2:4, 2:4].all() and not filled[0, 5, 5] and not filled[0, 8:10, 7].any()
    diagonal = torch.full((1, 5, 5), -10.0)
    diagonal[0, 1:4, 1:4] = 10.0
    diagonal[0, 2, 2] = -10.0  # enclosed on four sides, open at no side: a hole even though corners are gaps
    diagonal[0, 1, 1] = diagonal[0, 3, 3] = -10.0
    written = np.asarray(segmentation_postprocessing(fill_holes=True, for_writers=True)({"pred": diagonal})["pred"])
    assert written.shape == (5, 5) and written.dtype == np.uint8 and written[2, 2] == 1


def test_bad_min_size():
    with pytest.raises(ValueError, match="min_size"):
        segmentation_postprocessing(min_size=-1)


def test_largest_component_keeps_one_3d_lesion():
    mask = np.zeros((4, 8, 8), bool)
    mask[0:3, 1:4, 1:4] = True  # 27 voxels over three slices
    mask[3, 6, 6] = True  # an island on another slice
    mask[1, 6:8, 0] = True  # and one beside the lesion's slices
    kept = largest_component(mask)
    assert kept.sum() == 27 and kept[0:3, 1:4, 1:4].all()
    diagonal = np.zeros((2, 3, 3), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = True  # touching corners: one 26-connected component
    assert largest_component(diagonal).sum() == 2
    assert not largest_component(np.zeros((2, 3, 3), bool)).any()


def test_largest_component_weighted_by_slice_keeps_the_lesion_the_classifier_is_sure_of():
    mask = np.zeros((4, 8, 8), bool)
    mask[0, :, :] = True  # 64 pixels on a slice the classifier doubts (a bright false positive)
    mask[2:4, 2:5, 2:5] = True  # 18 voxels on two slices it is sure of
    assert largest_component(mask).sum() == 64
    kept = largest_component(mask, [0.2, 0.5, 0.99, 0.97])  # 64 * 0.2 = 12.8 against 9 * (0.99 + 0.97) = 17.6
    assert kept.sum() == 18 and kept[2:4, 2:5, 2:5].all()
    assert largest_component(mask, np.ones(4)).sum() == 64  # equal weights: plain sizes
    with pytest.raises(ValueError, match="slice_weights"):
        largest_component(mask, [0.5, 0.5])
    with pytest.raises(ValueError, match="slice_weights"):
        largest_component(mask, [0.5, float("nan"), 0.5, 0.5])
