"""Injuries painted into a synthetic CT for the RSNA 2023 targets: organ lacerations and contusions with
haematoma, bowel wall thickening with free fluid and gas, and active extravasation of contrast."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from medkit.data.synthetic_ct.anatomy import (
    CONTRAST,
    FAT,
    FREE_FLUID,
    FREE_GAS,
    GI,
    GI_WALL,
    HAEMATOMA,
    KIDNEY,
    LIVER,
    MUSCLE,
    SPLEEN,
    Anatomy,
)
from medkit.data.synthetic_ct.geometry import (
    Grid,
    bent_path,
    blob_mask,
    bounding_box,
    distance_outside,
    tube_mask,
    unit,
)

__all__ = ["organ_injury", "bowel_injury", "extravasation"]


def organ_injury(
    grid: Grid,
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
                path = bent_path(rng, start, rng.normal(size=3), rng.uniform(6, 20), int(rng.integers(2, 4)))
                lesion |= tube_mask(grid, path, max(rng.uniform(1.5, 3.0), thin))
            else:
                semi = np.maximum(rng.uniform(4, 10, size=3), 0.55 * grid.spacing)
                lesion |= blob_mask(grid, start, semi, rng, rough=0.35, keep_centre=True)
    else:
        delta = rng.uniform(40, 60)
        centre = pts.mean(0)
        for _ in range(int(rng.integers(2, 5))):
            through = 0.5 * (centre + pts[rng.integers(len(pts))])
            d = unit(rng.normal(size=3) * np.array([1.0, 1.0, 0.5]))
            length = rng.uniform(0.7, 1.1) * size
            path = bent_path(rng, through - 0.5 * length * d, d, length, int(rng.integers(3, 6)))
            lesion |= tube_mask(grid, path, max(rng.uniform(3.0, 6.0), 1.1 * thin))
        for _ in range(int(rng.integers(1, 3))):
            semi = np.maximum(rng.uniform(10, 25, size=3), 0.6 * grid.spacing)
            lesion |= blob_mask(grid, pts[rng.integers(len(pts))], semi, rng, rough=0.4, keep_centre=True)
        found = distance_outside(organ, grid, 25.0)
        if found is not None:
            box, dist = found
            thick = max(rng.uniform(6, 15), 1.01 * float(grid.spacing.max()))
            surface = np.argwhere((dist > 0) & (dist <= thick) & np.isin(L[box], (FAT, FREE_FLUID)))
            if len(surface):
                spot = grid.mm(surface[rng.integers(len(surface))] + [b.start for b in box])
                extent = rng.uniform(0.25, 0.45) * size
                near = blob_mask(grid, spot, (extent, extent, extent), rng, rough=0.3, keep_centre=True)[box]
                haem = (dist > 0) & (dist <= thick) & near & np.isin(L[box], (FAT, FREE_FLUID))
                haematoma[box] = haem
                # denser clot against the organ, thinner blood further out
                clot = np.clip(rng.uniform(40, 50) + 18 * (1 - dist / thick), 40, 70).astype(np.float32)
                hu[box][haem] = clot[haem]
                L[haematoma] = HAEMATOMA
    lesion &= organ
    hu[lesion] -= np.float32(delta * contrast)
    return lesion, haematoma


def bowel_injury(anatomy: Anatomy, hu: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
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
    near_bowel = stretch & (dist <= radius) & np.isin(sub, (FAT, *GI))
    wall = near_bowel & (dist > radius - thick)
    if not wall.any():  # a stretch narrower than a voxel: its centreline voxels
        wall = stretch & (dist == 0)
    sub[wall] = GI_WALL
    sub_hu[wall] = rng.uniform(50, 70)
    out["bowel_wall"][box] = wall
    # free fluid: fat between the loops around the injured stretch
    mid = anatomy.bowel_points[first + run // 2]
    extent = rng.uniform(30, 45)
    patch = blob_mask(g, mid, (extent, extent, extent), rng, rough=0.3, keep_centre=True)[box]
    fluid = (sub == FAT) & patch & (dist <= anatomy.bowel_radius[loop_of[point]] + rng.uniform(10, 25))
    sub[fluid] = FREE_FLUID
    sub_hu[fluid] = rng.uniform(10, 30)
    out["free_fluid"][box] = fluid
    # free gas: a few small bubbles in the fat or fluid near the stretch, preferring the anterior (upper) side
    free = np.isin(sub, (FAT, FREE_FLUID))
    cand = np.argwhere(free & (dist <= radius + 35) & np.isin(point, np.arange(first - run, first + 2 * run)))
    if len(cand) == 0:
        cand = np.argwhere(free)
    if len(cand):
        front = cand[cand[:, 1] <= np.quantile(cand[:, 1], 0.4)]
        gas = np.zeros(sub.shape, dtype=bool)
        offset = np.array([s.start for s in box])
        for _ in range(int(rng.integers(2, 6))):
            c = g.mm(front[rng.integers(len(front))] + offset)
            gas |= blob_mask(g, c, [rng.uniform(2, 5)] * 3, rng, rough=0.0, keep_centre=True)[box]
        gas &= free
        sub[gas] = FREE_GAS
        sub_hu[gas] = -1000
        out["free_gas"][box] = gas
    return out


def extravasation(
    anatomy: Anatomy, hu: np.ndarray, labels: Mapping[str, int], aortic_hu: float, rng: np.random.Generator
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

    box = bounding_box(organ, (1, 1, 1))
    edge = np.zeros(g.shape, dtype=bool)
    edge[box] = organ[box] & ~binary_erosion(organ[box])
    cand = np.argwhere(edge)
    allowed = np.isin(L, (FAT, LIVER, SPLEEN, *KIDNEY, HAEMATOMA, FREE_FLUID, MUSCLE))
    r_min = 0.75 * float(g.spacing[:2].max())
    for _ in range(int(rng.integers(1, 4))):
        centre = g.mm(cand[rng.integers(len(cand))])
        blob = np.zeros(g.shape, dtype=bool)
        for _ in range(int(rng.integers(2, 5))):
            c = centre + rng.normal(0, 5, size=3)
            blob |= blob_mask(g, c, np.maximum(rng.uniform(3, 8, size=3), r_min), rng, rough=0.3)
        g.mark(blob, centre)
        blob &= allowed
        L[blob] = CONTRAST
        hu[blob] = np.clip(aortic_hu + rng.uniform(-20, 60), 150, 350)
        mask |= blob
    return mask, name
