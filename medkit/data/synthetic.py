"""Small synthetic look-alike data sets in the published layouts, for quick starts and tests."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["SYNTHETIC", "synthetic_chest_xray", "write_synthetic_chest_xray"]


def synthetic_chest_xray(size: int, pneumonia: bool, rng: np.random.Generator) -> np.ndarray:
    """One synthetic frontal chest radiograph as uint8 ``(size, size)``.

    A bright body outline with two dark lung fields; a pneumonia image carries bright, blurred
    consolidations inside the lungs. The contrast is made to be learnable in one short epoch.
    """
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = 0.15 + 0.05 * rng.standard_normal((size, size)).astype(np.float32)
    body = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.55) / 0.5) ** 2 < 1
    img[body] += 0.45
    lungs = np.zeros_like(body)
    for cx in (0.32, 0.68):
        cx += rng.uniform(-0.03, 0.03)
        lungs |= ((xx - cx) / rng.uniform(0.12, 0.15)) ** 2 + ((yy - 0.5) / rng.uniform(0.25, 0.3)) ** 2 < 1
    img[lungs] -= 0.35
    if pneumonia:
        blobs = np.zeros_like(img)
        for _ in range(rng.integers(2, 5)):
            cy, cx = rng.uniform(0.35, 0.7), rng.choice([0.3, 0.7]) + rng.uniform(-0.06, 0.06)
            r = rng.uniform(0.05, 0.1)
            blobs[((xx - cx) ** 2 + (yy - cy) ** 2) < r**2] = 1.0
        img += 0.4 * gaussian_filter(blobs * lungs, sigma=size / 40)
    img = gaussian_filter(img, sigma=size / 128) + 0.02 * rng.standard_normal((size, size)).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_synthetic_chest_xray(
    out_dir: str | os.PathLike,
    n_patients: int = 24,
    n_test_patients: int = 8,
    size: int = 64,
    seed: int = 0,
    suffix: str = ".jpeg",
) -> str:
    """Write a tiny Kermany look-alike: ``out_dir/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg``.

    File names follow the real set (``IM-0001-0001.jpeg``, ``person3_bacteria_7.jpeg``) so patient ids
    parse the same way; each patient gets one or two images.

    Args:
        out_dir: folder to create (must not hold a previous data set).
        n_patients: training patients per class.
        n_test_patients: test patients per class.
        size: image side in pixels.
        seed: random seed.
        suffix: ``.jpeg`` or ``.png``.

    Returns:
        ``out_dir`` as a string.
    """
    from PIL import Image

    if n_patients < 2:
        raise ValueError(f"n_patients must be at least 2, got {n_patients}")
    rng = np.random.default_rng(seed)
    out_dir = os.fspath(out_dir)
    image_no = 0
    for split, count, offset in (("train", n_patients, 0), ("test", n_test_patients, 1000)):
        for cls in ("NORMAL", "PNEUMONIA"):
            folder = os.path.join(out_dir, split, cls)
            os.makedirs(folder, exist_ok=True)
            for p in range(offset + 1, offset + count + 1):
                for k in range(1, int(rng.integers(1, 3)) + 1):
                    image_no += 1
                    if cls == "NORMAL":
                        name = f"IM-{p:04d}-{k:04d}{suffix}"
                    else:
                        kind = "bacteria" if p % 2 else "virus"
                        name = f"person{p}_{kind}_{image_no}{suffix}"
                    arr = synthetic_chest_xray(size, cls == "PNEUMONIA", rng)
                    Image.fromarray(arr).save(os.path.join(folder, name))
    return out_dir


#: synthetic look-alike writer of each data source (``out_dir -> data set folder``)
SYNTHETIC = {"pneumonia": write_synthetic_chest_xray}
