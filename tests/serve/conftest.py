"""Inputs of every kind the server takes, made here (synthetic, in the real formats), and the served app."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from tests.conftest import BUNDLES

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")

SERVED = ["pneumonia", "covid", "brain_mri_classification", "brain_mri_segmentation", "abdominal_trauma"]


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def xray_dicom(path: str, array: np.ndarray) -> str:
    """A one-frame DX radiograph (DICOM Part 10) holding ``array`` (uint8)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "P1"
    ds.Rows, ds.Columns = array.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def zip_folder(folder: str, prefix: str) -> bytes:
    """The files of ``folder`` zipped under ``prefix/``."""
    members = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            members[f"{prefix}/{name}"] = f.read()
    return zip_bytes(members)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, synthetic_lgg) -> dict[str, tuple[str, bytes]]:
    """``{kind: (file name, bytes)}``: an X-ray PNG, JPEG and DICOM, an MRI TIFF slice and a zip of a patient's
    slices, a CT NIfTI and a zip of a CT DICOM series."""
    import nibabel as nib
    from PIL import Image

    from medkit.data.synthetic import synthetic_chest_xray
    from medkit.data.synthetic_ct import synthetic_ct_volume, write_synthetic_rsna
    from medkit.data.synthetic_ct.volume import RSNA_TARGETS

    root = tmp_path_factory.mktemp("serve_inputs")
    xray = synthetic_chest_xray(96, "consolidation", np.random.default_rng(0))
    jpeg = io.BytesIO()
    Image.fromarray(xray).save(jpeg, format="JPEG", quality=95)
    dicom = xray_dicom(str(root / "xray.dcm"), xray)
    patient = sorted(p for p in os.listdir(synthetic_lgg) if p.startswith("TCGA"))[0]
    patient_dir = os.path.join(synthetic_lgg, patient)
    slice_file = sorted(f for f in os.listdir(patient_dir) if not f.endswith("_mask.tif"))[0]
    healthy = dict.fromkeys(RSNA_TARGETS, 0)
    volume, info = synthetic_ct_volume(healthy, shape=(32, 32, 16), rng=1)
    sp = info.get("spacing", (12.0, 12.0, 16.0))
    nifti = root / "scan_7.nii.gz"
    nib.save(nib.Nifti1Image(volume.astype(np.int16), np.diag([-sp[0], -sp[1], sp[2], 1.0])), str(nifti))
    rsna = root / "rsna"
    write_synthetic_rsna(str(rsna), {"1000": {**healthy, "any_injury": 0}}, shape=(32, 32, 16))
    series_parent = rsna / "train_images" / "1000"
    series = os.path.join(series_parent, os.listdir(series_parent)[0])
    return {
        "png": ("chest.png", png_bytes(xray)),
        "jpeg": ("chest.jpeg", jpeg.getvalue()),
        "dicom": ("chest.dcm", open(dicom, "rb").read()),
        "tiff": (slice_file, open(os.path.join(patient_dir, slice_file), "rb").read()),
        "tiff_zip": (f"{patient}.zip", zip_folder(patient_dir, patient)),
        "nifti": ("scan_7.nii.gz", nifti.read_bytes()),
        "dicom_zip": ("series.zip", zip_folder(series, "1000")),
        "_paths": (str(nifti), patient_dir.encode()),
    }


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """Every bundle loaded once and the app over them: ``(TestClient, services, work_dir)``."""
    from fastapi.testclient import TestClient

    from medkit.serve.app import create_app
    from medkit.serve.server import load_services

    work_dir = str(tmp_path_factory.mktemp("serve_work"))
    services = load_services([os.path.join(BUNDLES, b) for b in SERVED], work_dir)
    return TestClient(create_app(services, work_dir)), services, work_dir
