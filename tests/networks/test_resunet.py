from __future__ import annotations

import pytest
import torch
from monai.inferers import SlidingWindowInferer

from medkit.networks import ResUNet


def test_shapes_2d_and_3d():
    net = ResUNet(spatial_dims=2, in_channels=3, out_channels=1, channels=(4, 8, 16))
    assert net(torch.zeros(2, 3, 32, 48)).shape == (2, 1, 32, 48)
    net3 = ResUNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8))
    assert net3(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 3, 30, 32))


def test_sliding_window_on_inputs_larger_than_the_patch():
    torch.manual_seed(0)
    net = ResUNet(channels=(4, 8, 16, 32)).eval()
    inferer = SlidingWindowInferer(roi_size=(32, 32), sw_batch_size=4, overlap=0.25, mode="gaussian")
    x = torch.rand(2, 3, 70, 101)  # not multiples of the patch or of the network's stride
    with torch.no_grad():
        y = inferer(x, net)
    assert y.shape == (2, 1, 70, 101) and torch.isfinite(y).all()
    # a stacked input (a batch of slices) gives the same result per slice as one at a time
    with torch.no_grad():
        single = inferer(x[1:], net)
    torch.testing.assert_close(y[1:], single, rtol=1e-4, atol=1e-5)


def test_classifier_starts_from_a_segmenter_checkpoint(tmp_path):
    from medkit.networks import ResEncoderClassifier, load_pretrained

    seg = ResUNet(channels=(4, 8, 16))
    torch.save({"model": seg.state_dict()}, tmp_path / "seg.pt")
    cls = load_pretrained(ResEncoderClassifier(channels=(4, 8, 16)), str(tmp_path / "seg.pt"))
    for name, value in cls.state_dict().items():
        if name.startswith("encoder."):
            assert torch.equal(value, seg.state_dict()[name]), name
    assert cls(torch.zeros(2, 3, 32, 32)).shape == (2, 2)
