"""The files of one synthetic series: its axial slices as DICOM, and its organ and injury label map as NIfTI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from medkit.data.rsna import SEGMENTATION_LABELS
from medkit.data.synthetic_ct.volume import HU_MIN
from medkit.io.atomic import atomic_path

__all__ = ["dicom_uid", "write_series", "segmentation_label_map", "write_segmentation"]

_ORGANS = ("kidney", "liver", "spleen")


def dicom_uid(*parts: object) -> str:
    """A DICOM UID derived from ``parts`` alone, so a rerun writes the same UIDs."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medkit-synthetic-rsna", *(str(p) for p in parts)]))


def write_series(
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
    stored = (volume.astype(np.int32) - HU_MIN).astype(np.uint16)
    os.makedirs(folder)
    paths = []
    for k in range(nz):
        instance = first_instance + k
        sop = dicom_uid(run, patient_id, series_id, "instance", instance)
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
        ds.RescaleIntercept = HU_MIN
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


def write_segmentation(path: str, labels: np.ndarray, info: Mapping[str, Any]) -> None:
    """Write ``labels`` (the volume's ``(x, y, z)`` grid) as NIfTI in the series' RAS world coordinates, atomically."""
    import nibabel as nib

    sx, sy, sz = info["spacing"]
    ox, oy, oz = info["origin"]  # LPS of voxel (0, 0, 0); the DICOM rows and columns run along +L and +P
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]], dtype=np.float64)
    with atomic_path(path) as tmp:
        nib.save(nib.Nifti1Image(labels, affine), tmp)
