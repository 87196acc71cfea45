"""A synthetic look-alike of the RSNA 2023 Abdominal Trauma Detection data: abdominal CT series as DICOM, and tables.

The real set is ``train_images/<patient_id>/<series_id>/<instance_number>.dcm`` (axial CT slices, one or two
series per patient), ``train.csv`` (one-hot labels per patient: bowel and active extravasation healthy/injury;
kidney, liver and spleen healthy/low/high; ``any_injury``) and ``train_series_meta.csv`` (``aortic_hu`` and
``incomplete_organ`` per series). :func:`write_synthetic_rsna` writes the same layout with synthetic images for
the labels of real or made-up patients; :func:`synthetic_ct_volume` makes one volume and can also return the
organ and lesion masks it drew; :func:`read_rsna_labels` reads and checks a ``train.csv``.

Volumes are int16 Hounsfield units indexed ``(x, y, z)``: ``x`` runs along an image row from the patient's right
to left (the DICOM column index, so the liver is at low ``x`` as in radiological display), ``y`` from anterior to
posterior (the DICOM row index; the patient lies supine) and ``z`` from inferior to superior (the slice index;
``InstanceNumber`` and ``ImagePositionPatient[2]`` grow with it).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medkit.data.rsna import (
    RSNA_SERIES_META_COLUMNS,
    RSNA_TRAIN_COLUMNS,
    SEGMENTATION_LABELS,
    SEGMENTATIONS_DIR,
    read_rsna_labels,
)
from medkit.errors import MedkitError
from medkit.io.atomic import atomic_path, write_table_atomic
from medkit.metrics.rsna import TARGET_NAMES, TARGETS

__all__ = [
    "RSNA_TARGETS",
    "RSNA_GRADES",
    "synthetic_ct_volume",
    "patient_rng",
    "write_synthetic_rsna",
    "write_synthetic_rsna_demo",
    "DEMO_INJURIES",
]

#: the five targets and their one-hot column suffixes (the label value is the index of the column holding the 1),
#: defined once in medkit.metrics.rsna
RSNA_TARGETS = TARGET_NAMES
RSNA_GRADES: dict[str, tuple[str, ...]] = dict(TARGETS)
_ORGANS = ("kidney", "liver", "spleen")
_HU_MIN, _HU_MAX = -1024, 3071  # what 12 stored bits with RescaleIntercept -1024 can hold

# ------------------------------------------------------------------------------------------------ labels


def _check_labels(labels: Mapping[str, Any], where: str = "labels") -> dict[str, int]:
    """A complete label dict from a partial one (missing targets are healthy); ``MedkitError`` on bad keys/values."""
    if not isinstance(labels, Mapping):
        raise MedkitError(f"{where}: expected a dict of target -> grade, got {type(labels).__name__}")
    unknown = sorted(set(labels) - set(RSNA_TARGETS) - {"any_injury"})
    if unknown:
        raise MedkitError(f"{where}: unknown target(s) {unknown}, expected some of {list(RSNA_TARGETS)}")
    out: dict[str, int] = {}
    for t in RSNA_TARGETS:
        value = labels.get(t, 0)
        top = len(RSNA_GRADES[t]) - 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= top:
            raise MedkitError(f"{where}: {t} is {value!r}, expected an int from 0 to {top}")
        out[t] = int(value)
    out["any_injury"] = int(any(out[t] for t in RSNA_TARGETS))
    return out


# ------------------------------------------------------------------------------------------------ geometry


class _Grid:
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


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([1.0, 0.0, 0.0])


def _blob(
    grid: _Grid,
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
    waves = [(_unit(rng.normal(size=3)) * rng.uniform(1.2, 2.6), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
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


def _tube(grid: _Grid, points: np.ndarray, radius: float) -> np.ndarray:
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


def _path(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length: float, n_seg: int) -> np.ndarray:
    """A bent polyline of ``n_seg`` segments and total ``length`` mm from ``start``, mostly in the axial plane."""
    d = _unit(direction * np.array([1.0, 1.0, 0.5]))
    pts = [np.asarray(start, dtype=np.float64)]
    for _ in range(n_seg):
        d = _unit(d + 0.45 * rng.normal(size=3) * np.array([1.0, 1.0, 0.5]))
        pts.append(pts[-1] + d * length / n_seg)
    return np.array(pts)


def _bbox(mask: np.ndarray, margin: Sequence[int] = (0, 0, 0)) -> tuple[slice, slice, slice] | None:
    """Index box of the set voxels of ``mask`` grown by ``margin`` voxels, ``None`` when it is empty."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(max(0, hit[0] - margin[axis]), min(mask.shape[axis], hit[-1] + 1 + margin[axis])))
    return tuple(box)  # type: ignore[return-value]


def _distance_outside(mask: np.ndarray, grid: _Grid, reach: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """mm distance to ``mask`` of the voxels in its bounding box grown by ``reach`` mm (0 inside the mask)."""
    from scipy.ndimage import distance_transform_edt

    margin = [int(np.ceil(reach / s)) + 1 for s in grid.spacing]
    box = _bbox(mask, margin)
    if box is None:
        return None
    return box, distance_transform_edt(~mask[box], sampling=grid.spacing)


# ------------------------------------------------------------------------------------------------ tissues

# tissue codes of the label map the volume is painted on
(
    _AIR,
    _SUBCUT,
    _MUSCLE,
    _FAT,
    _LUNG,
    _BONE,
    _MARROW,
    _DISC,
    _CSF,
    _AORTA,
    _IVC,
    _LIVER,
    _SPLEEN,
    _KCORTEX,
    _KMEDULLA,
    _GALL,
    _GI_WALL,
    _GI_FLUID,
    _GI_GAS,
    _HAEMATOMA,
    _FREE_FLUID,
    _FREE_GAS,
    _CONTRAST,
) = range(23)
_KIDNEY = (_KCORTEX, _KMEDULLA)
_GI = (_GI_WALL, _GI_FLUID, _GI_GAS)


def _tissue_hu(rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units of each tissue code for one patient (contrast-dependent ones are set per series)."""
    lut = np.zeros(23, dtype=np.float32)
    lut[_AIR] = -1000
    lut[_SUBCUT] = rng.uniform(-115, -95)
    lut[_MUSCLE] = rng.uniform(42, 58)
    lut[_FAT] = rng.uniform(-105, -85)
    lut[_LUNG] = rng.uniform(-880, -820)
    lut[_BONE] = rng.uniform(750, 900)
    lut[_MARROW] = rng.uniform(400, 520)
    lut[_DISC] = rng.uniform(70, 100)
    lut[_CSF] = rng.uniform(5, 15)
    lut[_LIVER] = rng.uniform(55, 68)
    lut[_SPLEEN] = rng.uniform(45, 55)
    lut[_KCORTEX] = rng.uniform(135, 170)
    lut[_KMEDULLA] = rng.uniform(80, 110)
    lut[_GALL] = rng.uniform(0, 15)
    lut[_GI_WALL] = rng.uniform(40, 60)
    lut[_GI_FLUID] = rng.uniform(10, 30)
    lut[_GI_GAS] = -1000
    lut[_FREE_GAS] = -1000
    return lut


class _Anatomy:
    """The tissue label map of one patient and what the injuries need to know about it."""

    def __init__(self, grid: _Grid, rng: np.random.Generator) -> None:
        self.grid = grid
        self.lut = _tissue_hu(rng)
        g = grid
        nx, ny, nz = g.shape
        top = float(g.axes[2][-1]) + rng.uniform(0, 20)  # the liver dome, at or just above the top slice
        self.top = top
        L = np.full(g.shape, _AIR, dtype=np.uint8)
        x2, y2 = g.axes[0][:, None], g.axes[1][None, :]
        zz = g.axes[2]

        # body wall: superellipse outline bent by a few harmonics, slightly wider towards the pelvis
        a_out = min(rng.uniform(140, 170), 0.46 * nx * g.spacing[0])
        b_out = min(a_out * rng.uniform(0.66, 0.8), 0.46 * ny * g.spacing[1])
        yc = rng.uniform(0, 12)
        power = rng.uniform(2.2, 2.8)
        theta = np.arctan2((y2 - yc) / b_out, x2 / a_out)
        bend = 1.0 + sum(rng.uniform(-0.03, 0.03) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
        scale = 1.0 + 0.06 * np.clip((top - 150 - zz) / 150, 0, 1) + rng.uniform(-0.02, 0.02) * np.sin(zz / 60)
        fat, wall = rng.uniform(12, 30), rng.uniform(8, 15)

        def inside(a: float, b: float) -> np.ndarray:
            rho = (np.abs(x2 / a) ** power + np.abs((y2 - yc) / b) ** power) ** (1 / power) / bend
            return rho[:, :, None] < scale[None, None, :]

        L[inside(a_out, b_out)] = _SUBCUT
        L[inside(a_out - fat, b_out - 0.7 * fat)] = _MUSCLE
        a_cav, b_cav = a_out - fat - wall, b_out - 0.7 * fat - wall
        L[inside(a_cav, b_cav)] = _FAT
        self.body_yc, self.cavity = yc, (a_cav, b_cav)

        # ribs: bony dots around the cavity in the upper half, coming and going along z
        for side in (-1, 1):
            for ang in np.linspace(0.15, 1.0, 5) * np.pi:
                phi = ang if side > 0 else np.pi - ang
                phi = -phi if rng.random() < 0.5 else phi
                px, py = 1.03 * a_cav * math.cos(phi), yc + 1.03 * b_cav * math.sin(phi)
                disk = (x2 - px) ** 2 + (y2 - py) ** 2 < rng.uniform(4, 6) ** 2
                zon = (zz > top - rng.uniform(120, 160)) & (np.sin(zz / 35 * 2 * np.pi + rng.uniform(0, 6.3)) > 0.2)
                rib = disk[:, :, None] & zon[None, None, :] & (L != _AIR)
                L[rib] = _BONE

        # spine: vertebral bodies with discs, canal and spinous process; paraspinal muscles and psoas
        y_vb = yc + b_out - rng.uniform(55, 70)
        r_vb = (rng.uniform(18, 23), rng.uniform(15, 19))
        for side in (-1, 1):
            para = ((x2 - side * 38) / 26) ** 2 + ((y2 - (y_vb + 42)) / 22) ** 2 < 1
            L[para[:, :, None] & (L != _AIR)] = _MUSCLE
            psoas_r = 6 + 16 * np.clip((top - 150 - zz) / 120, 0, 1)
            psoas = ((x2 - side * (r_vb[0] + 10))[:, :, None] ** 2 + (y2 - y_vb + 4)[:, :, None] ** 2) < psoas_r**2
            L[psoas & (zz < top - 140)[None, None, :]] = _MUSCLE
        vb = ((x2 / r_vb[0]) ** 2 + ((y2 - y_vb) / r_vb[1]) ** 2)[:, :, None]
        period, phase = rng.uniform(30, 36), rng.uniform(0, 36)
        disc = (((zz - phase) % period) < 0.25 * period)[None, None, :]
        spine = np.zeros(g.shape, dtype=bool)
        spine |= vb < 1
        y_canal = y_vb + r_vb[1] + 9
        canal = ((x2 / 8) ** 2 + ((y2 - y_canal) / 8) ** 2 < 1)[:, :, None]
        lamina = (x2 / 16) ** 2 + ((y2 - y_canal - 2) / 14) ** 2 < 1
        arch = lamina | ((x2 / 5) ** 2 + ((y2 - y_canal - 24) / 14) ** 2 < 1)
        spine |= arch[:, :, None] & ~disc
        L[spine] = _BONE
        L[(vb < (1 - 5 / r_vb[1]) ** 2) & ~disc] = _MARROW
        L[(vb < 1) & disc] = _DISC
        L[np.broadcast_to(canal, g.shape)] = _CSF
        self.bone = (L == _BONE) | (L == _MARROW)
        self.spine = self.bone & spine

        # aorta (and iliac arteries below its bifurcation), inferior vena cava
        r_ao = rng.uniform(9, 12)
        ao = np.array([rng.uniform(6, 14), y_vb - r_vb[1] - r_ao - 3])
        z_bif = top - rng.uniform(215, 245)
        below = np.clip(z_bif - zz, 0, None)[None, None, :]
        aorta = (((x2 - ao[0]) ** 2 + (y2 - ao[1]) ** 2 < r_ao**2)[:, :, None]) & (below == 0)
        for side in (-1, 1):
            cx, cy = ao[0] + side * (0.45 * below + 0.5 * r_ao), ao[1] - 0.15 * below
            aorta |= ((x2[:, :, None] - cx) ** 2 + (y2[:, :, None] - cy) ** 2 < (0.7 * r_ao) ** 2) & (below > 0)
        L[aorta] = _AORTA
        ivc = ((x2 + rng.uniform(18, 26)) / 13) ** 2 + ((y2 - (y_vb - r_vb[1] - 9)) / 9) ** 2 < 1
        L[ivc[:, :, None] & (zz > z_bif)[None, None, :]] = _IVC

        # lung bases, posterior and lateral above the liver and spleen
        for side in (-1, 1):
            lung = _blob(g, (side * 75, yc + 25, top + 35), (65, 60, 60), rng, rough=0.08)
            L[lung & (L == _FAT)] = _LUNG

        # kidneys: bean-shaped, posterior either side of the spine; the left one a little higher
        self.kidneys: dict[str, np.ndarray] = {}
        for side, name in ((-1, "right"), (1, "left")):
            c = np.array(
                [side * rng.uniform(58, 72), y_vb + rng.uniform(-8, 10), top - rng.uniform(130, 150) + 8 * side]
            )
            semi = (rng.uniform(24, 29), rng.uniform(19, 23), rng.uniform(48, 58))
            ang = side * rng.uniform(0.5, 0.8)
            kidney = _blob(g, c, semi, rng, rough=0.06, angle=ang)
            hilum = c + np.array([-side * 0.85 * semi[0], -0.3 * semi[1], 0])
            kidney &= ~_blob(g, hilum, (0.42 * semi[0], 0.4 * semi[1], 0.35 * semi[2]), rng, rough=0.0)
            kidney &= L == _FAT
            L[kidney] = _KCORTEX
            medulla = _blob(g, c, [0.62 * s for s in semi], rng, rough=0.1, angle=ang) & kidney
            L[medulla] = _KMEDULLA
            self.kidneys[name] = kidney

        # spleen: patient left, posterior, along the wall, with a concave hilum
        c = np.array([rng.uniform(85, 100), y_vb + rng.uniform(-30, -5), top - rng.uniform(70, 90)])
        semi = (rng.uniform(25, 33), rng.uniform(48, 60), rng.uniform(45, 58))
        ang = -rng.uniform(0.5, 0.9)
        spleen = _blob(g, c, semi, rng, rough=0.12, angle=ang)
        spleen &= ~_blob(g, c + np.array([-0.9 * semi[0], -0.5 * semi[1], 0]), (18, 22, 30), rng, rough=0.0)
        spleen &= L == _FAT
        L[spleen] = _SPLEEN

        # liver: a large right lobe and a left lobe reaching across the midline anteriorly
        right = _blob(
            g,
            (-rng.uniform(55, 75), yc + rng.uniform(-15, 5), top - rng.uniform(70, 85)),
            (rng.uniform(65, 80), rng.uniform(70, 85), rng.uniform(80, 95)),
            rng,
            rough=0.12,
            angle=rng.uniform(-0.2, 0.2),
        )
        left = _blob(
            g,
            (rng.uniform(5, 30), yc - rng.uniform(35, 55), top - rng.uniform(45, 65)),
            (rng.uniform(45, 60), rng.uniform(28, 38), rng.uniform(40, 55)),
            rng,
            rough=0.15,
            angle=rng.uniform(-0.3, 0.3),
        )
        L[(right | left) & (L == _FAT)] = _LIVER

        # stomach (wall, fluid with a gas cap anteriorly) and gallbladder
        c = np.array([rng.uniform(40, 60), yc - rng.uniform(20, 40), top - rng.uniform(45, 70)])
        semi = np.array([rng.uniform(45, 55), rng.uniform(30, 40), rng.uniform(40, 55)])
        stomach = _blob(g, c, semi, rng, rough=0.1) & (L == _FAT)
        lumen = _blob(g, c, semi - 4, rng, rough=0.1) & stomach
        gas_level = c[1] - semi[1] + 2 * semi[1] * rng.uniform(0.15, 0.5)
        L[stomach] = _GI_WALL
        L[lumen] = _GI_FLUID
        L[lumen & (g.axes[1] < gas_level)[None, :, None]] = _GI_GAS
        self.stomach = stomach
        c = (-rng.uniform(35, 55), yc - rng.uniform(30, 50), top - rng.uniform(110, 130))
        gall = _blob(g, c, (rng.uniform(14, 18), rng.uniform(14, 18), rng.uniform(30, 40)), rng, rough=0.08)
        L[gall & ((L == _FAT) | (L == _LIVER))] = _GALL

        self.L = L
        self._bowel(rng)
        self.liver = L == _LIVER
        self.spleen = L == _SPLEEN

    def _bowel(self, rng: np.random.Generator) -> None:
        """Colon framing the abdomen and small-bowel loops as tubes with fluid and an anterior gas level."""
        from scipy.ndimage import distance_transform_edt

        g, L, top, yc = self.grid, self.L, self.top, self.body_yc
        a_cav, b_cav = self.cavity
        z_low = max(float(g.axes[2][0]) + 10, top - 290)
        # colon: caecum (right lower) -> ascending -> transverse (anterior) -> descending -> sigmoid
        ctrl = np.array(
            [
                (-0.55 * a_cav, yc - 0.1 * b_cav, z_low + 30),
                (-0.6 * a_cav, yc + 0.05 * b_cav, top - 150),
                (-0.35 * a_cav, yc - 0.55 * b_cav, top - 135),
                (0.3 * a_cav, yc - 0.55 * b_cav, top - 130),
                (0.65 * a_cav, yc + 0.1 * b_cav, top - 120),
                (0.62 * a_cav, yc + 0.1 * b_cav, z_low + 40),
                (0.2 * a_cav, yc - 0.1 * b_cav, z_low),
            ]
        ) + rng.normal(0, 8, size=(7, 3))
        colon = [ctrl[:1]]
        for p0, p1 in zip(ctrl[:-1], ctrl[1:]):
            n = max(2, int(np.linalg.norm(p1 - p0) / 6))
            seg = p0 + (p1 - p0) * (np.arange(1, n + 1) / n)[:, None]
            colon.append(seg + rng.normal(0, 2.5, size=seg.shape))
        loops = [np.concatenate(colon)]
        radius = [rng.uniform(16, 22)]
        gas = [rng.uniform(0.3, 0.8)]
        # small bowel: random walks inside the central lower abdomen
        centre = np.array([0.0, yc - 0.3 * b_cav, (z_low + top - 140) / 2])
        semi = np.array([0.5 * a_cav, 0.45 * b_cav, max(20.0, (top - 140 - z_low) / 2)])
        for _ in range(int(rng.integers(5, 9))):
            p = centre + semi * 0.7 * rng.uniform(-1, 1, size=3)
            d = _unit(rng.normal(size=3))
            pts = [p]
            for _ in range(int(rng.uniform(140, 260) / 6)):
                d = _unit(d + 0.35 * rng.normal(size=3))
                q = p + 6 * d
                off = (q - centre) / semi
                if off @ off > 1:
                    d = _unit(d - 1.2 * _unit(off / semi))
                    q = p + 6 * d
                p = q
                pts.append(p)
            loops.append(np.array(pts))
            radius.append(rng.uniform(8, 13))
            gas.append(rng.uniform(0.2, 0.6) if rng.random() < 0.35 else 0.0)
        walls = rng.uniform(2, 3.5, size=len(loops))

        points = np.concatenate(loops)
        loop_of = np.concatenate([np.full(len(p), i) for i, p in enumerate(loops)])
        reach = max(radius) + 30  # room for the free fluid and gas of a bowel injury
        margin = [int(np.ceil(reach / s)) + 1 for s in g.spacing]
        i, j, k, ok = g.index(points)
        self.bowel_points, self.bowel_loop_of = points, loop_of
        self.bowel_radius, self.bowel_wall = np.array(radius), walls
        self.bowel_box = None
        if not ok.any():
            return
        box = tuple(
            slice(max(0, int(v[ok].min()) - m), min(n, int(v[ok].max()) + 1 + m))
            for v, m, n in zip((i, j, k), margin, g.shape)
        )
        centreline = np.zeros(tuple(s.stop - s.start for s in box), dtype=np.int32)
        centreline[i[ok] - box[0].start, j[ok] - box[1].start, k[ok] - box[2].start] = np.flatnonzero(ok) + 1
        dist, nearest = distance_transform_edt(centreline == 0, sampling=g.spacing, return_indices=True)
        point = centreline[tuple(nearest)] - 1
        loop = loop_of[point]
        r = self.bowel_radius[loop]
        y = g.axes[1][box[1]][None, :, None]
        tube = (dist <= r) & (L[box] == _FAT)
        wall = tube & (dist > r - walls[loop])
        level = points[point, 1] - r + 2 * r * np.array(gas)[loop]
        sub = L[box]
        sub[tube] = _GI_FLUID
        sub[tube & (y < level)] = _GI_GAS
        sub[wall] = _GI_WALL
        self.bowel_box, self.bowel_dist, self.bowel_point = box, dist, point


# ------------------------------------------------------------------------------------------------ injuries


def _organ_injury(
    grid: _Grid,
    L: np.ndarray,
    hu: np.ndarray,
    organ: np.ndarray,
    grade: int,
    rng: np.random.Generator,
    contrast: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a low (1) or high (2) grade laceration/contusion into ``organ``; returns (lesion, haematoma) masks.

    Low: one or two small hypodense lacerations (bent lines a few mm wide, 6-20 mm long) or contusions
    (blobs 4-10 mm), 25-40 HU below the organ. High: two to four lacerations right through the organ
    (fragmenting it) and one or two large contusions, 40-60 HU below the organ, plus a crescent of haematoma
    6-15 mm thick over part of its surface (40-70 HU, densest against the organ). ``contrast`` scales the HU
    drop (1.5 for the kidney, whose parenchyma enhances about three times as much as liver and spleen).
    """
    lesion = np.zeros(grid.shape, dtype=bool)
    haematoma = np.zeros(grid.shape, dtype=bool)
    ijk = np.argwhere(organ)
    if len(ijk) == 0:
        return lesion, haematoma
    pts = grid.mm(ijk)
    size = float(np.max(pts.max(0) - pts.min(0))) + float(grid.spacing.max())
    thin = 0.55 * float(grid.spacing[:2].max())  # lines at least about a voxel wide
    if grade == 1:
        delta = rng.uniform(25, 40)
        for _ in range(1 + int(rng.random() < 0.35)):
            start = pts[rng.integers(len(pts))]
            if rng.random() < 0.6:
                path = _path(rng, start, rng.normal(size=3), rng.uniform(6, 20), int(rng.integers(2, 4)))
                lesion |= _tube(grid, path, max(rng.uniform(1.5, 3.0), thin))
            else:
                semi = np.maximum(rng.uniform(4, 10, size=3), 0.55 * grid.spacing)
                lesion |= _blob(grid, start, semi, rng, rough=0.35, keep_centre=True)
    else:
        delta = rng.uniform(40, 60)
        centre = pts.mean(0)
        for _ in range(int(rng.integers(2, 5))):
            through = 0.5 * (centre + pts[rng.integers(len(pts))])
            d = _unit(rng.normal(size=3) * np.array([1.0, 1.0, 0.5]))
            length = rng.uniform(0.7, 1.1) * size
            path = _path(rng, through - 0.5 * length * d, d, length, int(rng.integers(3, 6)))
            lesion |= _tube(grid, path, max(rng.uniform(3.0, 6.0), 1.1 * thin))
        for _ in range(int(rng.integers(1, 3))):
            semi = np.maximum(rng.uniform(10, 25, size=3), 0.6 * grid.spacing)
            lesion |= _blob(grid, pts[rng.integers(len(pts))], semi, rng, rough=0.4, keep_centre=True)
        found = _distance_outside(organ, grid, 25.0)
        if found is not None:
            box, dist = found
            thick = max(rng.uniform(6, 15), 1.01 * float(grid.spacing.max()))
            surface = np.argwhere((dist > 0) & (dist <= thick) & np.isin(L[box], (_FAT, _FREE_FLUID)))
            if len(surface):
                spot = grid.mm(surface[rng.integers(len(surface))] + [b.start for b in box])
                extent = rng.uniform(0.25, 0.45) * size
                near = _blob(grid, spot, (extent, extent, extent), rng, rough=0.3, keep_centre=True)[box]
                haem = (dist > 0) & (dist <= thick) & near & np.isin(L[box], (_FAT, _FREE_FLUID))
                haematoma[box] = haem
                # denser clot against the organ, thinner blood further out
                clot = np.clip(rng.uniform(40, 50) + 18 * (1 - dist / thick), 40, 70).astype(np.float32)
                hu[box][haem] = clot[haem]
                L[haematoma] = _HAEMATOMA
    lesion &= organ
    hu[lesion] -= np.float32(delta * contrast)
    return lesion, haematoma


def _bowel_injury(anatomy: _Anatomy, hu: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Thicken the wall of a stretch of small bowel, with free fluid between the loops and free gas bubbles near it."""
    g, L = anatomy.grid, anatomy.L
    out = {n: np.zeros(g.shape, dtype=bool) for n in ("bowel_wall", "free_fluid", "free_gas")}
    if anatomy.bowel_box is None:
        return out
    box, dist, point = anatomy.bowel_box, anatomy.bowel_dist, anatomy.bowel_point
    sub, sub_hu = L[box], hu[box]
    loop_of = anatomy.bowel_loop_of
    present = np.unique(point[dist <= anatomy.bowel_radius[loop_of[point]]])
    loops = [i for i in np.unique(loop_of[present]) if i > 0] or [int(loop_of[present[0]])]
    loop = int(loops[rng.integers(len(loops))])
    idx = np.flatnonzero(loop_of == loop)
    run = min(len(idx), max(3, int(rng.uniform(40, 90) / 6)))
    anchor = int(rng.choice(np.intersect1d(present, idx)))
    first = int(np.clip(anchor - run // 2, idx[0], idx[-1] + 1 - run))
    stretch = np.isin(point, np.arange(first, first + run))
    radius = anatomy.bowel_radius[loop] + 2
    thick = max(rng.uniform(5, 8), 0.6 * float(g.spacing[:2].max()))
    near_bowel = stretch & (dist <= radius) & np.isin(sub, (_FAT, *_GI))
    wall = near_bowel & (dist > radius - thick)
    if not wall.any():  # a stretch narrower than a voxel: its centreline voxels
        wall = stretch & (dist == 0)
    sub[wall] = _GI_WALL
    sub_hu[wall] = rng.uniform(50, 70)
    out["bowel_wall"][box] = wall
    # free fluid: fat between the loops around the injured stretch
    mid = anatomy.bowel_points[first + run // 2]
    extent = rng.uniform(30, 45)
    patch = _blob(g, mid, (extent, extent, extent), rng, rough=0.3, keep_centre=True)[box]
    fluid = (sub == _FAT) & patch & (dist <= anatomy.bowel_radius[loop_of[point]] + rng.uniform(10, 25))
    sub[fluid] = _FREE_FLUID
    sub_hu[fluid] = rng.uniform(10, 30)
    out["free_fluid"][box] = fluid
    # free gas: a few small bubbles in the fat or fluid near the stretch, preferring the anterior (upper) side
    free = np.isin(sub, (_FAT, _FREE_FLUID))
    cand = np.argwhere(free & (dist <= radius + 35) & np.isin(point, np.arange(first - run, first + 2 * run)))
    if len(cand) == 0:
        cand = np.argwhere(free)
    if len(cand):
        front = cand[cand[:, 1] <= np.quantile(cand[:, 1], 0.4)]
        gas = np.zeros(sub.shape, dtype=bool)
        offset = np.array([s.start for s in box])
        for _ in range(int(rng.integers(2, 6))):
            c = g.mm(front[rng.integers(len(front))] + offset)
            gas |= _blob(g, c, [rng.uniform(2, 5)] * 3, rng, rough=0.0, keep_centre=True)[box]
        gas &= free
        sub[gas] = _FREE_GAS
        sub_hu[gas] = -1000
        out["free_gas"][box] = gas
    return out


def _extravasation(
    anatomy: _Anatomy, hu: np.ndarray, labels: Mapping[str, int], aortic_hu: float, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """Paint one to three irregular blobs of extravasated contrast at the edge of an organ (an injured one if any)."""
    g, L = anatomy.grid, anatomy.L
    hosts = {
        "liver": anatomy.liver,
        "spleen": anatomy.spleen,
        "kidney_left": anatomy.kidneys["left"],
        "kidney_right": anatomy.kidneys["right"],
    }
    injured = [n for n in hosts if labels[n.split("_")[0]] > 0]
    names = [n for n in (injured or list(hosts)) if hosts[n].any()] or [n for n in hosts if hosts[n].any()]
    mask = np.zeros(g.shape, dtype=bool)
    if not names:
        return mask, ""
    name = names[int(rng.integers(len(names)))]
    organ = hosts[name]
    from scipy.ndimage import binary_erosion

    box = _bbox(organ, (1, 1, 1))
    edge = np.zeros(g.shape, dtype=bool)
    edge[box] = organ[box] & ~binary_erosion(organ[box])
    cand = np.argwhere(edge)
    allowed = np.isin(L, (_FAT, _LIVER, _SPLEEN, *_KIDNEY, _HAEMATOMA, _FREE_FLUID, _MUSCLE))
    r_min = 0.75 * float(g.spacing[:2].max())
    for _ in range(int(rng.integers(1, 4))):
        centre = g.mm(cand[rng.integers(len(cand))])
        blob = np.zeros(g.shape, dtype=bool)
        for _ in range(int(rng.integers(2, 5))):
            c = centre + rng.normal(0, 5, size=3)
            blob |= _blob(g, c, np.maximum(rng.uniform(3, 8, size=3), r_min), rng, rough=0.3)
        g.mark(blob, centre)
        blob &= allowed
        L[blob] = _CONTRAST
        hu[blob] = np.clip(aortic_hu + rng.uniform(-20, 60), 150, 350)
        mask |= blob
    return mask, name


# ------------------------------------------------------------------------------------------------ volume


def _seed_sequence(rng: np.random.Generator | int) -> np.random.SeedSequence:
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence([int(v) for v in rng.integers(0, 2**63 - 1, size=2)])
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.SeedSequence(int(rng))
    raise MedkitError(f"rng must be a numpy Generator or a non-negative int seed, got {rng!r}")


def synthetic_ct_volume(
    labels: Mapping[str, int],
    shape: Sequence[int] = (96, 96, 64),
    rng: np.random.Generator | int = 0,
    *,
    series: int = 0,
    aortic_hu: float | None = None,
    return_masks: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One axial abdominal CT look-alike in Hounsfield units, with injuries drawn from ``labels``.

    The patient lies supine: subcutaneous fat (about -100 HU) and a muscle wall (40-60) around an abdomen of
    fat (about -95) that holds the liver (55-68, patient right, i.e. low ``x``), spleen (45-55, left,
    posterior), two kidneys (cortex 135-170, medulla 80-110, posterior beside the spine), the aorta
    (``aortic_hu``, 150-300; it splits into the iliac arteries low down) and the IVC, vertebrae (cortex
    750-900, marrow 400-520, discs 70-100), ribs, lung bases at the top, the stomach, gallbladder, colon and
    small-bowel loops (wall 40-60, fluid 10-30 with an anterior gas level of -1000). Sizes, positions and
    shapes jitter per patient; the image is blurred a little and Gaussian noise (sigma 10-20 HU) is added.

    Injuries (grades as in :func:`read_rsna_labels`): liver, spleen, kidney (a random side) low grade is one
    or two small lacerations or contusions 25-40 HU below the organ (kidney 37-60); high grade is lacerations
    through the organ, large contusions (40-60 HU below; kidney 60-90) and a crescent of haematoma (40-70 HU).
    Bowel injury is a thickened wall (5-8 mm) over a stretch of a loop, free fluid (10-30 HU) between the loops
    around it and small free-gas bubbles. Active extravasation is one to three irregular blobs of contrast
    (150-350 HU, near the aortic HU) at the edge of an organ (an injured one if any).

    Anatomy and injuries depend only on ``rng`` (each target on its own stream, so adding an injury moves
    nothing else), and ``series`` changes only the contrast timing (``aortic_hu``) and the noise: the series
    of one patient show the same body.

    Args:
        labels: ``{"bowel": 0|1, "extravasation": 0|1, "kidney": 0-2, "liver": 0-2, "spleen": 0-2}``; missing
            targets are healthy, ``any_injury`` is ignored.
        shape: ``(x, y, z)`` voxels, each at least 8. Pixels are square and the longer in-plane side covers
            350-400 mm whatever the shape; the slices cover 250-300 mm.
        rng: a generator (a fresh one per volume, as it is read from) or an int seed.
        series: which series of the patient (0, 1, ...).
        aortic_hu: the HU of the aorta; drawn from 150-300 per series when ``None``.
        return_masks: also return boolean masks of the organs and lesions in ``info["masks"]``.

    Returns:
        ``(volume, info)``: int16 HU ``shape`` clipped to [-1024, 3071], and ``{"spacing": (sx, sy, sz) mm,
        "origin": mm of voxel (0, 0, 0) (LPS), "aortic_hu", "noise_hu", "series", "injuries": {target: {"grade",
        ...}}}``; with ``return_masks``, ``info["masks"]`` has ``body, liver, spleen, kidney, kidney_left,
        kidney_right, aorta, ivc, spine, bone, stomach, bowel`` and the lesions ``liver_lesion, spleen_lesion,
        kidney_lesion, haematoma`` (``liver_haematoma, spleen_haematoma, kidney_haematoma`` by organ), ``bowel_wall,
        free_fluid, free_gas, bowel_lesion, extravasation``.
    """
    from scipy.ndimage import gaussian_filter

    labels = _check_labels(labels)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise MedkitError(f"shape must be 3 sizes of at least 8 voxels (x, y, z), got {shape}")
    if isinstance(series, bool) or not isinstance(series, (int, np.integer)) or series < 0:
        raise MedkitError(f"series must be a non-negative int, got {series!r}")
    anatomy_ss, injury_ss, series_ss = _seed_sequence(rng).spawn(3)
    anat = np.random.default_rng(anatomy_ss)
    injury_rng = {t: np.random.default_rng(s) for t, s in zip(RSNA_TARGETS, injury_ss.spawn(len(RSNA_TARGETS)))}
    ser = np.random.default_rng(series_ss.spawn(int(series) + 1)[-1])

    fov = anat.uniform(350, 400)
    pixel = fov / max(shape[0], shape[1])
    spacing = (pixel, pixel, anat.uniform(250, 300) / shape[2])
    grid = _Grid(shape, spacing)  # type: ignore[arg-type]
    anatomy = _Anatomy(grid, anat)
    table_z = anat.uniform(-450, -150)

    aortic = float(ser.uniform(150, 300) if aortic_hu is None else aortic_hu)
    noise = float(ser.uniform(10, 20))
    lut = anatomy.lut.copy()
    lut[_AORTA] = aortic
    lut[_IVC] = ser.uniform(0.5, 0.75) * aortic + 20
    L = anatomy.L
    hu = lut[L]

    masks: dict[str, np.ndarray] = {
        "liver": anatomy.liver,
        "spleen": anatomy.spleen,
        "kidney_left": anatomy.kidneys["left"],
        "kidney_right": anatomy.kidneys["right"],
    }
    masks["kidney"] = masks["kidney_left"] | masks["kidney_right"]
    injuries: dict[str, dict[str, Any]] = {}
    haematoma = np.zeros(shape, dtype=bool)
    for organ in ("liver", "spleen", "kidney"):
        r = injury_rng[organ]
        region = masks[organ]
        detail: dict[str, Any] = {"grade": labels[organ]}
        if organ == "kidney":
            side = ("left", "right")[int(r.integers(2))]
            detail["side"] = side
            region = masks[f"kidney_{side}"]
        lesion = haem = np.zeros(shape, dtype=bool)
        if labels[organ]:
            lesion, haem = _organ_injury(grid, L, hu, region, labels[organ], r, 1.5 if organ == "kidney" else 1.0)
            haematoma |= haem
        masks[f"{organ}_lesion"] = lesion
        masks[f"{organ}_haematoma"] = haem
        injuries[organ] = detail
    masks["haematoma"] = haematoma
    gut = {n: np.zeros(shape, dtype=bool) for n in ("bowel_wall", "free_fluid", "free_gas")}
    if labels["bowel"]:
        gut = _bowel_injury(anatomy, hu, injury_rng["bowel"])
    masks.update(gut)
    masks["bowel_lesion"] = gut["bowel_wall"] | gut["free_fluid"] | gut["free_gas"]
    injuries["bowel"] = {"grade": labels["bowel"]}
    extra = np.zeros(shape, dtype=bool)
    host = ""
    if labels["extravasation"]:
        extra, host = _extravasation(anatomy, hu, labels, aortic, injury_rng["extravasation"])
    masks["extravasation"] = extra
    injuries["extravasation"] = {"grade": labels["extravasation"], **({"near": host} if host else {})}

    s = grid.spacing
    hu = gaussian_filter(hu, sigma=(0.45, 0.45, 0.45 * min(1.0, s[0] / s[2])), mode="nearest")
    hu += ser.standard_normal(shape, dtype=np.float32) * np.float32(noise)
    volume = np.clip(np.rint(hu), _HU_MIN, _HU_MAX).astype(np.int16)

    info_out: dict[str, Any] = {
        "spacing": tuple(float(v) for v in spacing),
        "origin": (float(grid.origin[0]), float(grid.origin[1]), float(table_z)),
        "aortic_hu": round(aortic, 2),
        "noise_hu": round(noise, 2),
        "series": int(series),
        "injuries": injuries,
    }
    if return_masks:
        masks["body"] = L != _AIR
        masks["aorta"] = L == _AORTA
        masks["ivc"] = L == _IVC
        masks["spine"] = anatomy.spine
        masks["bone"] = anatomy.bone
        masks["stomach"] = anatomy.stomach
        masks["bowel"] = np.isin(L, _GI) & ~anatomy.stomach
        info_out["masks"] = masks
    return volume, info_out


# ------------------------------------------------------------------------------------------------ writer


def _patient_key(patient_id: str) -> int:
    return int.from_bytes(hashlib.sha256(str(patient_id).encode()).digest()[:8], "little")


def patient_rng(seed: int, patient_id: str) -> np.random.Generator:
    """The generator :func:`write_synthetic_rsna` gives :func:`synthetic_ct_volume` for one patient.

    It depends only on ``(seed, patient_id)``, so a patient's images do not depend on who else is written.
    """
    return np.random.default_rng([int(seed), _patient_key(patient_id)])


def _sort_key(patient_id: str) -> tuple:
    return (0, int(patient_id), "") if patient_id.isdigit() else (1, 0, patient_id)


def _strata(labels: Mapping[str, Mapping[str, int]], pool: Sequence[str]) -> list[tuple[str, int]]:
    """Every injured (target, grade) present in ``pool``, rarest first."""
    counts = {(t, g): 0 for t in RSNA_TARGETS for g in range(1, len(RSNA_GRADES[t]))}
    for p in pool:
        for t in RSNA_TARGETS:
            if labels[p][t]:
                counts[(t, labels[p][t])] += 1
    return sorted((k for k, n in counts.items() if n), key=lambda k: (counts[k], RSNA_TARGETS.index(k[0]), k[1]))


def _choose(labels: Mapping[str, Mapping[str, int]], pool: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` patients of ``pool`` picked by ``seed``: one of each injured (target, grade) first, rarest first,
    then one healthy patient, then at random."""
    order = [pool[i] for i in np.random.default_rng([int(seed), 0x5E1EC7]).permutation(len(pool))]
    chosen: list[str] = []
    taken: set[str] = set()
    for t, g in _strata(labels, pool):
        if len(chosen) >= n:
            break
        if any(labels[p][t] == g for p in chosen):
            continue
        p = next(p for p in order if p not in taken and labels[p][t] == g)
        chosen.append(p)
        taken.add(p)
    healthy = next((p for p in order if p not in taken and not any(labels[p][t] for t in RSNA_TARGETS)), None)
    if healthy is not None and len(chosen) < n and all(any(labels[p][t] for t in RSNA_TARGETS) for p in chosen):
        chosen.append(healthy)
        taken.add(healthy)
    for p in order:
        if len(chosen) >= n:
            break
        if p not in taken:
            chosen.append(p)
            taken.add(p)
    return chosen


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medkit-synthetic-rsna", *(str(p) for p in parts)]))


def _write_series(
    folder: str,
    volume: np.ndarray,
    info: Mapping[str, Any],
    patient_id: str,
    series_id: int,
    series_number: int,
    first_instance: int,
    uids: Mapping[str, str],
    run: str,
    compression: str | None,
) -> list[str]:
    """Write one series into ``folder`` (not yet existing), one ``<instance>.dcm`` per slice; returns the paths."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, RLELossless

    nx, ny, nz = volume.shape
    sx, sy, sz = info["spacing"]
    ox, oy, oz = info["origin"]
    stored = (volume.astype(np.int32) - _HU_MIN).astype(np.uint16)
    os.makedirs(folder)
    paths = []
    for k in range(nz):
        instance = first_instance + k
        sop = _uid(run, patient_id, series_id, "instance", instance)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.Modality = "CT"
        ds.Manufacturer = "medkit synthetic"
        ds.SeriesDescription = "synthetic abdominal CT"
        ds.PatientName = patient_id
        ds.PatientID = patient_id
        ds.BodyPartExamined = "ABDOMEN"
        ds.SliceThickness = f"{sz:.4f}"
        ds.SpacingBetweenSlices = f"{sz:.4f}"
        ds.KVP = "120"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = uids["study"]
        ds.SeriesInstanceUID = uids["series"]
        ds.FrameOfReferenceUID = uids["frame"]
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{oz + k * sz:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = f"{oz + k * sz:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ny
        ds.Columns = nx
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.RescaleIntercept = _HU_MIN
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        if compression == "rle":
            ds.compress(RLELossless, generate_instance_uid=False)
        path = os.path.join(folder, f"{instance}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def segmentation_label_map(masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``SEGMENTATION_LABELS`` map (uint8) of :func:`synthetic_ct_volume`'s ``info["masks"]``.

    Organs first (the competition's 1-5), then each injury over them: bowel injury (thickened wall, free fluid and
    gas), liver/spleen/kidney injury (lacerations, contusions and that organ's haematoma), extravasation last.
    """
    out = np.zeros(masks["liver"].shape, dtype=np.uint8)
    for name in ("liver", "spleen", "kidney_left", "kidney_right", "bowel"):
        out[masks[name]] = SEGMENTATION_LABELS[name]
    out[masks["bowel_lesion"]] = SEGMENTATION_LABELS["bowel_injury"]
    for organ in _ORGANS:
        out[masks[f"{organ}_lesion"] | masks[f"{organ}_haematoma"]] = SEGMENTATION_LABELS[f"{organ}_injury"]
    out[masks["extravasation"]] = SEGMENTATION_LABELS["extravasation"]
    return out


def _write_segmentation(path: str, labels: np.ndarray, info: Mapping[str, Any]) -> None:
    """Write ``labels`` (the volume's ``(x, y, z)`` grid) as NIfTI in the series' RAS world coordinates, atomically."""
    import nibabel as nib

    sx, sy, sz = info["spacing"]
    ox, oy, oz = info["origin"]  # LPS of voxel (0, 0, 0); the DICOM rows and columns run along +L and +P
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]], dtype=np.float64)
    with atomic_path(path) as tmp:
        nib.save(nib.Nifti1Image(labels, affine), tmp)


def _series_counts(series_per_patient: int | tuple[int, int]) -> tuple[int, int]:
    lo_hi = (series_per_patient, series_per_patient) if isinstance(series_per_patient, int) else series_per_patient
    try:
        lo, hi = (int(v) for v in lo_hi)
    except (TypeError, ValueError):
        lo, hi = 0, -1
    if isinstance(series_per_patient, bool) or not 1 <= lo <= hi:
        raise MedkitError(f"series_per_patient must be an int >= 1 or a (min, max) pair, got {series_per_patient!r}")
    return lo, hi


def write_synthetic_rsna(
    out_dir: str | os.PathLike,
    labels: str | os.PathLike | Mapping[str, Mapping[str, int]],
    patient_ids: Iterable[str] | None = None,
    n_patients: int | None = None,
    shape: Sequence[int] = (96, 96, 64),
    seed: int = 0,
    series_per_patient: int | tuple[int, int] = 1,
    compression: str | None = None,
    segmentations: bool = False,
) -> dict[str, Any]:
    """Write an RSNA 2023 Abdominal Trauma Detection look-alike for real (or made-up) patients' labels.

    Layout, as the competition publishes it: ``out_dir/train_images/<patient_id>/<series_id>/<instance>.dcm``
    (CT Image Storage, uint16 stored values with RescaleIntercept -1024, 12 bits stored, one file per axial slice;
    instance numbers start at a random number per series and grow with ``ImagePositionPatient`` z),
    ``out_dir/train.csv`` (the real columns, one-hot, ``any_injury`` recomputed from the targets) and
    ``out_dir/train_series_meta.csv`` (``aortic_hu`` of each series, ``incomplete_organ`` 0).

    Each series is written under a temporary name beside its final folder and renamed when complete (an
    existing one is replaced), and the CSVs are written last, atomically: an interrupted run leaves no half
    series and no tables naming missing series. A patient's images depend only on ``(seed, patient_id)``
    (see :func:`patient_rng`), so a rerun with other patients reproduces the ones they share.

    Args:
        out_dir: the data set folder to write (created if needed).
        labels: a ``train.csv`` path or the dict :func:`read_rsna_labels` returns.
        patient_ids: the patients to write (all must be in ``labels``); default all of ``labels``.
        n_patients: write this many of them, picked by ``seed``: one patient of each injured target and grade
            first (rarest first, as far as ``n_patients`` allows), one healthy patient, then at random.
        shape: ``(x, y, z)`` voxels per series (columns, rows, slices).
        seed: random seed of the choice of patients and of every image.
        series_per_patient: series per patient, or a ``(min, max)`` pair to draw it per patient (the real set
            has one or two). The series of a patient share the body and differ in contrast timing and noise.
        compression: ``None`` (explicit VR little endian) or ``"rle"`` (RLE Lossless).
        segmentations: also write ``out_dir/segmentations/<series_id>.nii.gz``, organ and injury labels
            (``medkit.data.rsna.SEGMENTATION_LABELS``) on the series' grid, for training with voxel supervision.

    Returns:
        ``{"out_dir", "train_csv", "series_meta_csv", "patient_ids", "n_patients", "n_series", "n_files" (DICOM
        files plus the two CSVs), "counts" ({target: {grade name: patients}, "any_injury": patients}),
        "seconds"}``.

    Raises:
        InputFileError: a bad ``train.csv``.
        MedkitError: bad labels, unknown patients, or bad arguments.
    """
    start = time.perf_counter()
    if compression not in (None, "rle"):
        raise MedkitError(f"compression must be None or 'rle', got {compression!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MedkitError(f"seed must be a non-negative int, got {seed!r}")
    lo, hi = _series_counts(series_per_patient)
    if isinstance(labels, (str, os.PathLike)):
        table = read_rsna_labels(labels)
    elif isinstance(labels, Mapping):
        table = {str(p): _check_labels(v, f"labels of patient {p}") for p, v in labels.items()}
    else:
        raise MedkitError(f"labels must be a train.csv path or a dict of patient labels, got {type(labels).__name__}")
    if patient_ids is None:
        pool = list(table)
    else:
        pool = list(dict.fromkeys(str(p) for p in patient_ids))
        unknown = [p for p in pool if p not in table]
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise MedkitError(f"patient ids not in the labels: {', '.join(unknown[:5])}{more}")
    if n_patients is not None:
        if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
            raise MedkitError(f"n_patients must be a positive int, got {n_patients!r}")
        if n_patients > len(pool):
            raise MedkitError(f"n_patients is {n_patients} but only {len(pool)} patients are available")
        pool = _choose(table, pool, int(n_patients), int(seed))
    if not pool:
        raise MedkitError("no patients to write")
    chosen = sorted(pool, key=_sort_key)

    out_dir = os.fspath(out_dir)
    shape = tuple(int(v) for v in shape)
    run = f"seed={int(seed)} shape={shape}"  # UIDs differ wherever the pixels may
    n_files = 0
    train_rows, series_rows = [], []
    for pid in chosen:
        key = _patient_key(pid)
        choice = np.random.default_rng([int(seed), key, 1])
        n_series = int(choice.integers(lo, hi + 1))
        series_ids = [int(v) for v in choice.choice(np.arange(1, 65536), size=n_series, replace=False)]
        patient_dir = os.path.join(out_dir, "train_images", pid)
        os.makedirs(patient_dir, exist_ok=True)
        uids = {"study": _uid(run, pid, "study"), "frame": _uid(run, pid, "frame")}
        for k, sid in enumerate(series_ids):
            volume, info = synthetic_ct_volume(
                table[pid], shape, patient_rng(seed, pid), series=k, return_masks=segmentations
            )
            first_instance = int(choice.integers(1, 60))
            final = os.path.join(patient_dir, str(sid))
            tmp = os.path.join(patient_dir, f".tmp-{os.getpid()}-{sid}")
            old = os.path.join(patient_dir, f".old-{os.getpid()}-{sid}")
            for leftover in (tmp, old):
                shutil.rmtree(leftover, ignore_errors=True)
            try:
                paths = _write_series(
                    tmp,
                    volume,
                    info,
                    pid,
                    sid,
                    k + 1,
                    first_instance,
                    {**uids, "series": _uid(run, pid, sid, "series")},
                    run,
                    compression,
                )
                if os.path.lexists(final):
                    os.replace(final, old)
                try:
                    os.replace(tmp, final)
                except OSError:
                    if os.path.lexists(old) and not os.path.lexists(final):
                        os.replace(old, final)
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
            n_files += len(paths)
            if segmentations:
                seg_path = os.path.join(out_dir, SEGMENTATIONS_DIR, f"{sid}.nii.gz")
                _write_segmentation(seg_path, segmentation_label_map(info["masks"]), info)
                n_files += 1  # after its series: no mask of a series that is not there
            series_rows.append(
                {"patient_id": pid, "series_id": sid, "aortic_hu": info["aortic_hu"], "incomplete_organ": 0}
            )
        row: dict[str, Any] = {"patient_id": pid}
        for t in RSNA_TARGETS:
            for g, name in enumerate(RSNA_GRADES[t]):
                row[f"{t}_{name}"] = int(table[pid][t] == g)
        row["any_injury"] = int(any(table[pid][t] for t in RSNA_TARGETS))
        train_rows.append(row)

    train_csv = write_table_atomic(train_rows, RSNA_TRAIN_COLUMNS, os.path.join(out_dir, "train.csv"))
    meta_csv = write_table_atomic(series_rows, RSNA_SERIES_META_COLUMNS, os.path.join(out_dir, "train_series_meta.csv"))
    counts: dict[str, Any] = {
        t: {name: sum(table[p][t] == g for p in chosen) for g, name in enumerate(RSNA_GRADES[t])} for t in RSNA_TARGETS
    }
    counts["any_injury"] = sum(r["any_injury"] for r in train_rows)
    return {
        "out_dir": out_dir,
        "train_csv": train_csv,
        "series_meta_csv": meta_csv,
        "patient_ids": chosen,
        "n_patients": len(chosen),
        "n_series": len(series_rows),
        "n_files": n_files + 2,
        "counts": counts,
        "seconds": round(time.perf_counter() - start, 3),
    }


#: injuries of the small demo set: every target and grade at least once, two together in some patients
DEMO_INJURIES: tuple[dict[str, int], ...] = (
    {"extravasation": 1, "spleen": 2},
    {"bowel": 1},
    {"liver": 1},
    {"kidney": 2},
    {"liver": 2, "extravasation": 1},
    {"spleen": 1},
    {"kidney": 1, "bowel": 1},
)


def write_synthetic_rsna_demo(
    out_dir: str | os.PathLike, n_healthy: int = 7, shape: Sequence[int] = (32, 32, 16), seed: int = 0
) -> str:
    """A tiny RSNA look-alike for tests, demos and ``medkit verify``: ``DEMO_INJURIES`` patients (ids 1000...)
    and ``n_healthy`` healthy ones (ids 2000...), labels made up here, with organ and injury masks; returns
    ``out_dir``."""
    healthy = dict.fromkeys(RSNA_TARGETS, 0)
    labels = {str(1000 + i): {**healthy, **extra} for i, extra in enumerate(DEMO_INJURIES)}
    labels.update({str(2000 + i): dict(healthy) for i in range(n_healthy)})
    for row in labels.values():
        row["any_injury"] = int(any(row[t] for t in RSNA_TARGETS))
    write_synthetic_rsna(out_dir, labels, shape=shape, seed=seed, segmentations=True)
    return os.fspath(out_dir)
