from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.nets import DenseNet

from medkit.explain import gradcam_maps, overlay_heatmap, save_overlay


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return DenseNet(spatial_dims=2, in_channels=1, out_channels=3, init_features=8, growth_rate=4, block_config=(2, 2))


def test_maps_shape_and_range(net):
    x = torch.rand(3, 1, 40, 48)
    with torch.no_grad():  # maps are computed with gradients even inside no_grad
        maps = gradcam_maps(net, x, "class_layers.relu")
    assert maps.shape == (3, 40, 48) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and np.isfinite(maps).all()
    per_image = gradcam_maps(net, x, "class_layers.relu", class_idx=[0, 1, 2])
    assert per_image.shape == (3, 40, 48)


def test_bad_layer_and_shape(net):
    with pytest.raises(ValueError, match="not a module"):
        gradcam_maps(net, torch.rand(1, 1, 32, 32), "no.such.layer")
    with pytest.raises(ValueError, match="B, C, H, W"):
        gradcam_maps(net, torch.rand(1, 32, 32), "class_layers.relu")


def test_overlay_png(tmp_path):
    image = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))  # brightness varies along columns only
    heat = np.zeros((32, 32), np.float32)
    heat[:16] = 1.0
    rgb = overlay_heatmap(image, heat)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    assert rgb[0, :, 0].mean() > rgb[31, :, 0].mean()  # hot half is redder
    path = save_overlay(str(tmp_path / "o.png"), image, heat)
    from PIL import Image

    assert Image.open(path).size == (32, 32)
