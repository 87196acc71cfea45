"""The healthy body of a synthetic abdominal CT: tissue codes, their Hounsfield units and the organ layout.

``Anatomy`` paints one patient's tissue label map on a ``Grid`` (body wall, ribs, spine, vessels, lung bases,
kidneys, spleen, liver, stomach, gallbladder and bowel loops, sizes and positions jittered by the generator) and
keeps what the injuries need (organ masks, the bowel's centrelines and distance map); ``tissue_hu`` gives each
tissue code its HU for one patient.
"""

from __future__ import annotations

import math

import numpy as np

from medkit.data.synthetic_ct.geometry import Grid, blob_mask, unit

__all__ = [
    "AIR",
    "SUBCUT",
    "MUSCLE",
    "FAT",
    "LUNG",
    "BONE",
    "MARROW",
    "DISC",
    "CSF",
    "AORTA",
    "IVC",
    "LIVER",
    "SPLEEN",
    "KCORTEX",
    "KMEDULLA",
    "GALL",
    "GI_WALL",
    "GI_FLUID",
    "GI_GAS",
    "HAEMATOMA",
    "FREE_FLUID",
    "FREE_GAS",
    "CONTRAST",
    "KIDNEY",
    "GI",
    "tissue_hu",
    "Anatomy",
]

# tissue codes of the label map the volume is painted on
(
    AIR,
    SUBCUT,
    MUSCLE,
    FAT,
    LUNG,
    BONE,
    MARROW,
    DISC,
    CSF,
    AORTA,
    IVC,
    LIVER,
    SPLEEN,
    KCORTEX,
    KMEDULLA,
    GALL,
    GI_WALL,
    GI_FLUID,
    GI_GAS,
    HAEMATOMA,
    FREE_FLUID,
    FREE_GAS,
    CONTRAST,
) = range(23)
KIDNEY = (KCORTEX, KMEDULLA)
GI = (GI_WALL, GI_FLUID, GI_GAS)


def tissue_hu(rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units of each tissue code for one patient (contrast-dependent ones are set per series)."""
    lut = np.zeros(23, dtype=np.float32)
    lut[AIR] = -1000
    lut[SUBCUT] = rng.uniform(-115, -95)
    lut[MUSCLE] = rng.uniform(42, 58)
    lut[FAT] = rng.uniform(-105, -85)
    lut[LUNG] = rng.uniform(-880, -820)
    lut[BONE] = rng.uniform(750, 900)
    lut[MARROW] = rng.uniform(400, 520)
    lut[DISC] = rng.uniform(70, 100)
    lut[CSF] = rng.uniform(5, 15)
    lut[LIVER] = rng.uniform(55, 68)
    lut[SPLEEN] = rng.uniform(45, 55)
    lut[KCORTEX] = rng.uniform(135, 170)
    lut[KMEDULLA] = rng.uniform(80, 110)
    lut[GALL] = rng.uniform(0, 15)
    lut[GI_WALL] = rng.uniform(40, 60)
    lut[GI_FLUID] = rng.uniform(10, 30)
    lut[GI_GAS] = -1000
    lut[FREE_GAS] = -1000
    return lut


class Anatomy:
    """The tissue label map of one patient and what the injuries need to know about it."""

    def __init__(self, grid: Grid, rng: np.random.Generator) -> None:
        self.grid = grid
        self.lut = tissue_hu(rng)
        g = grid
        nx, ny, nz = g.shape
        top = float(g.axes[2][-1]) + rng.uniform(0, 20)  # the liver dome, at or just above the top slice
        self.top = top
        L = np.full(g.shape, AIR, dtype=np.uint8)
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

        L[inside(a_out, b_out)] = SUBCUT
        L[inside(a_out - fat, b_out - 0.7 * fat)] = MUSCLE
        a_cav, b_cav = a_out - fat - wall, b_out - 0.7 * fat - wall
        L[inside(a_cav, b_cav)] = FAT
        self.body_yc, self.cavity = yc, (a_cav, b_cav)

        # ribs: bony dots around the cavity in the upper half, coming and going along z
        for side in (-1, 1):
            for ang in np.linspace(0.15, 1.0, 5) * np.pi:
                phi = ang if side > 0 else np.pi - ang
                phi = -phi if rng.random() < 0.5 else phi
                px, py = 1.03 * a_cav * math.cos(phi), yc + 1.03 * b_cav * math.sin(phi)
                disk = (x2 - px) ** 2 + (y2 - py) ** 2 < rng.uniform(4, 6) ** 2
                zon = (zz > top - rng.uniform(120, 160)) & (np.sin(zz / 35 * 2 * np.pi + rng.uniform(0, 6.3)) > 0.2)
                rib = disk[:, :, None] & zon[None, None, :] & (L != AIR)
                L[rib] = BONE

        # spine: vertebral bodies with discs, canal and spinous process; paraspinal muscles and psoas
        y_vb = yc + b_out - rng.uniform(55, 70)
        r_vb = (rng.uniform(18, 23), rng.uniform(15, 19))
        for side in (-1, 1):
            para = ((x2 - side * 38) / 26) ** 2 + ((y2 - (y_vb + 42)) / 22) ** 2 < 1
            L[para[:, :, None] & (L != AIR)] = MUSCLE
            psoas_r = 6 + 16 * np.clip((top - 150 - zz) / 120, 0, 1)
            psoas = ((x2 - side * (r_vb[0] + 10))[:, :, None] ** 2 + (y2 - y_vb + 4)[:, :, None] ** 2) < psoas_r**2
            L[psoas & (zz < top - 140)[None, None, :]] = MUSCLE
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
        L[spine] = BONE
        L[(vb < (1 - 5 / r_vb[1]) ** 2) & ~disc] = MARROW
        L[(vb < 1) & disc] = DISC
        L[np.broadcast_to(canal, g.shape)] = CSF
        self.bone = (L == BONE) | (L == MARROW)
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
        L[aorta] = AORTA
        ivc = ((x2 + rng.uniform(18, 26)) / 13) ** 2 + ((y2 - (y_vb - r_vb[1] - 9)) / 9) ** 2 < 1
        L[ivc[:, :, None] & (zz > z_bif)[None, None, :]] = IVC

        # lung bases, posterior and lateral above the liver and spleen
        for side in (-1, 1):
            lung = blob_mask(g, (side * 75, yc + 25, top + 35), (65, 60, 60), rng, rough=0.08)
            L[lung & (L == FAT)] = LUNG

        # kidneys: bean-shaped, posterior either side of the spine; the left one a little higher
        self.kidneys: dict[str, np.ndarray] = {}
        for side, name in ((-1, "right"), (1, "left")):
            c = np.array(
                [side * rng.uniform(58, 72), y_vb + rng.uniform(-8, 10), top - rng.uniform(130, 150) + 8 * side]
            )
            semi = (rng.uniform(24, 29), rng.uniform(19, 23), rng.uniform(48, 58))
            ang = side * rng.uniform(0.5, 0.8)
            kidney = blob_mask(g, c, semi, rng, rough=0.06, angle=ang)
            hilum = c + np.array([-side * 0.85 * semi[0], -0.3 * semi[1], 0])
            kidney &= ~blob_mask(g, hilum, (0.42 * semi[0], 0.4 * semi[1], 0.35 * semi[2]), rng, rough=0.0)
            kidney &= L == FAT
            L[kidney] = KCORTEX
            medulla = blob_mask(g, c, [0.62 * s for s in semi], rng, rough=0.1, angle=ang) & kidney
            L[medulla] = KMEDULLA
            self.kidneys[name] = kidney

        # spleen: patient left, posterior, along the wall, with a concave hilum
        c = np.array([rng.uniform(85, 100), y_vb + rng.uniform(-30, -5), top - rng.uniform(70, 90)])
        semi = (rng.uniform(25, 33), rng.uniform(48, 60), rng.uniform(45, 58))
        ang = -rng.uniform(0.5, 0.9)
        spleen = blob_mask(g, c, semi, rng, rough=0.12, angle=ang)
        spleen &= ~blob_mask(g, c + np.array([-0.9 * semi[0], -0.5 * semi[1], 0]), (18, 22, 30), rng, rough=0.0)
        spleen &= L == FAT
        L[spleen] = SPLEEN

        # liver: a large right lobe and a left lobe reaching across the midline anteriorly
        right = blob_mask(
            g,
            (-rng.uniform(55, 75), yc + rng.uniform(-15, 5), top - rng.uniform(70, 85)),
            (rng.uniform(65, 80), rng.uniform(70, 85), rng.uniform(80, 95)),
            rng,
            rough=0.12,
            angle=rng.uniform(-0.2, 0.2),
        )
        left = blob_mask(
            g,
            (rng.uniform(5, 30), yc - rng.uniform(35, 55), top - rng.uniform(45, 65)),
            (rng.uniform(45, 60), rng.uniform(28, 38), rng.uniform(40, 55)),
            rng,
            rough=0.15,
            angle=rng.uniform(-0.3, 0.3),
        )
        L[(right | left) & (L == FAT)] = LIVER

        # stomach (wall, fluid with a gas cap anteriorly) and gallbladder
        c = np.array([rng.uniform(40, 60), yc - rng.uniform(20, 40), top - rng.uniform(45, 70)])
        semi = np.array([rng.uniform(45, 55), rng.uniform(30, 40), rng.uniform(40, 55)])
        stomach = blob_mask(g, c, semi, rng, rough=0.1) & (L == FAT)
        lumen = blob_mask(g, c, semi - 4, rng, rough=0.1) & stomach
        gas_level = c[1] - semi[1] + 2 * semi[1] * rng.uniform(0.15, 0.5)
        L[stomach] = GI_WALL
        L[lumen] = GI_FLUID
        L[lumen & (g.axes[1] < gas_level)[None, :, None]] = GI_GAS
        self.stomach = stomach
        c = (-rng.uniform(35, 55), yc - rng.uniform(30, 50), top - rng.uniform(110, 130))
        gall = blob_mask(g, c, (rng.uniform(14, 18), rng.uniform(14, 18), rng.uniform(30, 40)), rng, rough=0.08)
        L[gall & ((L == FAT) | (L == LIVER))] = GALL

        self.L = L
        self._bowel(rng)
        self.liver = L == LIVER
        self.spleen = L == SPLEEN

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
            d = unit(rng.normal(size=3))
            pts = [p]
            for _ in range(int(rng.uniform(140, 260) / 6)):
                d = unit(d + 0.35 * rng.normal(size=3))
                q = p + 6 * d
                off = (q - centre) / semi
                if off @ off > 1:
                    d = unit(d - 1.2 * unit(off / semi))
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
        tube = (dist <= r) & (L[box] == FAT)
        wall = tube & (dist > r - walls[loop])
        level = points[point, 1] - r + 2 * r * np.array(gas)[loop]
        sub = L[box]
        sub[tube] = GI_FLUID
        sub[tube & (y < level)] = GI_GAS
        sub[wall] = GI_WALL
        self.bowel_box, self.bowel_dist, self.bowel_point = box, dist, point
