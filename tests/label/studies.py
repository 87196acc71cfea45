"""A MONAI Label studies folder of small synthetic images, one kind per bundle (helper of the label tests)."""

from __future__ import annotations

import os

import numpy as np

#: image id (file name without its extension) each bundle is asked to infer
IMAGES = {
    "pneumonia": "person1_bacteria_1",
    "covid": "COVID-1",
    "brain_mri_classification": "TCGA_XX_0000_20000101_4",
    "brain_mri_segmentation": "TCGA_XX_0000_20000101_4",
    "abdominal_trauma": "ct_1",
}


def write_studies(folder: str, lgg_patients: int = 3, lgg_slices: int = 8) -> str:
    """Write into ``folder``: a JPEG chest X-ray (``.jpeg``, as the Kermany set), a PNG one (COVID radiography),
    ``lgg_patients`` x ``lgg_slices`` LGG TIFF slices with their masks as final labels (``labels/final/``, what a
    MONAI Label training reads) and a CT volume (NIfTI). Returns ``folder``."""
    import nibabel as nib
    import tifffile
    from PIL import Image

    from medkit.data.synthetic import synthetic_chest_xray, synthetic_mri_slice
    from medkit.data.synthetic_ct import synthetic_ct_volume

    rng = np.random.default_rng(0)
    labels = os.path.join(folder, "labels", "final")
    os.makedirs(labels, exist_ok=True)
    Image.fromarray(synthetic_chest_xray(128, "consolidation", rng)).save(
        os.path.join(folder, f"{IMAGES['pneumonia']}.jpeg")
    )
    Image.fromarray(synthetic_chest_xray(128, "peripheral", rng)).save(os.path.join(folder, f"{IMAGES['covid']}.png"))
    for p in range(lgg_patients):
        case = f"TCGA_XX_{p:04d}_2000{p + 1:02d}01"
        for n in range(1, lgg_slices + 1):
            image, mask = synthetic_mri_slice(64, lgg_slices // 4 < n <= lgg_slices - lgg_slices // 4, rng)
            tifffile.imwrite(os.path.join(folder, f"{case}_{n}.tif"), image)
            tifffile.imwrite(os.path.join(labels, f"{case}_{n}.tif"), (mask > 0).astype(np.uint8))
    healthy = dict.fromkeys(("bowel", "extravasation", "kidney", "liver", "spleen"), 0)
    volume, info = synthetic_ct_volume(healthy, shape=(32, 32, 16), rng=1)
    sx, sy, sz = info.get("spacing", (12.0, 12.0, 16.0))
    affine = np.diag([-sx, -sy, sz, 1.0])
    nib.save(
        nib.Nifti1Image(volume.astype(np.int16), affine), os.path.join(folder, f"{IMAGES['abdominal_trauma']}.nii.gz")
    )
    return folder
