"""Batch augmentation on the device (medkit.transforms.batch), the trainer's DeviceBatch and the fast-path settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import Affine, EnsureTyped, RandAffined, RandFlipd

from medkit.bundle.fast import cpu_has_bf16, memory_format, use_bf16, use_channels_last
from medkit.errors import MedkitError
from medkit.transforms import ct_augmentation, mri_slice_augmentation, segmentation_augmentation, xray_augmentation
from medkit.transforms.batch import (
    BatchAdjustContrast,
    BatchAffine,
    BatchAugmentation,
    BatchCoarseDropout,
    BatchFlip,
    BatchGaussianNoise,
    BatchRotate90,
    BatchScaleIntensity,
    BatchShiftIntensity,
    affine_matrices,
    split_batch_augmentation,
)
from medkit.workflows import DeviceBatch


def _smooth_2d(h: int = 64, w: int = 48) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return (torch.sin(3 * yy) + torch.cos(2 * xx + yy))[None, None].float()


def _sample(image: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def test_affine_matrices_match_monai_affine_in_2d_on_a_non_square_image():
    image = _smooth_2d()
    angle, scale, shift = 0.2, [1.1, 0.95], [5.0, -3.0]
    ref = Affine(rotate_params=angle, scale_params=scale, translate_params=shift, padding_mode="zeros", image_only=True)
    expected = ref(image[0]).as_tensor()
    theta = affine_matrices(torch.tensor([[angle]]), torch.tensor([scale]), torch.tensor([shift]), (64, 48))
    assert torch.allclose(_sample(image, theta)[0], expected, atol=1e-4)


def test_affine_matrices_match_monai_affine_in_3d():
    torch.manual_seed(0)
    volume = F.avg_pool3d(torch.randn(1, 1, 20, 24, 16), 3, 1, 1)
    angles, scales, shifts = [0.1, -0.2, 0.3], [1.1, 0.9, 1.05], [2.0, -1.0, 3.0]
    ref = Affine(
        rotate_params=angles, scale_params=scales, translate_params=shifts, padding_mode="zeros", image_only=True
    )
    expected = ref(volume[0]).as_tensor()
    theta = affine_matrices(torch.tensor([angles]), torch.tensor([scales]), torch.tensor([shifts]), (20, 24, 16))
    assert torch.allclose(_sample(volume, theta)[0], expected, atol=1e-4)


def test_xray_augmentation_moves_whole_into_the_batch_with_its_ranges():
    per_sample, batch = split_batch_augmentation(xray_augmentation("image", prob=0.5))
    assert per_sample == []
    affine, contrast, scale = batch.transforms
    assert isinstance(affine, BatchAffine) and affine.prob == 0.5
    assert affine.rotate_range == [0.17] and affine.scale_range == [0.1] and affine.translate_range == [8.0, 8.0]
    assert isinstance(contrast, BatchAdjustContrast) and contrast.prob == 0.25 and contrast.gamma == (0.8, 1.25)
    assert isinstance(scale, BatchScaleIntensity) and scale.factors == (-0.1, 0.1)
    assert batch.keys == ["image"]


def test_patch_sampling_stays_per_sample_and_labels_take_nearest():
    chain = segmentation_augmentation("image", "label", patch_size=(32, 32))
    per_sample, batch = split_batch_augmentation(chain)
    assert per_sample == chain[:1]  # RandCropByPosNegLabeld
    kinds = [type(t) for t in batch.transforms]
    assert kinds == [
        BatchFlip,
        BatchFlip,
        BatchRotate90,
        BatchAffine,
        BatchAdjustContrast,
        BatchShiftIntensity,
        BatchScaleIntensity,
    ]
    affine = batch.transforms[3]
    assert affine.keys == ["image", "label"] and affine.mode == ["bilinear", "nearest"]


def test_a_transform_without_batch_version_ends_the_tail_and_type_casts_stay_per_sample():
    chain = mri_slice_augmentation("image", flair_prob=0.3)  # RandFlairForChannelsd first: no batch version
    per_sample, batch = split_batch_augmentation(chain)
    assert per_sample == chain[:1] and len(batch) == len(chain) - 1

    ct = ct_augmentation("image", seg_key="seg", patch_size=(16, 16, 16), label_ratios=[1, 1])
    per_sample, batch = split_batch_augmentation(ct)
    assert type(per_sample[0]).__name__ == "RandCropByLabelClassesd"
    assert [type(t) for t in per_sample[1:]] == [EnsureTyped, EnsureTyped]
    assert [type(t) for t in batch.transforms] == [BatchAffine, BatchGaussianNoise, BatchScaleIntensity]

    sheared = [RandAffined("image", prob=0.5, shear_range=0.1)]  # no batch version of a shear
    assert split_batch_augmentation(sheared) == (sheared, None)
    assert split_batch_augmentation(xray_augmentation(), enabled=False)[1] is None


def test_every_sample_gets_its_own_draw_at_the_transform_probability():
    torch.manual_seed(0)
    x = torch.ones(4000, 1, 4, 4)
    out = BatchScaleIntensity("image", prob=0.5, factors=0.1)({"image": x})["image"]
    factors = out[:, 0, 0, 0]
    changed = (factors != 1).float().mean().item()
    assert 0.46 < changed < 0.54
    assert factors.min() >= 0.9 and factors.max() <= 1.1 and factors[factors != 1].unique().numel() > 1000
    assert torch.equal(BatchScaleIntensity("image", prob=0.0)({"image": x})["image"], x)


def test_gamma_contrast_matches_monai_on_a_chosen_sample():
    from monai.transforms import AdjustContrast

    torch.manual_seed(1)
    x = torch.rand(3, 1, 8, 8) * 2 + 0.5
    out = BatchAdjustContrast("image", prob=1.0, gamma=(0.8, 1.25))({"image": x})["image"]
    for i in range(3):  # recover each sample's gamma from one pixel, then compare the whole sample with MONAI
        lo, hi = x[i].min(), x[i].max()
        j = (x[i] - lo).flatten().argmax() // 2
        u, v = ((x[i].flatten()[j] - lo) / (hi - lo)), ((out[i].flatten()[j] - lo) / (hi - lo))
        gamma = (torch.log(v) / torch.log(u)).item()
        assert 0.8 <= gamma <= 1.25
        assert torch.allclose(out[i], torch.as_tensor(AdjustContrast(gamma)(x[i])), atol=1e-4)


def test_image_and_label_move_together_and_labels_keep_their_type():
    torch.manual_seed(2)
    label = torch.randint(0, 3, (16, 1, 24, 24)).to(torch.int8)
    label = F.max_pool2d(label.float(), 3, 1, 1).to(torch.int8)
    batch = {"image": label.float(), "label": label}
    aug = BatchAugmentation(
        [
            BatchFlip(["image", "label"], prob=0.5, spatial_axis=0),
            BatchRotate90(["image", "label"], prob=0.5),
            BatchAffine(["image", "label"], prob=1.0, rotate_range=[0.3], scale_range=[0.1, 0.1], mode="nearest"),
        ]
    )
    out = aug(batch)
    assert out["label"].dtype == torch.int8 and out["image"].dtype == torch.float32
    assert torch.equal(out["image"].to(torch.int8), out["label"])
    assert not torch.equal(out["label"], label)
    assert torch.equal(batch["label"], label)  # the batch given is not changed


def test_same_seed_same_augmentation():
    x = torch.rand(8, 1, 32, 32)
    per_sample, aug = split_batch_augmentation(xray_augmentation(prob=1.0))
    torch.manual_seed(3)
    first = aug({"image": x})["image"]
    torch.manual_seed(3)
    assert torch.equal(aug({"image": x})["image"], first)


def test_rotate90_refuses_a_non_square_plane():
    with pytest.raises(ValueError, match="square"):
        BatchRotate90("image", prob=1.0)({"image": torch.rand(2, 1, 8, 6)})


def test_device_batch_gives_plain_tensors_and_leaves_the_engine_batch_alone():
    image = MetaTensor(torch.rand(4, 1, 8, 8), meta={"filename_or_obj": ["a"] * 4})
    batch = {"image": image, "label": torch.tensor([0, 1, 0, 1])}
    inputs, targets = DeviceBatch()(batch, torch.device("cpu"))
    assert type(inputs) is torch.Tensor and torch.equal(inputs, image.as_tensor())
    torch.manual_seed(0)
    flip = BatchAugmentation([BatchFlip("image", prob=1.0, spatial_axis=1)])
    inputs, _ = DeviceBatch(augmentation=flip)(batch, torch.device("cpu"))
    assert type(inputs) is torch.Tensor and torch.equal(inputs, image.as_tensor().flip(3))
    assert batch["image"] is image and torch.equal(batch["image"].as_tensor(), image.as_tensor())


def test_fast_settings_resolve_for_the_machine():
    conv2d = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    conv3d = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3))
    assert use_bf16("auto", "cpu") == cpu_has_bf16()
    assert use_bf16("auto", "cuda") is False and use_bf16(True, "cpu") is True and use_bf16("false", "cpu") is False
    assert use_channels_last("auto", "cpu", conv2d) is True
    assert use_channels_last("auto", "cuda", conv2d) is False
    assert use_channels_last("auto", "cpu", conv3d) is False
    assert memory_format(False, "cpu", conv2d) == torch.preserve_format
    with pytest.raises(MedkitError, match="3D convolutions"):
        use_channels_last(True, "cpu", conv3d)
    for bad in ("fast", 1, None):
        with pytest.raises(MedkitError, match="bf16_cpu"):
            use_bf16(bad, "cpu")


def test_flip_batch_version_keeps_axis_and_keys():
    (flip,) = split_batch_augmentation([RandFlipd(["image", "label"], prob=0.3, spatial_axis=1)])[1].transforms
    assert isinstance(flip, BatchFlip) and flip.keys == ["image", "label"] and flip.spatial_axis == [1]
    assert flip.prob == 0.3


def test_random_erasing_cuts_one_rectangle_of_the_drawn_size_per_chosen_sample():
    per_sample, batch = split_batch_augmentation(xray_augmentation(erase_prob=1.0, erase_size=(16, 48)))
    erase = batch.transforms[-1]
    assert per_sample == [] and isinstance(erase, BatchCoarseDropout) and erase.holes == 1
    torch.manual_seed(0)
    zeros = erase({"image": torch.ones(64, 1, 160, 160)})["image"] == 0
    for z in zeros[:, 0]:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        assert 16 <= len(rows) <= 48 and 16 <= len(cols) <= 48
        assert rows.max() - rows.min() + 1 == len(rows) and z.sum() == len(rows) * len(cols)  # one rectangle
    assert (
        not BatchCoarseDropout("image", prob=0.0, spatial_size=8)({"image": torch.ones(4, 1, 32, 32)})["image"]
        .eq(0)
        .any()
    )
