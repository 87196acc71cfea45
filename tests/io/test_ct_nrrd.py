"""A CT volume as NRRD reads as the same Hounsfield volume and RAS affine as the same volume as NIfTI."""

from __future__ import annotations

import numpy as np
import pytest

from medkit.data.inference import series_datalist
from medkit.errors import InputFileError
from medkit.io import CTReader, load_ct


def _write_both(tmp_path) -> tuple[str, str]:
    import itk
    import nibabel as nib

    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 1500, size=(20, 18, 12)).astype(np.int16)  # (i, j, k)
    spacing, origin_lps = (0.8, 0.9, 2.5), (-150.0, -120.0, 40.0)
    image = itk.image_from_array(np.ascontiguousarray(volume.T))  # ITK's arrays are (k, j, i)
    image.SetSpacing(spacing)
    image.SetOrigin(origin_lps)
    nrrd = str(tmp_path / "scan.nrrd")
    itk.imwrite(image, nrrd)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # LPS axes as RAS: x and y flip
    affine[:3, 3] = [-origin_lps[0], -origin_lps[1], origin_lps[2]]
    nifti = str(tmp_path / "scan.nii.gz")
    nib.save(nib.Nifti1Image(volume, affine), nifti)
    return nrrd, nifti


def test_nrrd_reads_as_the_same_volume_as_nifti(tmp_path):
    nrrd, nifti = _write_both(tmp_path)
    array, affine, meta = load_ct(nrrd)
    expected, expected_affine, _ = load_ct(nifti)
    assert meta["format"] == "NRRD" and meta["spacing"] == pytest.approx((0.8, 0.9, 2.5))
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(affine, expected_affine, atol=1e-5)
    assert CTReader().verify_suffix(nrrd)
    assert series_datalist([nrrd]) == [{"image": nrrd, "patient": "scan"}]


def test_broken_nrrd_is_named(tmp_path):
    bad = tmp_path / "broken.nrrd"
    bad.write_bytes(b"NRRD0004\nnot really\n")
    with pytest.raises(InputFileError, match="broken.nrrd: cannot read NRRD"):
        load_ct(str(bad))
