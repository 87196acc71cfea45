from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from PIL import Image

from medkit.transforms import CropMargind, xray_augmentation, xray_preprocessing


def _write(tmp_path, arr) -> str:
    path = str(tmp_path / "x.png")
    Image.fromarray(arr).save(path)
    return path


def test_preprocessing_shape_range_and_path(tmp_path):
    arr = np.tile(np.arange(64, dtype=np.uint8) * 2, (48, 1))
    out = Compose(xray_preprocessing(spatial_size=(32, 40)))({"image": _write(tmp_path, arr)})
    assert tuple(out["image"].shape) == (1, 32, 40) and out["image"].dtype == torch.float32
    # scaled to [0, 1] before the area resize, which averages neighbouring columns
    assert 0.0 <= float(out["image"].min()) < 0.02 and 0.98 < float(out["image"].max()) <= 1.0
    assert out["image_path"].endswith("x.png")


def test_equalization_flattens_the_histogram(tmp_path):
    # a low-contrast image: most pixels in a narrow band
    rng = np.random.default_rng(0)
    arr = np.clip(rng.normal(100, 5, (64, 64)), 0, 255).astype(np.uint8)
    arr[0, 0], arr[0, 1] = 0, 255
    path = _write(tmp_path, arr)
    plain = Compose(xray_preprocessing(spatial_size=(64, 64)))({"image": path})["image"].numpy().ravel()
    equal = Compose(xray_preprocessing(spatial_size=(64, 64), equalize=True))({"image": path})["image"].numpy().ravel()
    # after equalization the values spread over [0, 1]: about uniform, so each quarter holds about a quarter
    quarters = np.histogram(equal, bins=4, range=(0, 1))[0] / equal.size
    assert np.all(np.abs(quarters - 0.25) < 0.08)
    assert np.std(equal) > 2 * np.std(plain)
    # the order of intensities is kept
    assert np.corrcoef(np.argsort(np.argsort(plain)), np.argsort(np.argsort(equal)))[0, 1] > 0.95


def test_crop_margin_removes_the_framing(tmp_path):
    # a bright burnt-in marker in a corner and a black frame around a mid-grey patient
    arr = np.zeros((100, 80), dtype=np.uint8)
    arr[10:90, 8:72] = 120
    arr[2:6, 2:6] = 255
    out = Compose(xray_preprocessing(spatial_size=(40, 40), crop_margin=0.1))({"image": _write(tmp_path, arr)})
    image = out["image"]
    assert tuple(image.shape) == (1, 40, 40) and out["image_path"].endswith("x.png")
    # 10 rows and 8 columns cut off each edge: no marker, no frame; a flat image scales to zeros
    assert float(image.max()) == 0.0
    cut = CropMargind("image", 0.25)({"image": torch.arange(64.0).reshape(1, 8, 8)})["image"]
    assert cut.tolist() == [
        [[18.0, 19.0, 20.0, 21.0], [26.0, 27.0, 28.0, 29.0], [34.0, 35.0, 36.0, 37.0], [42.0, 43.0, 44.0, 45.0]]
    ]
    with pytest.raises(ValueError, match="crop_margin must be in"):
        CropMargind("image", 0.5)


def test_augmentation_keeps_shape():
    aug = Compose(xray_augmentation(prob=1.0))
    aug.set_random_state(0)
    out = aug({"image": torch.rand(1, 32, 32)})
    assert tuple(out["image"].shape) == (1, 32, 32)
