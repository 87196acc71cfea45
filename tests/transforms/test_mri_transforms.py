from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from monai.transforms import Compose

from medkit.data.inference import error_message
from medkit.transforms import mri_slice_preprocessing, segmentation_augmentation
from medkit.transforms.mri import RandFlairForChannelsd, SelectChannelsd


@pytest.fixture
def slice_files(tmp_path):
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    image[8:56, 8:56] = rng.integers(20, 60, (48, 48, 3))
    image[..., 1] = image[..., 1] * 3  # FLAIR windowed brighter than the others
    mask = np.zeros((64, 64), np.uint8)
    mask[20:30, 25:40] = 255
    tifffile.imwrite(tmp_path / "c_1.tif", image, compression="zlib", predictor=True)
    tifffile.imwrite(tmp_path / "c_1_mask.tif", mask)
    return str(tmp_path / "c_1.tif"), str(tmp_path / "c_1_mask.tif")


def test_preprocessing_fixed_and_per_channel(slice_files):
    image, mask = slice_files
    fixed = Compose(mri_slice_preprocessing("image", "label"))({"image": image, "label": mask})
    assert fixed["image"].shape == (3, 64, 64) and fixed["label"].shape == (1, 64, 64)
    assert set(fixed["label"].unique().tolist()) == {0.0, 1.0} and fixed["label"].sum() == 150
    assert fixed["image_path"] == image
    means = fixed["image"].mean(dim=(1, 2))
    assert means[1] > 2 * means[0]  # the fixed 0..255 range keeps FLAIR brighter
    per = Compose(mri_slice_preprocessing("image", "label", per_channel_percentile=99.5))({"image": image})
    assert "label" not in per  # masks are optional (inference)
    assert torch.allclose(per["image"].amax(dim=(1, 2)), torch.ones(3))
    m = per["image"].mean(dim=(1, 2))
    assert m.max() / m.min() < 1.3  # channels windowed alike


def test_a_mask_given_as_image_is_reported_by_name(slice_files):
    _, mask = slice_files
    with pytest.raises(Exception) as info:
        Compose(mri_slice_preprocessing("image"))({"image": mask})
    assert error_message(info.value, mask) == f"{mask}: has 1 channel(s), expected 3 (a mask or grey image?)"


def test_flair_replaces_the_other_channels():
    img = torch.stack([torch.full((4, 4), float(v)) for v in (1, 2, 3)])
    t = RandFlairForChannelsd("image", prob=1.0)
    out = t({"image": img})["image"]
    assert torch.equal(out, torch.full((3, 4, 4), 2.0)) and img[0, 0, 0] == 1  # the input is left alone
    assert torch.equal(RandFlairForChannelsd("image", prob=0.0)({"image": img})["image"], img)


def test_segmentation_patches_follow_the_mask(slice_files):
    image, mask = slice_files
    d = Compose(mri_slice_preprocessing("image", "label"))({"image": image, "label": mask})
    aug = Compose(segmentation_augmentation(patch_size=(32, 32), pos=1.0, neg=0.0, flair_prob=0.5))
    aug.set_random_state(0)
    for _ in range(4):
        out = aug(d)[0]
        assert out["image"].shape == (3, 32, 32) and out["label"].shape == (1, 32, 32)
        assert out["label"].sum() > 0  # positive-centred patches contain tumour


def test_case_scaling_uses_the_whole_patient(tmp_path):
    from medkit.transforms.mri import CaseChannelScaled, case_channel_scale

    rng = np.random.default_rng(1)
    for n, gain in ((1, 1), (2, 2), (3, 4)):  # brighter slices further up the case
        image = np.zeros((32, 32, 3), np.uint8)
        image[4:28, 4:28] = rng.integers(10, 50, (24, 24, 3)) * gain
        tifffile.imwrite(tmp_path / f"p_{n}.tif", image)
    tifffile.imwrite(tmp_path / "p_1_mask.tif", np.zeros((32, 32), np.uint8))
    tifffile.imwrite(tmp_path / "q_1.tif", np.full((32, 32, 3), 7, np.uint8))  # another case beside it
    files = [str(tmp_path / f"p_{n}.tif") for n in (1, 2, 3)]
    expected = case_channel_scale(files, 99.0)
    every = np.concatenate([tifffile.imread(f).reshape(-1, 3) for f in files]).astype(np.float32)
    assert np.allclose(expected, [np.percentile(c[c > 0], 99.0) for c in every.T])
    chain = Compose(mri_slice_preprocessing("image", case_percentile=99.0))
    first, last = chain({"image": files[0]})["image"], chain({"image": files[2]})["image"]
    raw = torch.as_tensor(tifffile.imread(files[0])).permute(2, 0, 1).float()
    assert torch.allclose(first * expected.reshape(3, 1, 1), raw, atol=1e-3)
    assert last.mean() > 2 * first.mean()  # one scale per case keeps the slices' relative brightness
    assert float(last.max()) <= 1.5
    alone = chain({"image": str(tmp_path / "q_1.tif")})["image"]
    assert torch.allclose(alone, torch.ones_like(alone))  # its own case: 7 / 7
    t = CaseChannelScaled("image")
    assert t.scale_for(files[1]) is t.scale_for(files[0])  # computed once per case


def test_flair_alone_after_case_scaling(slice_files):
    image, mask = slice_files
    chain = mri_slice_preprocessing("image", "label", case_percentile=99.0, select_channels=[1])
    out = Compose(chain)({"image": image, "label": mask})
    assert out["image"].shape == (1, 64, 64) and out["label"].shape == (1, 64, 64)
    full = Compose(mri_slice_preprocessing("image", case_percentile=99.0))({"image": image})
    assert torch.equal(out["image"][0], full["image"][1])  # the FLAIR channel, scaled by its own percentile


def test_select_channels_checks_its_arguments_and_inputs():
    img = torch.stack([torch.full((4, 4), float(v)) for v in (1, 2, 3)])
    assert torch.equal(SelectChannelsd("image", [2, 0])({"image": img})["image"][:, 0, 0], torch.tensor([3.0, 1.0]))
    with pytest.raises(ValueError, match="channels"):
        SelectChannelsd("image", [])
    with pytest.raises(Exception) as info:
        SelectChannelsd("image", [3])({"image": img, "image_path": "x_1.tif"})
    assert error_message(info.value, "x_1.tif") == "x_1.tif: has 3 channel(s), channels [3] asked for"


def test_neighbour_slices_stack_the_volume_context(tmp_path):
    from medkit.transforms.mri import NeighbourSlicesd, neighbour_paths

    for n in (1, 2, 3, 5):  # slice 4 is missing: 3 and 5 stand in for it
        image = np.zeros((16, 16, 3), np.uint8)
        image[4:12, 4:12] = 10 * n
        tifffile.imwrite(tmp_path / f"c_{n}.tif", image)
    (tmp_path / "c_5.tif").write_bytes(b"broken")  # unreadable neighbour: the slice itself stands in
    path = lambda n: str(tmp_path / f"c_{n}.tif")  # noqa: E731
    assert neighbour_paths(path(1), (-1, 0, 1)) == [path(1), path(1), path(2)]  # first slice: itself below
    assert neighbour_paths(path(2), (-2, -1, 0, 1, 2)) == [path(1), path(1), path(2), path(3), path(3)]
    assert neighbour_paths(path(3), (1, 2)) == [path(3), path(5)]
    assert neighbour_paths(str(tmp_path / "notes.tif"), (-1, 0)) == [str(tmp_path / "notes.tif")] * 2
    chain = Compose(mri_slice_preprocessing("image", select_channels=[1], neighbours=1))
    out = chain({"image": path(2)})["image"]
    assert out.shape == (3, 16, 16)
    assert [round(float(out[c].max()) * 255) for c in range(3)] == [10, 20, 30]  # before, itself, after
    single = Compose(mri_slice_preprocessing("image", select_channels=[1]))({"image": path(2)})["image"]
    assert torch.equal(out[1:2], single)
    edge = chain({"image": path(3)})["image"]  # 4 missing, so 5 (broken) -> itself
    assert [round(float(edge[c].max()) * 255) for c in range(3)] == [20, 30, 30]
    with pytest.raises(ValueError, match="include 0"):
        NeighbourSlicesd("image", chain, offsets=(-1, 1))
    with pytest.raises(ValueError, match="neighbours"):
        mri_slice_preprocessing("image", neighbours=-1)
    with pytest.raises(Exception) as info:  # the slice itself unreadable: reported by its name
        chain({"image": path(5)})
    assert error_message(info.value, path(5)).startswith(path(5) + ": cannot read TIFF")


def test_neighbour_slices_scale_with_their_case(tmp_path):
    rng = np.random.default_rng(2)
    for n, gain in ((1, 1), (2, 3)):
        image = np.zeros((16, 16, 3), np.uint8)
        image[2:14, 2:14] = rng.integers(10, 40, (12, 12, 3)) * gain
        tifffile.imwrite(tmp_path / f"p_{n}.tif", image)
    chain = Compose(mri_slice_preprocessing("image", case_percentile=99.0, select_channels=[1], neighbours=1))
    alone = Compose(mri_slice_preprocessing("image", case_percentile=99.0, select_channels=[1]))
    out = chain({"image": str(tmp_path / "p_1.tif")})["image"]
    assert torch.equal(out[2], alone({"image": str(tmp_path / "p_2.tif")})["image"][0])  # same case scale


def test_an_unreadable_neighbour_is_replaced_by_the_nearest_readable_slice_and_named(tmp_path):
    for n in range(1, 7):
        image = np.zeros((16, 16, 3), np.uint8)
        image[4:12, 4:12] = 10 * n
        tifffile.imwrite(tmp_path / f"c_{n}.tif", image)
    path = lambda n: str(tmp_path / f"c_{n}.tif")  # noqa: E731
    (tmp_path / "c_4.tif").write_bytes(b"")  # zero bytes
    tifffile.imwrite(tmp_path / "c_2.tif", np.full((8, 8, 3), 20, np.uint8))  # readable, but not the slices' size
    chain = Compose(mri_slice_preprocessing("image", select_channels=[1], neighbours=2))
    out = chain({"image": path(3)})
    # offsets -2..2 = slices 1, 2 (wrong size -> 3), 3, 4 (empty -> 3), 5: never zeros, never the bad files
    assert [round(float(out["image"][c].max()) * 255) for c in range(5)] == [10, 30, 30, 30, 50]
    assert out["neighbour_missing"] == f"{path(2)}; {path(4)}"
    clean = chain({"image": path(6)})  # window 4..6 -> 4 is empty, 5 stands in at -2 as well
    assert [round(float(clean["image"][c].max()) * 255) for c in range(5)] == [50, 50, 60, 60, 60]
    assert clean["neighbour_missing"] == path(4)
    far = Compose(mri_slice_preprocessing("image", select_channels=[1], neighbours=1))({"image": path(1)})
    assert far["neighbour_missing"] == path(2)  # the wrong size
    (tmp_path / "c_2.tif").unlink()  # a slice that is not there is an end of the volume, not a missing neighbour
    alone = Compose(mri_slice_preprocessing("image", select_channels=[1], neighbours=1))({"image": path(1)})
    assert alone["neighbour_missing"] == ""


def test_case_scaling_names_the_slices_it_could_not_read(tmp_path):
    rng = np.random.default_rng(4)
    for n in (1, 2, 3):
        image = np.zeros((16, 16, 3), np.uint8)
        image[2:14, 2:14] = rng.integers(10, 40, (12, 12, 3))
        tifffile.imwrite(tmp_path / f"p_{n}.tif", image)
    chain = Compose(mri_slice_preprocessing("image", case_percentile=99.0, select_channels=[1], neighbours=1))
    assert chain({"image": str(tmp_path / "p_1.tif")})["case_missing"] == ""
    (tmp_path / "p_3.tif").write_text("not a TIFF")
    fresh = Compose(mri_slice_preprocessing("image", case_percentile=99.0, select_channels=[1], neighbours=1))
    out = fresh({"image": str(tmp_path / "p_1.tif")})
    assert out["case_missing"] == str(tmp_path / "p_3.tif") and out["neighbour_missing"] == ""
    assert fresh({"image": str(tmp_path / "p_2.tif")})["neighbour_missing"] == str(tmp_path / "p_3.tif")
