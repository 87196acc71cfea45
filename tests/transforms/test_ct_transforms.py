from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import CacheDataset
from monai.transforms import Compose

from medkit.data.cache import cache_memory
from medkit.transforms import (
    CTWindowsd,
    FillMissingLabeld,
    GroupSoftmaxd,
    ct_augmentation,
    ct_preprocessing,
    rsna_postprocessing,
)
from tests.conftest import BUNDLES


def test_windows_become_channels():
    hu = torch.tensor([[-1000.0, -160.0, 40.0, 240.0, 1000.0]]).reshape(1, 5, 1, 1)
    out = CTWindowsd("image", windows=[(40, 400), (60, 150)])({"image": hu})["image"]
    assert out.shape == (2, 5, 1, 1)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert torch.allclose(out[1, :, 0, 0], torch.tensor([0.0, 0.0, (40 - (-15)) / 150, 1.0, 1.0]))
    with pytest.raises(ValueError, match="width > 0"):
        CTWindowsd("image", windows=[(40, 0)])
    with pytest.raises(ValueError, match="one HU channel"):
        CTWindowsd("image")({"image": torch.zeros(2, 3, 3, 3)})


def test_group_softmax_per_target():
    logits = torch.arange(13, dtype=torch.float32)
    out = rsna_postprocessing()[0]({"pred": logits})["pred"]
    sums = [float(p.sum()) for p in torch.split(out, [2, 2, 3, 3, 3])]
    assert sums == pytest.approx([1.0] * 5)
    assert float(out[0]) == pytest.approx(float(torch.softmax(torch.tensor([0.0, 1.0]), 0)[0]))
    with pytest.raises(ValueError, match="expected 5 outputs"):
        GroupSoftmaxd("pred", [2, 3])({"pred": torch.zeros(4)})


@pytest.fixture
def nifti_ct(tmp_path):
    """A 40 x 30 x 20 HU volume at 2 x 2 x 3 mm in LPS-like orientation (x flipped), a bright cube off centre."""
    vol = np.full((40, 30, 20), -1000, np.int16)
    vol[5:35, 5:25, 2:18] = 40
    vol[8:12, 10:14, 8:12] = 300
    affine = np.diag([-2.0, 2.0, 3.0, 1.0])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), str(path))
    return str(path)


def test_preprocessing_resamples_windows_and_fixes_the_size(nifti_ct):
    chain = Compose(ct_preprocessing(pixdim=(4.0, 4.0, 6.0), spatial_size=(32, 24, 16)))
    out = chain({"image": nifti_ct, "label": [0, 1, 2, 0, 1]})
    img = out["image"]
    assert img.shape == (3, 32, 24, 16) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    assert out["label"].dtype == torch.long and out["label"].tolist() == [0, 1, 2, 0, 1]
    assert out["image_path"] == nifti_ct
    # 80 x 60 x 60 mm of data -> 20 x 15 x 10 voxels of 4/4/6 mm, centred in the 32 x 24 x 16 grid
    body = (img[0] > 0.3).nonzero()
    extent = (body.max(0).values - body.min(0).values + 1).tolist()
    assert extent[0] in (15, 16, 17) and extent[1] in (10, 11, 12) and extent[2] in (8, 9, 10)
    # the contrast cube is brightest in the contrast window; RAS orientation flips x (affine had -2 on x)
    bright = (img[2] > 0.5).nonzero().float().mean(0)
    assert bright[0] > 16  # x index 8..12 of 40 with x flipped lies in the upper half after RAS reorientation


def test_cache_memory_per_item(nifti_ct):
    ds = CacheDataset([{"image": nifti_ct}] * 2, Compose(ct_preprocessing(spatial_size=(16, 16, 8))), progress=False)
    info = cache_memory(ds)
    assert info["n_cached"] == 2 and info["bytes_per_item"] == 3 * 16 * 16 * 8 * 4 and info["device"] == "cpu"


def test_label_map_follows_the_image_and_missing_ones_are_unlabelled(nifti_ct, tmp_path):
    src = nib.load(nifti_ct)
    labels = np.zeros(src.shape, dtype=np.uint8)
    labels[8:12, 10:14, 8:12] = 10  # on the contrast cube
    seg_path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(labels, src.affine), str(seg_path))
    pre = ct_preprocessing(pixdim=(4.0, 4.0, 6.0), spatial_size=(32, 24, 16), seg_key="seg")
    chain = Compose(pre + ct_augmentation(prob=0.0, seg_key="seg"))
    out = chain({"image": nifti_ct, "seg": str(seg_path)})
    seg, img = out["seg"], out["image"]
    assert seg.shape == (1, 32, 24, 16) and seg.dtype == torch.int8 and set(seg.unique().tolist()) == {0, 10}
    assert float(img[2][seg[0] == 10].mean()) > 0.5  # the label lies on the bright cube
    missing = chain({"image": nifti_ct})
    assert missing["seg"].shape == (1, 32, 24, 16) and (missing["seg"] == -1).all()
    filled = FillMissingLabeld("seg", value=-1)({"image": torch.zeros(3, 4, 4, 2)})
    assert filled["seg"].shape == (1, 4, 4, 2)


def test_meta_component_overrides_an_argument():
    from medkit.bundle import meta_component

    root = os.path.join(BUNDLES, "abdominal_trauma")
    plain = meta_component(root, "preprocessing")
    with_seg = meta_component(root, "preprocessing", seg_key="seg")
    assert len(with_seg) > len(plain)
    assert any(isinstance(t, FillMissingLabeld) for t in with_seg)


def test_patches_are_cut_around_the_labels_asked_for():
    seg = torch.zeros(1, 40, 40, 24, dtype=torch.int8)
    seg[0, 30:33, 4:7, 18:21] = 3  # a small lesion far from the centre
    item = {"image": torch.rand(3, 40, 40, 24), "seg": seg, "label": torch.tensor([0, 1, 0, 0, 0])}
    chain = Compose(
        ct_augmentation(
            "image", prob=0.0, seg_key="seg", patch_size=[8, 8, 8], num_samples=5, label_ratios=[0, 0, 0, 1]
        )
    )
    chain.set_random_state(0)
    patches = chain(item)
    assert len(patches) == 5
    for p in patches:
        assert p["image"].shape == (3, 8, 8, 8) and p["seg"].dtype == torch.int8
        assert int((p["seg"] == 3).sum()) > 0 and torch.equal(p["label"], item["label"])
    for bad in ({"seg_key": None}, {"label_ratios": None}):
        args = {"seg_key": "seg", "patch_size": [8, 8, 8], "label_ratios": [1, 1], **bad}
        with pytest.raises(ValueError, match="patch_size"):
            ct_augmentation("image", **args)
