"""Random augmentation of a whole collated batch on its device, each sample with its own draw.

MONAI's random dictionary transforms work on one sample at a time: on a GPU each is a handful of small kernels and
synchronisations from one Python thread, and on the CPU they run beside the network on the same cores. The
classes here do the same augmentations on a ``(N, C, *spatial)`` batch at once (one ``affine_grid`` and one
``grid_sample`` for the batch's affines, one broadcast operation for an intensity change), drawing every sample's
parameters with PyTorch's generator on the batch's device, so a run's augmentation is repeated by
``monai.utils.set_determinism`` and resumed with PyTorch's random state (``medkit.handlers.LastCheckpoint``).

``split_batch_augmentation`` turns the tail of a bundle's augmentation list (MONAI transforms, as its metadata
builds them) into a ``BatchAugmentation`` with the same keys, probabilities and ranges, and leaves what must see
one sample at a time (patch sampling, channel swaps) in the per-sample list. The bundle's augmentation is defined
once, in its metadata; the trainer applies the batch part in ``medkit.workflows.DeviceBatch``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.transforms import (
    EnsureTyped,
    RandAdjustContrastd,
    RandAffined,
    RandCoarseDropoutd,
    RandFlipd,
    RandGaussianNoised,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

__all__ = [
    "BatchAugmentation",
    "BatchFlip",
    "BatchRotate90",
    "BatchAffine",
    "affine_matrices",
    "BatchAdjustContrast",
    "BatchScaleIntensity",
    "BatchShiftIntensity",
    "BatchGaussianNoise",
    "BatchCoarseDropout",
    "split_batch_augmentation",
]

Batch = dict


def _draw(n: int, prob: float, device: torch.device) -> torch.Tensor:
    """Which of ``n`` samples a transform of probability ``prob`` applies to (boolean, on ``device``)."""
    return torch.rand(n, device=device) < prob


def _uniform(shape: Sequence[int], low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.rand(*shape, device=device) * (high - low) + low


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(N,)`` values shaped to broadcast over ``(N, C, *spatial)``."""
    return values.reshape(-1, *([1] * (ndim - 1)))


def _keys_in(batch: Mapping, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if isinstance(batch.get(k), torch.Tensor)]


def _first(batch: Mapping, keys: Sequence[str]) -> torch.Tensor | None:
    present = _keys_in(batch, keys)
    return batch[present[0]] if present else None


class _BatchTransform:
    def __init__(self, keys: str | Sequence[str], prob: float) -> None:
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"{type(self).__name__}: prob {prob} is not in [0, 1]")
        self.prob = float(prob)

    def __call__(self, batch: Batch) -> Batch:
        ref = _first(batch, self.keys)  # the first of the keys in the batch: its size, device and sample count
        return batch if ref is None else self._transform(batch, ref)

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class BatchFlip(_BatchTransform):
    """Flip each sample along ``spatial_axis`` (0 = first spatial dimension) with probability ``prob``."""

    def __init__(self, keys: str | Sequence[str], prob: float, spatial_axis: int | Sequence[int]) -> None:
        super().__init__(keys, prob)
        axes = [spatial_axis] if isinstance(spatial_axis, int) else list(spatial_axis)
        self.spatial_axis = [int(a) for a in axes]

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        chosen = _per_sample(_draw(ref.shape[0], self.prob, ref.device), ref.ndim)
        dims = [2 + a for a in self.spatial_axis]
        for key in _keys_in(batch, self.keys):
            batch[key] = torch.where(chosen, batch[key].flip(dims), batch[key])
        return batch


class BatchRotate90(_BatchTransform):
    """Turn each sample by k quarter turns (k uniform in 1..``max_k``) in the plane of ``spatial_axes`` with
    probability ``prob``; the plane must be square."""

    def __init__(
        self, keys: str | Sequence[str], prob: float, max_k: int = 3, spatial_axes: Sequence[int] = (0, 1)
    ) -> None:
        super().__init__(keys, prob)
        self.max_k = int(max_k)
        self.spatial_axes = tuple(int(a) for a in spatial_axes)

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        n, device = ref.shape[0], ref.device
        dims = tuple(2 + a for a in self.spatial_axes)
        if ref.shape[dims[0]] != ref.shape[dims[1]]:
            raise ValueError(f"BatchRotate90: a turn needs a square plane, the batch is {tuple(ref.shape[2:])}")
        chosen = _draw(n, self.prob, device)
        turns = torch.where(chosen, torch.randint(1, self.max_k + 1, (n,), device=device), 0)
        for key in _keys_in(batch, self.keys):
            out = batch[key].clone()
            for k in range(1, self.max_k + 1):
                pick = (turns == k).nonzero().flatten()
                if pick.numel():
                    out[pick] = torch.rot90(batch[key][pick], k, dims)
            batch[key] = out
        return batch


def _rotation(angles: torch.Tensor, dims: int) -> torch.Tensor:
    """``(N, dims, dims)`` rotations as MONAI's ``create_rotate`` builds them (2D: one angle; 3D: about the first,
    second and third axes in turn)."""
    n = angles.shape[0]
    eye = torch.eye(dims, device=angles.device).repeat(n, 1, 1)
    if dims == 2:
        c, s = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
        out = eye.clone()
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
        return out
    out = eye
    for axis in range(angles.shape[1]):
        a, b = [d for d in range(3) if d != axis]
        c, s = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
        r = eye.clone()
        sign = -1.0 if axis == 1 else 1.0  # MONAI's rotation about the second axis turns the other way
        r[:, a, a], r[:, a, b], r[:, b, a], r[:, b, b] = c, -sign * s, sign * s, c
        out = out @ r
    return out


def affine_matrices(
    angles: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor, size: Sequence[int]
) -> torch.Tensor:
    """``(N, d, d+1)`` matrices for ``F.affine_grid`` (output to input coordinates, normalised, last spatial
    dimension first) of MONAI's affine ``rotate @ translate @ scale`` about the centre of an image of ``size``:
    ``angles`` ``(N, 1)`` in 2D or ``(N, 3)`` in 3D (radians), ``scales`` and ``shifts`` (pixels) ``(N, d)``."""
    d = len(size)
    rotation = _rotation(angles, d)
    linear = rotation @ torch.diag_embed(scales)
    shift = rotation @ shifts.unsqueeze(-1)
    half = torch.tensor([s / 2.0 for s in size], device=angles.device, dtype=linear.dtype)
    linear = linear * half.reshape(1, 1, d) / half.reshape(1, d, 1)  # pixel units to normalised ones
    shift = shift / half.reshape(1, d, 1)
    theta = torch.cat([linear, shift], dim=2)
    flip = list(range(d))[::-1]  # affine_grid orders coordinates last spatial dimension first
    return theta[:, flip][:, :, flip + [d]]


class BatchAffine(_BatchTransform):
    """Rotate, scale and shift each sample about its centre with probability ``prob``, as MONAI's ``RandAffined``
    draws them: each entry of a range is one spatial dimension's ``uniform(-r, r)`` (rotation in radians; scale
    ``1 + uniform(-r, r)``; shift in pixels); dimensions without an entry are not changed. ``mode`` per key
    (``"bilinear"`` or ``"nearest"``), zero padding. Label maps of integer type are sampled in float and
    returned in their type."""

    def __init__(
        self,
        keys: str | Sequence[str],
        prob: float,
        rotate_range: Sequence[float] = (),
        scale_range: Sequence[float] = (),
        translate_range: Sequence[float] = (),
        mode: str | Sequence[str] = "bilinear",
    ) -> None:
        super().__init__(keys, prob)
        self.rotate_range = [float(r) for r in rotate_range if r is not None]
        self.scale_range = [float(r) for r in scale_range if r is not None]
        self.translate_range = [float(r) for r in translate_range if r is not None]
        modes = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)
        if len(modes) != len(self.keys) or any(m not in ("bilinear", "nearest") for m in modes):
            raise ValueError(f"BatchAffine: mode {mode!r}: one of 'bilinear', 'nearest' per key of {self.keys}")
        self.mode = modes

    def _matrices(self, n: int, size: Sequence[int], device: torch.device) -> torch.Tensor:
        d = len(size)

        def draw(ranges: list[float], count: int, fill: float) -> torch.Tensor:
            out = torch.full((n, count), fill, device=device)
            for i, r in enumerate(ranges[:count]):
                out[:, i] = _uniform((n,), -r, r, device) + fill
            return out

        angles = draw(self.rotate_range, 1 if d == 2 else 3, 0.0)
        return affine_matrices(angles, draw(self.scale_range, d, 1.0), draw(self.translate_range, d, 0.0), size)

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        n, device, size = ref.shape[0], ref.device, tuple(ref.shape[2:])
        chosen = _draw(n, self.prob, device)
        pick = chosen.nonzero().flatten()
        theta = self._matrices(n, size, device)[pick]
        if not pick.numel():
            return batch
        for key, mode in zip(self.keys, self.mode):
            if not isinstance(batch.get(key), torch.Tensor):
                continue
            x = batch[key]
            part = x[pick]
            work = part if part.is_floating_point() else part.float()
            grid = F.affine_grid(theta.to(work.dtype), list(work.shape), align_corners=False)
            moved = F.grid_sample(work, grid, mode=mode, padding_mode="zeros", align_corners=False)
            out = x.clone()
            out[pick] = moved if part.is_floating_point() else moved.round().to(part.dtype)
            batch[key] = out
        return batch


class BatchAdjustContrast(_BatchTransform):
    """Gamma contrast as MONAI's ``AdjustContrast``, gamma ``uniform(*gamma)`` per chosen sample: the sample is
    scaled to [0, 1] by its own minimum and range, raised to gamma and scaled back."""

    def __init__(self, keys: str | Sequence[str], prob: float, gamma: Sequence[float] = (0.5, 4.5)) -> None:
        super().__init__(keys, prob)
        self.gamma = (float(gamma[0]), float(gamma[1]))

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        n, device = ref.shape[0], ref.device
        chosen = _draw(n, self.prob, device)
        gamma = torch.where(chosen, _uniform((n,), *self.gamma, device), 1.0)
        for key in _keys_in(batch, self.keys):
            x = batch[key]
            flat = x.reshape(n, -1)
            low = _per_sample(flat.amin(dim=1), x.ndim)
            span = _per_sample(flat.amax(dim=1), x.ndim) - low
            adjusted = ((x - low) / (span + 1e-7)).clamp_min(0).pow(_per_sample(gamma, x.ndim)) * span + low
            batch[key] = torch.where(_per_sample(chosen, x.ndim), adjusted, x)
        return batch


def _symmetric(value: float | Sequence[float]) -> tuple[float, float]:
    """``(-v, v)`` for a number ``v``; a ``(low, high)`` pair as it is."""
    low, high = (-float(value), float(value)) if isinstance(value, (int, float)) else value
    return float(low), float(high)


class _PerSampleIntensity(_BatchTransform):
    """One value per chosen sample, ``neutral + uniform(*value_range)`` (``neutral`` for the others), combined with
    every voxel of the sample by ``_apply``."""

    neutral = 0.0

    def __init__(self, keys: str | Sequence[str], prob: float, value_range: float | Sequence[float]) -> None:
        super().__init__(keys, prob)
        self.value_range = _symmetric(value_range)

    def _apply(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        n, device = ref.shape[0], ref.device
        drawn = self.neutral + _uniform((n,), *self.value_range, device)
        values = torch.where(_draw(n, self.prob, device), drawn, self.neutral)
        for key in _keys_in(batch, self.keys):
            x = batch[key]
            batch[key] = self._apply(x, _per_sample(values, x.ndim).to(x.dtype))
        return batch


class BatchScaleIntensity(_PerSampleIntensity):
    """Multiply each chosen sample by ``1 + uniform(-factors, factors)``."""

    neutral = 1.0

    def __init__(self, keys: str | Sequence[str], prob: float, factors: float | Sequence[float] = 0.1) -> None:
        super().__init__(keys, prob, factors)
        self.factors = self.value_range

    def _apply(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return x * value


class BatchShiftIntensity(_PerSampleIntensity):
    """Add ``uniform(-offsets, offsets)`` to each chosen sample."""

    def __init__(self, keys: str | Sequence[str], prob: float, offsets: float | Sequence[float] = 0.1) -> None:
        super().__init__(keys, prob, offsets)
        self.offsets = self.value_range

    def _apply(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return x + value


class BatchGaussianNoise(_BatchTransform):
    """Add Gaussian noise of mean ``mean`` and standard deviation ``uniform(0, std)`` (``sample_std``) or ``std``
    to each chosen sample, as MONAI's ``RandGaussianNoise``."""

    def __init__(
        self, keys: str | Sequence[str], prob: float, mean: float = 0.0, std: float = 0.1, sample_std: bool = True
    ) -> None:
        super().__init__(keys, prob)
        self.mean, self.std, self.sample_std = float(mean), float(std), bool(sample_std)

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        n, device = ref.shape[0], ref.device
        chosen = _draw(n, self.prob, device)
        std = _uniform((n,), 0.0, self.std, device) if self.sample_std else torch.full((n,), self.std, device=device)
        std = torch.where(chosen, std, 0.0)
        mean = torch.where(chosen, self.mean, 0.0)
        for key in _keys_in(batch, self.keys):
            x = batch[key]
            noise = torch.randn_like(x) * _per_sample(std, x.ndim).to(x.dtype) + _per_sample(mean, x.ndim).to(x.dtype)
            batch[key] = x + noise
        return batch


class BatchCoarseDropout(_BatchTransform):
    """Fill ``holes`` rectangles of each chosen sample with ``fill_value``, as MONAI's ``RandCoarseDropout``: each
    side uniform in ``spatial_size``..``max_spatial_size`` pixels (``max_spatial_size`` None: ``spatial_size``),
    the position uniform within the image."""

    def __init__(
        self,
        keys: str | Sequence[str],
        prob: float,
        holes: int = 1,
        spatial_size: int | Sequence[int] = 8,
        max_spatial_size: int | Sequence[int] | None = None,
        fill_value: float = 0.0,
    ) -> None:
        super().__init__(keys, prob)
        self.holes = int(holes)
        self.spatial_size = spatial_size
        self.max_spatial_size = spatial_size if max_spatial_size is None else max_spatial_size
        self.fill_value = float(fill_value)

    @staticmethod
    def _per_dim(value: int | Sequence[int], size: Sequence[int]) -> list[int]:
        values = [value] * len(size) if isinstance(value, (int, float)) else list(value)
        return [min(int(v), s) if int(v) > 0 else s for v, s in zip(values, size)]

    def _transform(self, batch: Batch, ref: torch.Tensor) -> Batch:
        n, device, size = ref.shape[0], ref.device, tuple(ref.shape[2:])
        low, high = self._per_dim(self.spatial_size, size), self._per_dim(self.max_spatial_size, size)
        mask = torch.zeros(n, *size, dtype=torch.bool, device=device)
        for _ in range(self.holes):
            inside = torch.ones_like(mask)
            for d, s in enumerate(size):
                side = torch.randint(low[d], max(low[d], high[d]) + 1, (n,), device=device)
                start = (torch.rand(n, device=device) * (s - side + 1)).floor().long()
                coord = torch.arange(s, device=device).reshape(1, *([1] * d), s, *([1] * (len(size) - d - 1)))
                lo = start.reshape(n, *([1] * len(size)))
                hi = (start + side).reshape(n, *([1] * len(size)))
                inside &= (coord >= lo) & (coord < hi)
            mask |= inside
        mask &= _per_sample(_draw(n, self.prob, device), mask.ndim)
        for key in _keys_in(batch, self.keys):
            x = batch[key]
            batch[key] = x.masked_fill(mask.unsqueeze(1), self.fill_value)
        return batch


class BatchAugmentation:
    """Batch transforms applied in order to a collated batch (a dictionary of ``(N, C, *spatial)`` tensors).

    Keys a transform names but the batch lacks (or holds no tensor under) are left alone. Returns a new
    dictionary; the batch given is not changed.
    """

    def __init__(self, transforms: Sequence[Callable[[Batch], Batch]]) -> None:
        self.transforms = list(transforms)

    @property
    def keys(self) -> list[str]:
        """Every key some transform changes."""
        out: list[str] = []
        for t in self.transforms:
            out.extend(k for k in t.keys if k not in out)
        return out

    def __call__(self, batch: Mapping[str, Any]) -> Batch:
        out = dict(batch)
        for t in self.transforms:
            out = t(out)
        return out

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"BatchAugmentation({self.transforms!r})"


def _ranges(values: Any) -> list[float]:
    out = []
    for v in values or ():
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            if len(v) != 2 or float(v[0]) != -float(v[1]):
                raise ValueError(f"asymmetric range {v!r}")
            v = v[1]
        out.append(float(v))
    return out


def _batch_version(t: Any) -> Any | None:
    """The batch transform doing what the MONAI dictionary transform ``t`` does, or None where there is none."""
    keys = list(t.keys) if hasattr(t, "keys") else []
    if getattr(t, "allow_missing_keys", False) is None:
        return None
    if type(t) is RandFlipd:
        axis = t.flipper.spatial_axis
        return None if axis is None else BatchFlip(keys, t.prob, axis)
    if type(t) is RandRotate90d:
        return BatchRotate90(keys, t.prob, t.max_k, t.spatial_axes)
    if type(t) is RandAffined:
        grid = t.rand_affine.rand_affine_grid
        if any(s is not None for s in grid.shear_range) or t.rand_affine.spatial_size is not None:
            return None
        if set(t.padding_mode) != {"zeros"} or any(m not in ("bilinear", "nearest") for m in t.mode):
            return None
        try:
            ranges = [_ranges(grid.rotate_range), _ranges(grid.scale_range), _ranges(grid.translate_range)]
        except ValueError:
            return None
        return BatchAffine(keys, t.prob, *ranges, mode=list(t.mode))
    if type(t) is RandAdjustContrastd:
        a = t.adjuster
        if t.invert_image or a.retain_stats or len(a.gamma) != 2:
            return None
        return BatchAdjustContrast(keys, t.prob, a.gamma)
    if type(t) is RandScaleIntensityd and not t.scaler.channel_wise:
        return BatchScaleIntensity(keys, t.prob, t.scaler.factors)
    if type(t) is RandShiftIntensityd and not t.shifter.channel_wise:
        return BatchShiftIntensity(keys, t.prob, t.shifter.offsets)
    if type(t) is RandCoarseDropoutd:
        d = t.dropper
        if d.max_holes is not None or not d.dropout_holes or not isinstance(d.fill_value, (int, float)):
            return None
        return BatchCoarseDropout(keys, t.prob, d.holes, d.spatial_size, d.max_spatial_size, d.fill_value)
    if type(t) is RandGaussianNoised:
        g = t.rand_gaussian_noise
        return BatchGaussianNoise(keys, t.prob, g.mean, g.std, g.sample_std)
    return None


def split_batch_augmentation(transforms: Sequence[Any], enabled: bool = True) -> tuple[list[Any], Any]:
    """``(per_sample, batch)``: the longest tail of ``transforms`` that batch transforms can do, as one
    ``BatchAugmentation`` (None when there is none or ``enabled`` is false), and the rest, kept per sample.

    Type conversions in that tail (``EnsureTyped``) stay in the per-sample list, at its end: they commute with
    the random changes. A transform with no batch version ends the tail: it and everything before it run per
    sample, in their order.
    """
    transforms = list(transforms)
    if not enabled:
        return transforms, None
    batched: list[Any] = []
    kept_types: list[Any] = []
    cut = len(transforms)
    for t in reversed(transforms):
        if type(t) is EnsureTyped:
            kept_types.insert(0, t)
            cut -= 1
            continue
        b = _batch_version(t)
        if b is None:
            break
        batched.insert(0, b)
        cut -= 1
    if not batched:
        return transforms, None
    return transforms[:cut] + kept_types, BatchAugmentation(batched)
