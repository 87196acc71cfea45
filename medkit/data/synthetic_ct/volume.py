"""One synthetic abdominal CT volume in Hounsfield units, with the injuries a patient's RSNA labels call for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medkit.data.synthetic_ct.anatomy import AIR, AORTA, GI, IVC, Anatomy
from medkit.data.synthetic_ct.geometry import Grid
from medkit.data.synthetic_ct.injuries import bowel_injury, extravasation, organ_injury
from medkit.errors import MedkitError
from medkit.metrics.rsna import TARGET_NAMES, TARGETS

__all__ = ["RSNA_TARGETS", "RSNA_GRADES", "HU_MIN", "HU_MAX", "check_labels", "synthetic_ct_volume"]

#: the five targets and their one-hot column suffixes (the label value is the index of the column holding the 1),
#: defined once in medkit.metrics.rsna
RSNA_TARGETS = TARGET_NAMES
RSNA_GRADES: dict[str, tuple[str, ...]] = dict(TARGETS)
HU_MIN, HU_MAX = -1024, 3071  # what 12 stored bits with RescaleIntercept -1024 can hold


def check_labels(labels: Mapping[str, Any], where: str = "labels") -> dict[str, int]:
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

    labels = check_labels(labels)
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
    grid = Grid(shape, spacing)  # type: ignore[arg-type]
    anatomy = Anatomy(grid, anat)
    table_z = anat.uniform(-450, -150)

    aortic = float(ser.uniform(150, 300) if aortic_hu is None else aortic_hu)
    noise = float(ser.uniform(10, 20))
    lut = anatomy.lut.copy()
    lut[AORTA] = aortic
    lut[IVC] = ser.uniform(0.5, 0.75) * aortic + 20
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
            lesion, haem = organ_injury(grid, L, hu, region, labels[organ], r, 1.5 if organ == "kidney" else 1.0)
            haematoma |= haem
        masks[f"{organ}_lesion"] = lesion
        masks[f"{organ}_haematoma"] = haem
        injuries[organ] = detail
    masks["haematoma"] = haematoma
    gut = {n: np.zeros(shape, dtype=bool) for n in ("bowel_wall", "free_fluid", "free_gas")}
    if labels["bowel"]:
        gut = bowel_injury(anatomy, hu, injury_rng["bowel"])
    masks.update(gut)
    masks["bowel_lesion"] = gut["bowel_wall"] | gut["free_fluid"] | gut["free_gas"]
    injuries["bowel"] = {"grade": labels["bowel"]}
    extra = np.zeros(shape, dtype=bool)
    host = ""
    if labels["extravasation"]:
        extra, host = extravasation(anatomy, hu, labels, aortic, injury_rng["extravasation"])
    masks["extravasation"] = extra
    injuries["extravasation"] = {"grade": labels["extravasation"], **({"near": host} if host else {})}

    s = grid.spacing
    hu = gaussian_filter(hu, sigma=(0.45, 0.45, 0.45 * min(1.0, s[0] / s[2])), mode="nearest")
    hu += ser.standard_normal(shape, dtype=np.float32) * np.float32(noise)
    volume = np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)

    info_out: dict[str, Any] = {
        "spacing": tuple(float(v) for v in spacing),
        "origin": (float(grid.origin[0]), float(grid.origin[1]), float(table_z)),
        "aortic_hu": round(aortic, 2),
        "noise_hu": round(noise, 2),
        "series": int(series),
        "injuries": injuries,
    }
    if return_masks:
        masks["body"] = L != AIR
        masks["aorta"] = L == AORTA
        masks["ivc"] = L == IVC
        masks["spine"] = anatomy.spine
        masks["bone"] = anatomy.bone
        masks["stomach"] = anatomy.stomach
        masks["bowel"] = np.isin(L, GI) & ~anatomy.stomach
        info_out["masks"] = masks
    return volume, info_out
