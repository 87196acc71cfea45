"""Readers for the image formats of medkit's tasks, following MONAI's ``ImageReader`` contract."""

from __future__ import annotations

from medkit.io.ct import NIFTI_SUFFIXES, CTReader, CTSeries, CTSeriesReader, load_ct, read_ct_series
from medkit.io.xray import DICOM_SUFFIXES, RASTER_SUFFIXES, XRayReader, is_dicom_file, read_xray

__all__ = [
    "XRayReader",
    "read_xray",
    "is_dicom_file",
    "RASTER_SUFFIXES",
    "DICOM_SUFFIXES",
    "CTSeries",
    "CTSeriesReader",
    "CTReader",
    "read_ct_series",
    "load_ct",
    "NIFTI_SUFFIXES",
]
