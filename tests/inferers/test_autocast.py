import pytest
import torch
from monai.inferers import SlidingWindowInferer

from medkit.inferers import AutocastInferer


class DtypeProbe(torch.nn.Module):
    """A convolution that records the dtype it computed in."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.seen = []

    def forward(self, x):
        out = self.conv(x)
        self.seen.append(out.dtype)
        return out


def test_autocast_runs_in_bf16_and_returns_float32():
    net = DtypeProbe()
    x = torch.rand(2, 1, 16, 16)
    out = AutocastInferer()(x, net)
    assert net.seen == [torch.bfloat16]
    assert out.dtype == torch.float32 and out.shape == (2, 2, 16, 16)
    # close to the full-precision result, not equal to it
    ref = net.conv(x)
    assert torch.allclose(out, ref, atol=0.05) and not torch.equal(out, ref)


def test_autocast_disabled_or_other_device_passes_through():
    net = DtypeProbe()
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(AutocastInferer(enabled=False)(x, net), net.conv(x))
    AutocastInferer(device_type="cuda")(x, net)  # inputs on the CPU: not autocast
    assert net.seen == [torch.float32, torch.float32]


def test_autocast_wraps_sliding_window_and_gradients_flow():
    net = DtypeProbe()
    inferer = AutocastInferer(SlidingWindowInferer(roi_size=(8, 8), sw_batch_size=2), dtype="bfloat16")
    x = torch.rand(1, 1, 20, 12)
    out = inferer(x, net)
    assert out.shape == (1, 2, 20, 12) and out.dtype == torch.float32
    out.mean().backward()
    assert net.conv.weight.grad is not None and net.conv.weight.grad.dtype == torch.float32
    assert torch.isfinite(net.conv.weight.grad).all()


def test_autocast_converts_nested_outputs():
    class Pair(torch.nn.Module):
        def forward(self, x):
            return {"a": x @ x.transpose(-1, -2), "b": (x.sum(), torch.ones(1, dtype=torch.long))}

    out = AutocastInferer()(torch.rand(1, 4, 4), Pair())
    assert out["a"].dtype == torch.float32 and out["b"][0].dtype == torch.float32
    assert out["b"][1].dtype == torch.long


def test_autocast_rejects_a_non_dtype():
    with pytest.raises(ValueError, match="not a torch dtype"):
        AutocastInferer(dtype="cpu")
