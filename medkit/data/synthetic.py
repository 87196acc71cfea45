"""Small synthetic look-alike data sets in the published layouts, for quick starts and tests."""

from __future__ import annotations

import os

import numpy as np

from medkit.data.synthetic_ct import write_synthetic_rsna_demo

__all__ = [
    "SYNTHETIC",
    "synthetic_mri_slice",
    "write_synthetic_lgg",
    "FINDINGS",
    "synthetic_chest_xray",
    "write_synthetic_chest_xray",
    "write_synthetic_covid_radiography",
]

FINDINGS = (None, "consolidation", "peripheral", "diffuse")


def synthetic_chest_xray(size: int, finding: str | None, rng: np.random.Generator) -> np.ndarray:
    """One synthetic frontal chest radiograph as uint8 ``(size, size)``.

    A bright body outline with two dark lung fields. ``finding`` adds opacities inside the lungs:
    ``"consolidation"`` (a few bright blurred patches, bacterial-pneumonia-like), ``"peripheral"``
    (patches in the outer lower zones of both lungs, COVID-like) or ``"diffuse"`` (a haze over both
    lungs). The contrast is made to be learnable in a short run.
    """
    if finding not in FINDINGS:
        raise ValueError(f"finding must be one of {FINDINGS}, got {finding!r}")
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
    if finding in ("consolidation", "peripheral"):
        blobs = np.zeros_like(img)
        for k in range(rng.integers(2, 5)):
            if finding == "consolidation":
                cy, cx = rng.uniform(0.35, 0.7), rng.choice([0.3, 0.7]) + rng.uniform(-0.06, 0.06)
            else:
                cy, cx = rng.uniform(0.55, 0.7), (0.2, 0.8)[k % 2] + rng.uniform(-0.03, 0.03)
            r = rng.uniform(0.05, 0.1)
            blobs[((xx - cx) ** 2 + (yy - cy) ** 2) < r**2] = 1.0
        img += 0.4 * gaussian_filter(blobs * lungs, sigma=size / 40)
    elif finding == "diffuse":
        img += 0.2 * gaussian_filter(lungs.astype(np.float32), sigma=size / 20)
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
                    arr = synthetic_chest_xray(size, "consolidation" if cls == "PNEUMONIA" else None, rng)
                    Image.fromarray(arr).save(os.path.join(folder, name))
    return out_dir


def write_synthetic_covid_radiography(
    out_dir: str | os.PathLike,
    n_per_class: int = 16,
    size: int = 64,
    seed: int = 0,
    folders: tuple[str, ...] = ("COVID", "Normal", "Viral Pneumonia"),
    images_subfolder: bool = False,
) -> str:
    """Write a tiny COVID-19 Radiography Database look-alike: ``out_dir/<class folder>/<class>-<n>.png``.

    Args:
        out_dir: folder to create.
        n_per_class: images per class folder.
        size: image side in pixels.
        seed: random seed.
        folders: which of ``COVID``, ``Lung_Opacity``, ``Normal``, ``Viral Pneumonia`` to write.
        images_subfolder: put the PNGs under ``<class folder>/images/`` as later releases do.

    Returns:
        ``out_dir`` as a string.
    """
    from PIL import Image

    findings = {"COVID": "peripheral", "Lung_Opacity": "consolidation", "Normal": None, "Viral Pneumonia": "diffuse"}
    unknown = set(folders) - set(findings)
    if unknown:
        raise ValueError(f"unknown class folders {sorted(unknown)}, expected some of {sorted(findings)}")
    rng = np.random.default_rng(seed)
    out_dir = os.fspath(out_dir)
    for folder in folders:
        target = os.path.join(out_dir, folder, "images") if images_subfolder else os.path.join(out_dir, folder)
        os.makedirs(target, exist_ok=True)
        for n in range(1, n_per_class + 1):
            arr = synthetic_chest_xray(size, findings[folder], rng)
            Image.fromarray(arr).save(os.path.join(target, f"{folder}-{n}.png"))
    return out_dir


def synthetic_mri_slice(size: int, tumour: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One brain-MRI-like slice ``(size, size, 3)`` uint8 and its 0/255 mask ``(size, size)``.

    The head is an ellipse; the tumour, when present, is a blob from ``monai.data.synthetic.create_test_image_2d``
    that is bright in FLAIR (channel 1) and slightly bright in the other two channels.
    """
    from monai.data.synthetic import create_test_image_2d

    yy, xx = np.mgrid[:size, :size] / size
    head = ((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.36) ** 2 < 1.0
    base = np.where(head, 0.35 + 0.1 * rng.standard_normal((size, size)), 0.0)
    image = np.stack([base * f for f in (0.9, 1.0, 0.8)], axis=-1)
    mask = np.zeros((size, size), dtype=np.uint8)
    if tumour:
        _, seg = create_test_image_2d(
            size,
            size,
            num_objs=1,
            rad_max=max(3, size // 8),
            rad_min=max(2, size // 16),
            noise_max=0.0,
            random_state=np.random.RandomState(int(rng.integers(2**31))),
        )
        mask = ((seg > 0) & head).astype(np.uint8) * 255
        image[mask > 0] += np.array([0.15, 0.5, 0.25])
    image = np.clip(image + 0.03 * rng.standard_normal(image.shape), 0, 1)
    return (image * 255).astype(np.uint8), mask


def write_synthetic_lgg(
    out_dir: str | os.PathLike, n_patients: int = 6, n_slices: int = 8, size: int = 64, seed: int = 0
) -> str:
    """Write a tiny ``kaggle_3m`` look-alike: ``out_dir/kaggle_3m/TCGA_XX_<id>_<date>/<case>_<n>[_mask].tif``.

    The middle half of each patient's slices carry a tumour. TIFFs are deflate-compressed like the real set.

    Returns:
        the ``kaggle_3m`` folder.
    """
    import tifffile

    rng = np.random.default_rng(seed)
    root = os.path.join(os.fspath(out_dir), "kaggle_3m")
    for p in range(n_patients):
        case = f"TCGA_XX_{p:04d}_2000{p % 12 + 1:02d}01"
        folder = os.path.join(root, case)
        os.makedirs(folder, exist_ok=True)
        for n in range(1, n_slices + 1):
            tumour = n_slices // 4 < n <= n_slices - n_slices // 4
            image, mask = synthetic_mri_slice(size, tumour, rng)
            tifffile.imwrite(os.path.join(folder, f"{case}_{n}.tif"), image, compression="zlib", predictor=True)
            tifffile.imwrite(os.path.join(folder, f"{case}_{n}_mask.tif"), mask, compression="zlib")
    return root


#: synthetic look-alike writer of each data source (``out_dir -> data set folder``)
SYNTHETIC = {
    "pneumonia": write_synthetic_chest_xray,
    "covid": write_synthetic_covid_radiography,
    "lgg": write_synthetic_lgg,
    "rsna": write_synthetic_rsna_demo,
}
