"""CT preprocessing for abdominal volumes: Hounsfield windows as channels, fixed spacing and size."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import (
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    RandAffined,
    RandCropByLabelClassesd,
    RandGaussianNoised,
    RandScaleIntensityd,
    ResizeWithPadOrCropd,
    Spacingd,
    Transform,
)

from medkit.transforms.check_inputd import CheckInputd
from medkit.transforms.keep_pathd import KeepPathd
from medkit.transforms.load_xrayd import LoadWithReaderd

__all__ = [
    "CTWindowsd",
    "FillMissingLabeld",
    "GroupSoftmaxd",
    "ABDOMINAL_WINDOWS",
    "ct_preprocessing",
    "ct_augmentation",
    "rsna_postprocessing",
]

# (level, width) in HU: soft tissue, liver/spleen parenchyma (lacerations), contrast/blood (extravasation)
ABDOMINAL_WINDOWS: tuple[tuple[float, float], ...] = ((40.0, 400.0), (60.0, 150.0), (150.0, 500.0))


class CTWindowsd(MapTransform):
    """Turn a one-channel HU volume into one channel per window, each clipped to its range and scaled to [0, 1].

    Args:
        keys: keys of channel-first HU images with one channel.
        windows: ``(level, width)`` pairs in Hounsfield units.
    """

    def __init__(self, keys: KeysCollection, windows: Sequence[Sequence[float]] = ABDOMINAL_WINDOWS) -> None:
        super().__init__(keys)
        self.windows = [(float(level), float(width)) for level, width in windows]
        if not self.windows or any(width <= 0 for _, width in self.windows):
            raise ValueError(f"windows must be (level, width) pairs with width > 0, got {windows}")
        self._low = torch.tensor([level - width / 2 for level, width in self.windows], dtype=torch.float32)
        self._width = torch.tensor([width for _, width in self.windows], dtype=torch.float32)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.shape[0] != 1:
                raise ValueError(f"{key}: expected one HU channel, got {img.shape[0]}")
            low, width = self._low, self._width
            shape = (-1,) + (1,) * (img.ndim - 1)
            out = ((img.float() - low.reshape(shape).to(img.device)) / width.reshape(shape).to(img.device)).clamp(0, 1)
            d[key] = out  # a MetaTensor keeps its affine through the arithmetic
        return d


class FillMissingLabeld(MapTransform):
    """Give items without a label map (``key`` absent) one of ``value`` (-1: unlabelled) shaped like ``like``.

    Lets cases with and without segmentations share a batch: the loss ignores the -1 voxels.

    Args:
        keys: the label map key(s).
        like: key of the preprocessed image whose spatial shape the filler takes.
        value: the filler.
        dtype: dtype of every label map (int8 holds -1 to 127 at a byte a voxel in the cache).
    """

    def __init__(self, keys: KeysCollection, like: str = "image", value: int = -1, dtype=torch.int8) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.like, self.value, self.dtype = like, int(value), dtype

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        shape = tuple(torch.as_tensor(d[self.like]).shape[1:])
        for key in self.keys:
            if key in d and not isinstance(d[key], str):
                d[key] = torch.as_tensor(d[key]).round().to(self.dtype)
            else:
                d[key] = torch.full((1, *shape), self.value, dtype=self.dtype)
        return d


def ct_preprocessing(
    keys: str | Sequence[str] = "image",
    pixdim: Sequence[float] = (4.0, 4.0, 5.0),
    spatial_size: Sequence[int] = (96, 96, 64),
    windows: Sequence[Sequence[float]] = ABDOMINAL_WINDOWS,
    label_key: str | None = "label",
    seg_key: str | None = None,
    accepts: Mapping[str, Any] | None = None,
) -> list[Transform]:
    """Load a CT (DICOM series folder or NIfTI), check it, orient RAS, resample to ``pixdim`` mm, window, pad/crop.

    The defaults cover 384 x 384 x 320 mm around the volume's centre: the abdomen of a trauma CT. Values
    outside the volume are 0 in every window (below each window's floor, like air).

    Args:
        keys: keys of the inputs (folders or NIfTI paths); ``<key>_path`` keeps each path.
        pixdim: output voxel size in mm (x, y, z).
        spatial_size: output grid (x, y, z).
        windows: ``(level, width)`` HU windows, one output channel each.
        label_key: key of the per-target labels, made a long tensor when present (inference items have none).
        seg_key: key of a voxel label map (NIfTI path, e.g. ``segmentations/<series>.nii``) resampled with the
            image (nearest neighbour) onto the same grid; items without one get -1 everywhere
            (``FillMissingLabeld``). ``None``: no label maps.
        accepts: what the bundle accepts (its ``medkit.accepts``): a volume outside it fails by name
            (``CheckInputd``, right after loading); ``None``: no check. Only ``CTReader`` reads the inputs, so a
            file it refuses fails with its message instead of being read by another MONAI reader.
    """
    from medkit.io.ct import CTReader

    keys = [keys] if isinstance(keys, str) else list(keys)
    segs = [seg_key] if seg_key else []
    both = {"keys": keys + segs, "allow_missing_keys": True}
    return [
        LoadWithReaderd(keys, CTReader()),  # channel-first
        *([CheckInputd(keys, accepts)] if accepts else []),
        *([LoadImaged(segs, image_only=True, allow_missing_keys=True)] if segs else []),
        *([EnsureChannelFirstd(segs, allow_missing_keys=True, channel_dim="no_channel")] if segs else []),
        Orientationd(**both, axcodes="RAS"),
        Spacingd(
            **both,
            pixdim=[float(p) for p in pixdim],
            mode=["bilinear"] * len(keys) + ["nearest"] * len(segs),
            padding_mode=["border"] * len(keys) + ["zeros"] * len(segs),
        ),
        KeepPathd(keys, from_meta=True),  # after Spacingd, which would take <key>_path for a meta dictionary
        CTWindowsd(keys, windows),
        ResizeWithPadOrCropd(**both, spatial_size=[int(s) for s in spatial_size], mode="constant"),
        EnsureTyped(keys, dtype=torch.float32, track_meta=False),
        *([FillMissingLabeld(segs, like=keys[0]), EnsureTyped(segs, track_meta=False)] if segs else []),
        *([EnsureTyped(label_key, dtype=torch.long, track_meta=False, allow_missing_keys=True)] if label_key else []),
    ]


def ct_augmentation(
    keys: str | Sequence[str] = "image",
    prob: float = 0.5,
    seg_key: str | None = None,
    patch_size: Sequence[int] | None = None,
    num_samples: int = 1,
    label_ratios: Sequence[float] | None = None,
) -> list[Transform]:
    """Training augmentation that keeps anatomy plausible: small rotations, scaling and shifts, noise, gain.

    No flips: the liver is on the right and the spleen on the left, and the network may use that. A ``seg_key``
    label map moves with the image (nearest neighbour).

    Args:
        keys: image keys.
        prob: probability of the affine (noise and gain: half of it).
        seg_key: key of a voxel label map that moves with the image.
        patch_size: first cut ``num_samples`` patches of this size from each volume, centred on a voxel of a
            label drawn with odds ``label_ratios`` (one per label, background first; ``None``: equal), as
            MONAI's ``RandCropByLabelClassesd`` does; needs ``seg_key``. Labels absent from a volume are skipped.
        num_samples: patches per volume.
        label_ratios: odds of each label as patch centre.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    segs = [seg_key] if seg_key else []
    patches: list[Transform] = []
    if patch_size is not None:
        if not seg_key:
            raise ValueError("patch_size: patches are centred on labels, so seg_key is needed")
        if label_ratios is None:
            raise ValueError("patch_size: label_ratios (one per label, background first) is needed")
        patches.append(
            RandCropByLabelClassesd(
                keys + segs,
                label_key=seg_key,
                spatial_size=[int(p) for p in patch_size],
                ratios=[float(r) for r in label_ratios],
                num_classes=len(label_ratios),
                num_samples=int(num_samples),
                allow_smaller=True,
                warn=False,
            )
        )
    return [
        *patches,
        RandAffined(
            keys + segs,
            mode=["bilinear"] * len(keys) + ["nearest"] * len(segs),
            allow_missing_keys=True,
            prob=prob,
            rotate_range=(0.0, 0.0, 0.2),
            scale_range=(0.1, 0.1, 0.1),
            translate_range=(6, 6, 4),
            padding_mode="zeros",
        ),
        RandGaussianNoised(keys, prob=prob / 2, std=0.02),
        RandScaleIntensityd(keys, factors=0.1, prob=prob / 2),
        EnsureTyped(keys, dtype=torch.float32, track_meta=False),  # plain tensors: meta of a batch cannot be sliced
        *([EnsureTyped(segs, dtype=torch.int8, track_meta=False)] if segs else []),
    ]


class GroupSoftmaxd(MapTransform):
    """Softmax over consecutive groups of channels of a 1D output: one distribution per target of a multi-head net.

    Args:
        keys: keys of ``(sum(sizes),)`` logits (decollated network outputs).
        sizes: classes of each target in order (RSNA: ``[2, 2, 3, 3, 3]``).
    """

    def __init__(self, keys: KeysCollection, sizes: Sequence[int]) -> None:
        super().__init__(keys)
        self.sizes = [int(s) for s in sizes]

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            logits = torch.as_tensor(d[key]).float()
            if logits.shape[-1] != sum(self.sizes):
                raise ValueError(f"{key}: expected {sum(self.sizes)} outputs, got {tuple(logits.shape)}")
            d[key] = torch.cat([torch.softmax(p, dim=-1) for p in torch.split(logits, self.sizes, dim=-1)], dim=-1)
        return d


def rsna_postprocessing(key: str = "pred") -> list[Transform]:
    """Per-target softmax of the RSNA multi-head logits, in ``medkit.metrics.rsna.SUBMISSION_COLUMNS`` order."""
    from medkit.metrics.rsna import TARGETS

    return [GroupSoftmaxd(key, [len(classes) for _, classes in TARGETS])]
