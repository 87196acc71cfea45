"""Preprocessing and augmentation chains for the LGG brain MRI slices, defined once for both brain bundles."""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    AsDiscreted,
    Compose,
    EnsureTyped,
    MapTransform,
    RandAdjustContrastd,
    RandAffined,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandomizableTransform,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Resized,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Transform,
)

from medkit.errors import InputFileError
from medkit.io.tiff import TiffReader, read_tiff
from medkit.transforms.check_inputd import CheckInputd
from medkit.transforms.keep_pathd import KeepPathd
from medkit.transforms.load_xrayd import LoadWithReaderd

__all__ = [
    "RequireChannelsd",
    "SelectChannelsd",
    "RandFlairForChannelsd",
    "CaseChannelScaled",
    "NeighbourSlicesd",
    "neighbour_paths",
    "case_channel_scale",
    "case_scale",
    "NEIGHBOUR_MISSING",
    "CASE_MISSING",
    "mri_slice_preprocessing",
    "mri_slice_augmentation",
    "segmentation_augmentation",
]

#: item key of the neighbour slices an item's 2.5D input needed but could not read (``NeighbourSlicesd``)
NEIGHBOUR_MISSING = "neighbour_missing"
#: item key of the case's slices left out of its per-case intensity scale, unreadable (``CaseChannelScaled``)
CASE_MISSING = "case_missing"


class RandFlairForChannelsd(RandomizableTransform, MapTransform):
    """Replace each of ``targets`` channels by the ``source`` (FLAIR) channel with probability ``prob``.

    The LGG set fills a missing pre- or post-contrast sequence with FLAIR, so some patients' slices are
    grey (all three channels FLAIR); this teaches the networks that case.
    """

    def __init__(self, keys: KeysCollection, source: int = 1, targets: Sequence[int] = (0, 2), prob: float = 0.15):
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.source = int(source)
        self.targets = [int(t) for t in targets]

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        chosen = [t for t in self.targets if self.R.rand() < self.prob]
        if not chosen:
            return d
        for key in self.key_iterator(d):
            img = d[key].clone()
            for t in chosen:
                img[t] = img[self.source]
            d[key] = img
        return d


def _case_files(path: str) -> list[str]:
    """The slices of ``path``'s case: files beside it named ``<case>_<n>.<ext>`` (masks left out), else itself."""
    from medkit.data.lgg import case_of_slice, slice_number

    case = case_of_slice(path)
    if case is None:
        return [path]
    folder, ext = os.path.dirname(os.path.abspath(path)), os.path.splitext(path)[1]
    pattern = os.path.join(glob.escape(folder), glob.escape(case) + "_*" + glob.escape(ext))
    found = [f for f in glob.glob(pattern) if slice_number(f) is not None]
    return sorted(found) or [path]


def case_channel_scale(files: Sequence[str], percentile: float = 99.0) -> np.ndarray:
    """Per channel, the ``percentile`` of the non-zero (brain) pixels over all readable slices in ``files``.

    Unreadable slices are skipped (they fail by name when loaded themselves); channels with no non-zero
    pixel get 1. ``case_scale`` also says which files were skipped.
    """
    return case_scale(files, percentile)[0]


def case_scale(files: Sequence[str], percentile: float = 99.0) -> tuple[np.ndarray, list[str]]:
    """``(scale, unreadable)``: ``case_channel_scale`` of ``files`` and the files it could not read (left out of it)."""
    pixels: list[np.ndarray] = []
    unreadable: list[str] = []
    for f in files:
        try:
            image = read_tiff(f)
        except (InputFileError, OSError, ValueError):
            unreadable.append(f)
            continue
        if image.ndim == 3:
            pixels.append(image.reshape(-1, image.shape[-1]))
    if not pixels:
        return np.ones(1, np.float32), unreadable
    return _channel_percentiles(np.concatenate(pixels), percentile), unreadable


def _channel_percentiles(pixels: np.ndarray, percentile: float) -> np.ndarray:
    """Per column of ``(n, channels)`` pixels, the ``percentile`` of its non-zero values (1 when there are none)."""
    stacked = pixels.astype(np.float32)
    scale = np.ones(stacked.shape[1], np.float32)
    for c in range(stacked.shape[1]):
        brain = stacked[:, c][stacked[:, c] > 0]
        if brain.size:
            scale[c] = max(float(np.percentile(brain, percentile)), 1e-6)
    return scale


class CaseChannelScaled(MapTransform):
    """Divide each channel by its ``percentile`` over the whole case (patient volume), clip to ``[0, clip]``.

    The LGG sequences are windowed differently per patient (one patient's FLAIR is three times darker than
    another's), and scaling per slice inflates noise in slices with little brain. This scales per case:
    the case is found from the file name (``<case>_<n>.tif`` and its siblings ``<case>_*.tif`` in the same
    folder, as in the set's folders and in MONAI Label's flat datastore); a file without a slice number is
    its own case. Scales are computed once per case and kept.

    Reads ``<key>_path`` (``KeepPathd``) for the file name; the image must be channel-first. Sets
    ``"case_missing"``: the case's slices that could not be read, and so are left out of its scale (``"; "``-joined,
    ``""`` when every slice was read): the scale, and so every slice of that case, then differs from the complete
    case's.
    """

    def __init__(self, keys: KeysCollection, percentile: float = 99.0, clip: float = 1.5) -> None:
        super().__init__(keys)
        self.percentile = float(percentile)
        self.clip = float(clip)
        self._scales: dict[tuple[str, ...], tuple[np.ndarray, list[str]]] = {}
        self._lock = threading.Lock()

    def scale_for(self, path: str) -> np.ndarray:
        return self._scale_and_missing(path)[0]

    def _scale_and_missing(self, path: str) -> tuple[np.ndarray, list[str]]:
        files = tuple(_case_files(path))
        with self._lock:
            if files not in self._scales:
                self._scales[files] = case_scale(files, self.percentile)
            return self._scales[files]

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        missing: list[str] = []
        for key in self.key_iterator(d):
            img = d[key]
            scale, unreadable = self._scale_and_missing(str(d.get(f"{key}_path", "")))
            missing += unreadable
            if scale.shape[0] != img.shape[0]:  # no readable case file: scale this image by itself
                pixels = np.asarray(img.detach().cpu().reshape(img.shape[0], -1)).T
                scale = _channel_percentiles(pixels, self.percentile)
            factor = torch.as_tensor(scale, dtype=torch.float32).reshape(-1, *([1] * (img.ndim - 1)))
            d[key] = (img / factor.to(img.device)).clamp(0.0, self.clip)
        d[CASE_MISSING] = "; ".join(missing)
        return d


def neighbour_paths(path: str, offsets: Sequence[int]) -> list[str]:
    """For each offset, the file of slice ``n + offset`` of ``path``'s case (``<case>_<n>.<ext>`` in the same
    folder); where that slice does not exist (the ends of the volume), the nearest existing one towards ``path``.
    A file without a slice number stands for all its neighbours."""
    from medkit.data.lgg import case_of_slice, slice_number

    case, n = case_of_slice(path), slice_number(path)
    if case is None or n is None:
        return [path for _ in offsets]
    folder, ext = os.path.dirname(path), os.path.splitext(path)[1]
    out = []
    for offset in offsets:
        step = -1 if offset > 0 else 1
        found = path
        for o in range(int(offset), 0, step):
            candidate = os.path.join(folder, f"{case}_{n + o}{ext}")
            if os.path.isfile(candidate):
                found = candidate
                break
        out.append(found)
    return out


class NeighbourSlicesd(MapTransform):
    """2.5D input: each slice with its neighbours in the volume, stacked as channels.

    Replaces the path under each key by ``load`` applied to the slices at ``offsets`` (``(-1, 0, 1)``: the slice
    before, the slice, the slice after; ``neighbour_paths``), concatenated along the channel axis in that order.
    Neighbours are found from the file name (``<case>_<n>`` beside it), so this works in the set's folders, on a
    folder given to ``medkit infer`` and in MONAI Label's flat datastore; at the ends of a volume, or for a lone
    file, the nearest existing slice is repeated. A neighbour that exists but cannot be read (or is not the slice's
    size) is treated the same way: replaced by the nearest readable slice towards the slice itself, never by
    zeros; it is reported by name when it is loaded as an item of its own, and the item's ``"neighbour_missing"``
    names it (``"; "``-joined, ``""`` when every neighbour was read). The slice itself failing raises. Other keys
    the slice's own ``load`` sets (``"case_missing"``) are kept.

    Args:
        keys: keys of the image paths (``KeepPathd`` before it keeps them under ``<key>_path``).
        load: the single-slice chain, called on ``{key: path, "<key>_path": path}`` and returning the dict with the
            channel-first image under ``key``.
        offsets: slice offsets, ``0`` being the slice itself (it must be among them).
    """

    def __init__(self, keys: KeysCollection, load: Transform, offsets: Sequence[int] = (-1, 0, 1)) -> None:
        super().__init__(keys)
        self.load = load
        self.offsets = [int(o) for o in offsets]
        if 0 not in self.offsets:
            raise ValueError(f"offsets must include 0 (the slice itself), got {self.offsets}")

    def _one(self, key: Hashable, path: str) -> torch.Tensor:
        return torch.as_tensor(self.load({key: path, f"{key}_path": path})[key])

    def _readable(self, key: Hashable, path: str, shape: torch.Size) -> torch.Tensor | None:
        """``path`` loaded, or ``None`` when it cannot be read or its image is not of ``shape``."""
        try:
            image = self._one(key, path)
        except (InputFileError, OSError, ValueError, RuntimeError):
            return None
        return image if image.shape == shape else None

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        missing: list[str] = []
        for key in self.key_iterator(d):
            path = str(d[key])
            own = self.load({key: path, f"{key}_path": path})
            centre = torch.as_tensor(own[key])
            d.update({k: v for k, v in own.items() if k not in (key, f"{key}_path") and k not in d})
            loaded: dict[str, torch.Tensor | None] = {path: centre}
            stack = []
            for offset in self.offsets:
                image = None
                for candidate in self._towards_slice(path, offset):  # the slice itself comes last, always readable
                    if candidate not in loaded:
                        loaded[candidate] = self._readable(key, candidate, centre.shape)
                        if loaded[candidate] is None:
                            missing.append(candidate)
                    image = loaded[candidate]
                    if image is not None:
                        break
                stack.append(image)
            d[key] = torch.cat(stack, dim=0)
        d[NEIGHBOUR_MISSING] = "; ".join(missing)
        return d

    @staticmethod
    def _towards_slice(path: str, offset: int) -> list[str]:
        """The existing files of slices ``n + offset``, ``n + offset - 1``, ... down to ``path`` itself (``n``)."""
        step = -1 if offset > 0 else 1
        found = [p for o in range(int(offset), 0, step) for p in neighbour_paths(path, [o]) if p != path]
        return [*dict.fromkeys(found), path]


class RequireChannelsd(MapTransform):
    """Fail with ``InputFileError("<path>: ...")`` when a channel-first image does not have ``channels`` channels.

    A mask or a grey-scale slice given where a 3-channel MRI slice is expected is then reported by name
    instead of failing inside the network for the whole batch.
    """

    def __init__(self, keys: KeysCollection, channels: int) -> None:
        super().__init__(keys)
        self.channels = int(channels)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            found = int(d[key].shape[0])
            if found != self.channels:
                path = d.get(f"{key}_path", key)
                raise InputFileError(
                    str(path), f"has {found} channel(s), expected {self.channels} (a mask or grey image?)"
                )
        return d


class SelectChannelsd(MapTransform):
    """Keep the channels ``channels`` (in that order) of channel-first images, e.g. ``[1]`` for FLAIR alone.

    The LGG slices hold pre-contrast, FLAIR and post-contrast; the masks outline the FLAIR abnormality, and
    the other two sequences are missing (filled with FLAIR) or windowed differently from site to site, so a
    FLAIR-only network cannot learn a site's colour balance instead of the tumour.
    """

    def __init__(self, keys: KeysCollection, channels: Sequence[int]) -> None:
        super().__init__(keys)
        self.channels = [int(c) for c in channels]
        if not self.channels:
            raise ValueError("channels: expected at least one channel index, got none")

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if max(self.channels) >= img.shape[0]:
                path = d.get(f"{key}_path", key)
                raise InputFileError(str(path), f"has {img.shape[0]} channel(s), channels {self.channels} asked for")
            d[key] = img[self.channels]
        return d


def _as_list(keys: str | Sequence[str] | None) -> list[str]:
    return [] if not keys else [keys] if isinstance(keys, str) else list(keys)


def mri_slice_preprocessing(
    keys: str | Sequence[str] = "image",
    mask_keys: str | Sequence[str] | None = None,
    spatial_size: Sequence[int] | None = None,
    intensity_range: Sequence[float] = (0.0, 255.0),
    channels: int | None = 3,
    per_channel_percentile: float | None = None,
    case_percentile: float | None = None,
    select_channels: Sequence[int] | None = None,
    neighbours: int = 0,
    accepts: Mapping[str, Any] | None = None,
) -> list[Transform]:
    """Keep each path under ``<key>_path``, load TIFF slices channel-first, check, scale intensities to ``[0, 1]``.

    The LGG slices are 8-bit (pre-contrast, FLAIR, post-contrast), already windowed per volume by the set's
    authors, so a fixed range keeps the relative brightness between slices of one patient.

    Args:
        keys: keys of the image paths.
        mask_keys: keys of mask paths; loaded when present as ``(1, rows, columns)`` 0/1 (values >= 0.5 are foreground).
        spatial_size: resize images (area) and masks (nearest) to ``(rows, columns)``; ``None`` keeps the size.
        intensity_range: input values mapped to 0 and 1 (clipped).
        channels: channels an image must have (``None``: any); others fail with a one-line error naming the file.
        per_channel_percentile: instead of the fixed range, scale each channel of each slice from 0 to this
            percentile (e.g. 99.5), so sequences windowed brighter or darker per patient line up.
        case_percentile: instead, divide each channel by this percentile of its brain pixels over the whole
            case (``CaseChannelScaled``: the patient's slices beside the file), clipped to ``[0, 1.5]``.
        select_channels: after scaling, keep only these channels (``SelectChannelsd``; ``[1]``: FLAIR alone).
        neighbours: 2.5D context: also stack the ``neighbours`` slices before and after as channels
            (``NeighbourSlicesd``, each loaded, scaled and selected as the slice itself), so a network sees
            ``(2 * neighbours + 1) * channels`` channels, the slice's own in the middle.
        accepts: what the bundle accepts (its ``medkit.accepts``): a slice outside it fails by name
            (``CheckInputd``, right after loading); ``None``: no check.
    """
    keys, mask_keys = _as_list(keys), _as_list(mask_keys)
    if case_percentile is not None:
        scaling: Transform = CaseChannelScaled(keys, percentile=case_percentile)
    elif per_channel_percentile is not None:
        scaling = ScaleIntensityRangePercentilesd(
            keys, lower=0.0, upper=float(per_channel_percentile), b_min=0.0, b_max=1.0, clip=True, channel_wise=True
        )
    else:
        scaling = ScaleIntensityRanged(
            keys, a_min=intensity_range[0], a_max=intensity_range[1], b_min=0.0, b_max=1.0, clip=True
        )
    single: list[Transform] = [
        LoadWithReaderd(keys, TiffReader()),
        *([CheckInputd(keys, accepts)] if accepts else []),
        *([RequireChannelsd(keys, channels)] if channels else []),
        scaling,
        *([SelectChannelsd(keys, select_channels)] if select_channels is not None else []),
    ]
    if neighbours < 0:
        raise ValueError(f"neighbours must be 0 or more, got {neighbours}")
    if neighbours:
        offsets = range(-int(neighbours), int(neighbours) + 1)
        single = [NeighbourSlicesd(keys, Compose(single), offsets)]
    chain: list[Transform] = [KeepPathd(keys), *single]
    if mask_keys:  # masks are optional: inference data has none
        chain += [
            LoadWithReaderd(mask_keys, TiffReader(), allow_missing_keys=True),
            AsDiscreted(mask_keys, threshold=0.5, allow_missing_keys=True),
        ]
    if spatial_size is not None:
        size = [int(s) for s in spatial_size]
        chain.append(Resized(keys, spatial_size=size, mode="area"))
        if mask_keys:
            chain.append(Resized(mask_keys, spatial_size=size, mode="nearest", allow_missing_keys=True))
    chain.append(EnsureTyped(keys + mask_keys, dtype="float32", track_meta=False, allow_missing_keys=True))
    return chain


def mri_slice_augmentation(
    keys: str | Sequence[str] = "image", prob: float = 0.5, flair_prob: float = 0.0
) -> list[Transform]:
    """Slice-classifier augmentation: left-right flips, small affine, contrast and intensity jitter.

    Axial brain slices have no fixed left/right in this set, so flips are safe. ``flair_prob`` > 0 also
    replaces the pre-/post-contrast channels by FLAIR at that rate (``RandFlairForChannelsd``).
    """
    keys = _as_list(keys)
    return [
        *([RandFlairForChannelsd(keys, prob=flair_prob)] if flair_prob > 0 else []),
        RandFlipd(keys, prob=prob, spatial_axis=1),
        RandAffined(
            keys, prob=prob, rotate_range=0.26, scale_range=0.1, translate_range=(10, 10), padding_mode="zeros"
        ),
        RandAdjustContrastd(keys, prob=prob / 2, gamma=(0.8, 1.25)),
        RandScaleIntensityd(keys, factors=0.1, prob=prob / 2),
    ]


def segmentation_augmentation(
    image_key: str = "image",
    label_key: str = "label",
    patch_size: Sequence[int] = (128, 128),
    pos: float = 2.0,
    neg: float = 1.0,
    num_samples: int = 1,
    prob: float = 0.5,
    flair_prob: float = 0.0,
) -> list[Transform]:
    """Patch sampling and augmentation for segmentation training.

    Patches of ``patch_size`` are centred on tumour with odds ``pos:neg`` (slices without tumour give
    background patches), then flipped, turned, slightly rotated/scaled and intensity-jittered; with
    ``flair_prob`` > 0 the pre-/post-contrast channels are replaced by FLAIR at that rate.
    """
    both = [image_key, label_key]
    return [
        RandCropByPosNegLabeld(
            both,
            label_key=label_key,
            spatial_size=[int(s) for s in patch_size],
            pos=pos,
            neg=neg,
            num_samples=num_samples,
            allow_smaller=True,
        ),
        RandFlipd(both, prob=prob, spatial_axis=0),
        RandFlipd(both, prob=prob, spatial_axis=1),
        RandRotate90d(both, prob=prob, spatial_axes=(0, 1)),
        RandAffined(
            both, prob=prob / 2, rotate_range=0.26, scale_range=0.1, mode=("bilinear", "nearest"), padding_mode="zeros"
        ),
        *([RandFlairForChannelsd(image_key, prob=flair_prob)] if flair_prob > 0 else []),
        RandAdjustContrastd(image_key, prob=prob / 2, gamma=(0.8, 1.25)),
        RandShiftIntensityd(image_key, offsets=0.05, prob=prob / 2),
        RandScaleIntensityd(image_key, factors=0.1, prob=prob / 2),
    ]
