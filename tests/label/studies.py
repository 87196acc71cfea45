"""A MONAI Label studies folder of small synthetic images, one kind per bundle (helper of the label tests)."""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np

#: image id (file name without its extension) each bundle is asked to infer
IMAGES = {
    "pneumonia": "person1_bacteria_1",
    "covid": "COVID-1",
    "brain_mri_classification": "TCGA_XX_0000_20000101_4",
    "brain_mri_segmentation": "TCGA_XX_0000_20000101_4",
    "abdominal_trauma": "ct_1",
}
#: the id of a CT volume written as NRRD
NRRD = "ct_3"
#: a CT series folder (not listed by the datastore: asked for by its path), under the studies folder
SERIES = os.path.join("series", "ct_2")
HEALTHY = dict.fromkeys(("bowel", "extravasation", "kidney", "liver", "spleen"), 0)


def write_studies(folder: str, lgg_patients: int = 3, lgg_slices: int = 8) -> str:
    """Write into ``folder``: a JPEG chest X-ray (``.jpeg``, as the Kermany set), a PNG one (COVID radiography),
    ``lgg_patients`` x ``lgg_slices`` LGG TIFF slices with their masks as final labels (``labels/final/``, what a
    MONAI Label training reads), CT volumes (NIfTI, and NRRD as ``NRRD``) and a CT DICOM series in
    ``SERIES``. Returns ``folder``."""
    import itk
    import nibabel as nib
    import tifffile
    from PIL import Image

    from medkit.data.synthetic import synthetic_chest_xray, synthetic_mri_slice
    from medkit.data.synthetic_ct import synthetic_ct_volume
    from medkit.data.synthetic_ct.series import dicom_uid, write_series

    rng = np.random.default_rng(0)
    labels = os.path.join(folder, "labels", "final")
    os.makedirs(labels, exist_ok=True)
    xray = synthetic_chest_xray(128, "consolidation", rng)
    Image.fromarray(xray).save(os.path.join(folder, f"{IMAGES['pneumonia']}.jpeg"))
    xray = synthetic_chest_xray(128, "peripheral", rng)
    Image.fromarray(xray).save(os.path.join(folder, f"{IMAGES['covid']}.png"))
    for p in range(lgg_patients):
        case = f"TCGA_XX_{p:04d}_2000{p + 1:02d}01"
        for n in range(1, lgg_slices + 1):
            image, mask = synthetic_mri_slice(64, lgg_slices // 4 < n <= lgg_slices - lgg_slices // 4, rng)
            tifffile.imwrite(os.path.join(folder, f"{case}_{n}.tif"), image)
            tifffile.imwrite(os.path.join(labels, f"{case}_{n}.tif"), (mask > 0).astype(np.uint8))
    volume, info = synthetic_ct_volume(HEALTHY, shape=(32, 32, 16), rng=1)
    sx, sy, sz = info["spacing"]
    nifti = nib.Nifti1Image(volume.astype(np.int16), np.diag([-sx, -sy, sz, 1.0]))
    nib.save(nifti, os.path.join(folder, f"{IMAGES['abdominal_trauma']}.nii.gz"))
    volume, info = synthetic_ct_volume(HEALTHY, shape=(32, 32, 16), rng=3)
    image = itk.image_from_array(np.ascontiguousarray(volume.astype(np.int16).T))  # ITK's arrays are (k, j, i)
    image.SetSpacing(info["spacing"])
    itk.imwrite(image, os.path.join(folder, f"{NRRD}.nrrd"))
    volume, info = synthetic_ct_volume(HEALTHY, shape=(32, 32, 16), rng=2)
    uids = {name: dicom_uid("label-test", name) for name in ("study", "frame", "series")}
    write_series(os.path.join(folder, SERIES), volume, info, "ct_2", 2, 1, 1, uids, "label-test", None)
    return folder


def add_real_images(folder: str, data: str) -> dict[str, str]:
    """Copy a few real images from the data sets under ``data`` (``MEDKIT_DATA``) into ``folder``: a Kermany
    pneumonia X-ray, a COVID radiograph, an LGG slice with a large tumour and the TotalSegmentator CT. Returns
    bundle name to the image id (or the path) to ask it for; data sets that are missing are left out."""
    from PIL import Image

    chosen: dict[str, str] = {}
    pneumonia = sorted(glob.glob(os.path.join(data, "chest_xray", "train", "PNEUMONIA", "*.jpeg")))
    if pneumonia:
        shutil.copy(pneumonia[0], os.path.join(folder, "real_" + os.path.basename(pneumonia[0])))
        chosen["pneumonia"] = "real_" + os.path.basename(pneumonia[0]).removesuffix(".jpeg")
    covid = sorted(
        glob.glob(os.path.join(data, "COVID-19_Radiography_Dataset", "COVID", "**", "*.png"), recursive=True)
    )
    if covid:
        shutil.copy(covid[0], os.path.join(folder, "real_" + os.path.basename(covid[0])))
        chosen["covid"] = "real_" + os.path.basename(covid[0]).removesuffix(".png")
    masks = sorted(glob.glob(os.path.join(data, "lgg-mri-segmentation", "kaggle_3m", "TCGA_*", "*_mask.tif")))
    if masks:
        largest = max(masks[:400], key=lambda m: int((np.asarray(Image.open(m)) > 0).sum()))
        image = largest.removesuffix("_mask.tif") + ".tif"
        shutil.copy(image, os.path.join(folder, os.path.basename(image)))
        chosen["brain_mri_segmentation"] = os.path.basename(image).removesuffix(".tif")
    ct = os.path.join(data, "abdominal_ct", "totalsegmentator_example", "example_ct.nii.gz")
    if os.path.isfile(ct):
        shutil.copy(ct, os.path.join(folder, "real_ct.nii.gz"))
        chosen["abdominal_trauma"] = "real_ct"
    return chosen
