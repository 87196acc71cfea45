"""Geometry of the synthetic CT phantom: the voxel grid in mm and the shapes organs and lesions are drawn with.

``Grid`` maps mm to voxels (``x`` patient right -> left, ``y`` anterior -> posterior, ``z`` inferior -> superior);
``blob_mask`` (a bent ellipsoid), ``tube_mask`` (voxels near a polyline) and ``bent_path`` (a random polyline) draw
boolean masks on it; ``bounding_box`` and ``distance_outside`` measure masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Grid", "unit", "blob_mask", "tube_mask", "bent_path", "bounding_box", "distance_outside"]


class Grid:
    """Voxel centres in mm: ``x`` patient right -> left, ``y`` anterior -> posterior (both centred on the image
    centre), ``z`` inferior -> superior from the lowest slice."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
        self.shape = shape
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.axes = [
            ((np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0]).astype(np.float32),
            ((np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1]).astype(np.float32),
            (np.arange(shape[2]) * spacing[2]).astype(np.float32),
        ]
        self.origin = np.array([a[0] for a in self.axes], dtype=np.float64)

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> tuple[slice, slice, slice]:
        """Index ranges of the voxels whose centres lie in the mm box ``[lo, hi]`` (possibly empty)."""
        return tuple(
            slice(int(np.searchsorted(a, low, "left")), int(np.searchsorted(a, high, "right")))
            for a, low, high in zip(self.axes, lo, hi)
        )  # type: ignore[return-value]

    def coords(self, box: tuple[slice, ...], centre: Sequence[float] = (0.0, 0.0, 0.0)) -> list[np.ndarray]:
        """Broadcastable ``X, Y, Z`` mm coordinates of a box, relative to ``centre``."""
        ax = [a[s] - np.float32(c) for a, s, c in zip(self.axes, box, centre)]
        return [ax[0][:, None, None], ax[1][None, :, None], ax[2][None, None, :]]

    def index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nearest voxel ``(i, j, k)`` of mm points ``(n, 3)`` and whether each lies inside the volume."""
        ijk = np.rint((np.atleast_2d(points) - self.origin) / self.spacing).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.shape)), axis=1)
        ijk = np.clip(ijk, 0, np.array(self.shape) - 1)
        return ijk[:, 0], ijk[:, 1], ijk[:, 2], inside

    def mm(self, ijk: np.ndarray) -> np.ndarray:
        """mm coordinates of voxel indices ``(n, 3)``."""
        return self.origin + np.asarray(ijk, dtype=np.float64) * self.spacing

    def mark(self, mask: np.ndarray, points: np.ndarray) -> None:
        """Set the voxels nearest to ``points`` (those inside the volume)."""
        i, j, k, inside = self.index(points)
        mask[i[inside], j[inside], k[inside]] = True


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1 (the x axis for a zero vector)."""
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([1.0, 0.0, 0.0])


def blob_mask(
    grid: Grid,
    centre: Sequence[float],
    semi: Sequence[float],
    rng: np.random.Generator,
    rough: float = 0.12,
    angle: float = 0.0,
    keep_centre: bool = False,
) -> np.ndarray:
    """An ellipsoid (semi-axes in mm, turned by ``angle`` in the axial plane) whose surface is bent smoothly.

    The radius is modulated by a few random low-frequency waves of relative amplitude about ``rough``, so
    organs come out organ-shaped rather than as perfect ellipsoids. ``keep_centre`` keeps the centre voxel
    even when the blob is smaller than a voxel.
    """
    centre = np.asarray(centre, dtype=np.float64)
    semi = np.maximum(np.asarray(semi, dtype=np.float64), 1e-3)
    waves = [(unit(rng.normal(size=3)) * rng.uniform(1.2, 2.6), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
    mask = np.zeros(grid.shape, dtype=bool)
    r_xy = max(semi[0], semi[1])
    ext = np.array([r_xy, r_xy, semi[2]]) * (1.0 + 2.0 * rough)
    box = grid.box(centre - ext, centre + ext)
    if all(s.stop > s.start for s in box):
        x, y, z = grid.coords(box, centre)
        c, s = math.cos(angle), math.sin(angle)
        u = (c * x + s * y) / semi[0]
        v = (-s * x + c * y) / semi[1]
        w = z / semi[2]
        q = u * u + v * v + w * w
        if rough > 0:
            f = sum(np.cos(k[0] * u + k[1] * v + k[2] * w + phase) for k, phase in waves)
            q = q - (1.0 + 0.5 * rough * f) ** 2
            mask[box] = q < 0
        else:
            mask[box] = q < 1.0
    if keep_centre:
        grid.mark(mask, centre)
    return mask


def tube_mask(grid: Grid, points: np.ndarray, radius: float) -> np.ndarray:
    """Voxels within ``radius`` mm of a polyline ``(n, 3)``, plus the voxels along it (so it is never empty)."""
    pts = np.asarray(points, dtype=np.float64)
    mask = np.zeros(grid.shape, dtype=bool)
    box = grid.box(pts.min(0) - radius, pts.max(0) + radius)
    if all(s.stop > s.start for s in box):
        x, y, z = grid.coords(box)
        d2 = None
        for p0, p1 in zip(pts[:-1], pts[1:]):
            v = (p1 - p0).astype(np.float32)
            dx, dy, dz = x - np.float32(p0[0]), y - np.float32(p0[1]), z - np.float32(p0[2])
            t = np.clip((dx * v[0] + dy * v[1] + dz * v[2]) / max(float(v @ v), 1e-9), 0.0, 1.0)
            e = (dx - t * v[0]) ** 2 + (dy - t * v[1]) ** 2 + (dz - t * v[2]) ** 2
            d2 = e if d2 is None else np.minimum(d2, e)
        mask[box] = d2 <= radius * radius
    step = 0.5 * float(grid.spacing.min())
    dense = [pts[:1]]
    for p0, p1 in zip(pts[:-1], pts[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(p1 - p0) / step)))
        dense.append(p0 + (p1 - p0) * (np.arange(1, n + 1) / n)[:, None])
    grid.mark(mask, np.concatenate(dense))
    return mask


def bent_path(
    rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length: float, n_seg: int
) -> np.ndarray:
    """A bent polyline of ``n_seg`` segments and total ``length`` mm from ``start``, mostly in the axial plane."""
    d = unit(direction * np.array([1.0, 1.0, 0.5]))
    pts = [np.asarray(start, dtype=np.float64)]
    for _ in range(n_seg):
        d = unit(d + 0.45 * rng.normal(size=3) * np.array([1.0, 1.0, 0.5]))
        pts.append(pts[-1] + d * length / n_seg)
    return np.array(pts)


def bounding_box(mask: np.ndarray, margin: Sequence[int] = (0, 0, 0)) -> tuple[slice, slice, slice] | None:
    """Index box of the set voxels of ``mask`` grown by ``margin`` voxels, ``None`` when it is empty."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(max(0, hit[0] - margin[axis]), min(mask.shape[axis], hit[-1] + 1 + margin[axis])))
    return tuple(box)  # type: ignore[return-value]


def distance_outside(mask: np.ndarray, grid: Grid, reach: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """mm distance to ``mask`` of the voxels in its bounding box grown by ``reach`` mm (0 inside the mask)."""
    from scipy.ndimage import distance_transform_edt

    margin = [int(np.ceil(reach / s)) + 1 for s in grid.spacing]
    box = bounding_box(mask, margin)
    if box is None:
        return None
    return box, distance_transform_edt(~mask[box], sampling=grid.spacing)
