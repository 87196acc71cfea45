from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DenseNet

from medkit.errors import InputFileError, MedkitError
from medkit.networks import load_pretrained, sha256_of


def _net(classes: int) -> torch.nn.Module:
    torch.manual_seed(classes)
    return DenseNet(
        spatial_dims=2, in_channels=1, out_channels=classes, init_features=8, growth_rate=4, block_config=(2,)
    )


def test_local_file_and_file_url(tmp_path):
    src = _net(2)
    path = tmp_path / "model.pt"
    torch.save({"model": src.state_dict()}, path)
    for source in (str(path), f"file://{path}"):
        dst = load_pretrained(_net(2), source, sha256=sha256_of(path), strict=True)
        for k, v in src.state_dict().items():
            assert torch.equal(v, dst.state_dict()[k])


def test_transfer_skips_mismatched_head(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(_net(2).state_dict(), path)  # a bare state dict, as CheckpointSaver writes for one object
    target = _net(3)
    head_before = target.class_layers.out.weight.clone()
    load_pretrained(target, str(path))
    assert torch.equal(target.class_layers.out.weight, head_before)
    assert torch.equal(target.features.conv0.weight, _net(2).features.conv0.weight)
    with pytest.raises(MedkitError, match="does not fit"):
        load_pretrained(_net(3), str(path), strict=True)


def test_bad_sources(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(_net(2).state_dict(), path)
    with pytest.raises(InputFileError, match="SHA-256 mismatch"):
        load_pretrained(_net(2), str(path), sha256="0" * 64)
    with pytest.raises(InputFileError, match="weights file not found"):
        load_pretrained(_net(2), str(tmp_path / "none.pt"))
    with pytest.raises(MedkitError, match="needs its SHA-256"):
        load_pretrained(_net(2), "https://example.org/w.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(InputFileError, match="not a PyTorch checkpoint"):
        load_pretrained(_net(2), str(junk))
