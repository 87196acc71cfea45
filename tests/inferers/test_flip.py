from __future__ import annotations

import pytest
import torch
from monai.inferers import SimpleInferer, SlidingWindowInferer
from torch import nn

from medkit.inferers import FlipTTAInferer


class _PlusRowIndex(nn.Module):
    """Not flip-equivariant: adds each pixel's row index, so the views disagree by a known amount."""

    def forward(self, x):
        rows = torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1, 1)
        return x + rows


def test_mean_logit_of_the_four_views_flipped_back():
    x = torch.rand(2, 1, 6, 5)
    out = FlipTTAInferer(SimpleInferer())(x, _PlusRowIndex())
    # the up-down views see the rows reversed: row i gets (i + (5 - i)) / 2 = 2.5 on average over the four views
    torch.testing.assert_close(out, x + 2.5)


def test_equivariant_network_is_unchanged_and_views_are_counted():
    calls = []

    def net(x):
        calls.append(x.clone())
        return 3 * x

    x = torch.rand(1, 2, 8, 8)
    torch.testing.assert_close(FlipTTAInferer(SimpleInferer())(x, net), 3 * x)
    assert len(calls) == 4
    assert any(torch.equal(c, x.flip((2, 3))) for c in calls)
    assert len(FlipTTAInferer(SimpleInferer(), spatial_axes=(3,)).flips) == 2


def test_around_a_sliding_window_larger_than_the_patch():
    x = torch.rand(1, 1, 40, 52)
    sw = SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=4, overlap=0.25, mode="gaussian")
    out = FlipTTAInferer(sw)(x, lambda t: 3 * t)
    assert out.shape == x.shape
    torch.testing.assert_close(out, 3 * x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("axes", [(), (1,), (2, 2)])
def test_bad_axes_are_refused(axes):
    with pytest.raises(ValueError, match="spatial_axes"):
        FlipTTAInferer(SimpleInferer(), spatial_axes=axes)
