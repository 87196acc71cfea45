"""CheckInputd: each bundle's ``medkit.accepts`` refuses inputs of the wrong kind, by name, right after loading."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from monai.data import MetaTensor
from monai.transforms import Compose
from PIL import Image

from medkit.data.inference import error_message
from medkit.errors import InputFileError
from medkit.transforms import CheckInputd, ct_preprocessing, mri_slice_preprocessing, xray_preprocessing

BUNDLES = os.path.join(os.path.dirname(__file__), "..", "..", "bundles")


def refusal(chain, path: str) -> str:
    """The one line ``TolerantDataset`` reports when ``chain`` fails on ``path`` (MONAI wraps the error)."""
    try:
        chain({"image": path})
    except Exception as e:  # noqa: BLE001
        return error_message(e, path)
    raise AssertionError(f"{path} was accepted")


def accepts(bundle: str) -> dict:
    with open(os.path.join(BUNDLES, bundle, "configs", "metadata.json")) as f:
        return json.load(f)["medkit"]["accepts"]


def write_dicom(path, pixels: np.ndarray, modality: str = "DX", photometric: str = "MONOCHROME2") -> str:
    """A minimal uncompressed DICOM image: ``(rows, columns)`` grey, ``(rows, columns, 3)`` RGB or
    ``(frames, rows, columns)`` multi-frame when ``photometric`` is MONOCHROME2 and the array is 3D."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = modality, photometric
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    colour = photometric == "RGB"
    if colour:
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    else:
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.SamplesPerPixel = 1
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)


def xray(size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)


def wrong_radiographs(folder) -> dict[str, str]:
    """Inputs an X-ray bundle must refuse: ``{path: the problem named}``."""
    from pydicom.data import get_testdata_file

    rgb = np.random.default_rng(1).integers(0, 255, (3, 3, 3), dtype=np.uint8)
    brain = np.zeros((64, 64, 3), np.uint8)
    brain[16:48, 16:48] = (90, 200, 140)  # three MR sequences: channels differ
    tifffile.imwrite(folder / "TCGA_XX_0001_1.tif", brain)
    return {
        write_dicom(folder / "rgb.dcm", rgb, "OT", "RGB"): "a colour image",
        get_testdata_file("rtdose.dcm"): "DICOM modality RTDOSE, not a chest radiograph",
        write_dicom(folder / "frames.dcm", np.stack([xray()] * 15), "DX"): "multi-frame DICOM (15 frames)",
        get_testdata_file("CT_small.dcm"): "DICOM modality CT, not a chest radiograph",
        get_testdata_file("MR_small.dcm"): "DICOM modality MR, not a chest radiograph",
        str(folder / "TCGA_XX_0001_1.tif"): "a colour image",
        write_dicom(folder / "tiny.dcm", xray(8), "CR"): "8x8 pixels, smaller than the 32x32",
        write_dicom(folder / "blank.dcm", np.full((64, 64), 7, np.uint8), "CR"): "every value is 7 (a blank image)",
    }


@pytest.mark.parametrize("bundle", ["pneumonia", "covid"])
def test_radiograph_bundles_refuse_other_kinds(bundle, tmp_path):
    chain = Compose(xray_preprocessing(spatial_size=(32, 32), accepts=accepts(bundle)))
    for path, problem in wrong_radiographs(tmp_path).items():
        message = refusal(chain, path)
        assert message.startswith(f"{path}: {problem}"), message
    # radiographs pass: a grey PNG, a grey PNG stored as RGB, grey DICOMs (DX, CR, no modality)
    Image.fromarray(xray()).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([xray()] * 3, axis=-1)).save(tmp_path / "grey_as_rgb.jpg", quality=90)
    good = [str(tmp_path / "grey.png"), str(tmp_path / "grey_as_rgb.jpg")]
    good += [write_dicom(tmp_path / f"{m or 'none'}.dcm", xray(48), m) for m in ("DX", "CR", "")]
    for path in good:
        assert tuple(chain({"image": path})["image"].shape) == (1, 32, 32)


def test_mri_bundles_refuse_grey_and_tiny_slices(tmp_path):
    chain = Compose(mri_slice_preprocessing(accepts=accepts("brain_mri_classification"), channels=None))
    tifffile.imwrite(tmp_path / "grey_1.tif", xray())
    tifffile.imwrite(tmp_path / "tiny_1.tif", np.ones((16, 16, 3), np.uint8))
    tifffile.imwrite(tmp_path / "good_1.tif", np.stack([xray(64, s) for s in range(3)], axis=-1))
    grey, tiny = str(tmp_path / "grey_1.tif"), str(tmp_path / "tiny_1.tif")
    assert refusal(chain, grey) == f"{grey}: has 1 channel(s), this bundle needs 3"
    assert refusal(chain, tiny).startswith(f"{tiny}: 16x16 pixels, smaller than the 32x32")
    assert tuple(chain({"image": str(tmp_path / "good_1.tif")})["image"].shape) == (3, 64, 64)


def ct_volume(shape=(40, 40, 30), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = np.full(shape, -1000.0, np.float32)
    volume[5:-5, 5:-5] = rng.normal(40, 30, (shape[0] - 10, shape[1] - 10, shape[2]))
    return volume


def wrong_volumes(folder) -> dict[str, str]:
    """Inputs the CT bundle must refuse: ``{path: the problem named}`` (6 mm voxels unless said)."""
    affine = np.diag([6.0, 6.0, 6.0, 1.0])

    def nifti(name: str, array: np.ndarray, aff: np.ndarray = affine) -> str:
        nib.save(nib.Nifti1Image(array.astype(np.float32), aff), str(folder / name))
        return str(folder / name)

    some_nan = ct_volume()
    some_nan[3:6] = np.nan
    some_nan[0, 0, 0] = np.inf
    (folder / "empty.nii.gz").write_bytes(b"")
    (folder / "text.nii.gz").write_text("not a volume\n")
    (folder / "jpegs").mkdir()
    for n in range(3):
        Image.fromarray(xray(32, n)).save(folder / "jpegs" / f"{n}.jpg")
    Image.fromarray(xray()).save(folder / "xray.png")
    return {
        nifti("some_nan.nii.gz", some_nan): "3601 of 48000 values are NaN or Inf",
        nifti("all_nan.nii.gz", np.full((40, 40, 30), np.nan)): "every value is NaN or Inf",
        nifti("flat.nii.gz", ct_volume()[:, :, 0]): "expected a 3D volume, got array of shape (40, 40)",
        nifti("four_d.nii.gz", np.stack([ct_volume()] * 2, -1)): "expected a 3D volume, got array of shape",
        nifti("one_slice.nii.gz", ct_volume()[:, :, :1]): "40x40x1 voxels, smaller than the 16x16x8",
        nifti("thin.nii.gz", ct_volume(), np.diag([1.0, 1.0, 1.0, 1.0])): "covers 40x40x30 mm, less than",
        nifti("zeros.nii.gz", np.zeros((40, 40, 30))): "every value is 0 (a blank image)",
        nifti("not_hu.nii.gz", ct_volume() + 5000): "only 0% of its values lie in -1100 to 3100",
        str(folder / "empty.nii.gz"): "file is empty (0 bytes)",
        str(folder / "text.nii.gz"): "cannot read NIfTI (ImageFileError: File text.nii.gz is not a gzip file)",
        str(folder / "jpegs"): "no readable DICOM image",
        str(folder / "xray.png"): "not a DICOM series folder or a NIfTI file",
    }


def test_ct_bundle_refuses_other_kinds(tmp_path):
    chain = Compose(
        ct_preprocessing(pixdim=(12, 12, 12), spatial_size=(16, 16, 16), accepts=accepts("abdominal_trauma"))
    )
    for path, problem in wrong_volumes(tmp_path).items():
        message = refusal(chain, path)
        assert message.startswith(f"{path}: {problem}"), message
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(ct_volume(), np.diag([6.0, 6.0, 6.0, 1.0])), str(good))
    out = chain({"image": str(good)})
    assert tuple(out["image"].shape) == (3, 16, 16, 16) and torch.isfinite(out["image"]).all()


def test_ct_series_of_another_modality_is_refused(tmp_path):
    from pydicom.data import get_testdata_file

    folder = tmp_path / "series"
    folder.mkdir()
    import shutil

    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "1.dcm")
    check = CheckInputd("image", accepts("abdominal_trauma"))
    from medkit.io.ct import CTReader
    from medkit.transforms.load_xrayd import LoadWithReaderd

    with pytest.raises(InputFileError, match="series: DICOM modality MR, not an abdominal CT volume"):
        check(LoadWithReaderd("image", CTReader())({"image": str(folder)}))


def test_check_input_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown entries \\['colour'\\]"):
        CheckInputd("image", {"colour": True})
    with pytest.raises(ValueError, match="value_range"):
        CheckInputd("image", value_range=[5, 1])
    with pytest.raises(ValueError, match="min_size: expected one number or 2"):
        CheckInputd("image", min_size=[1, 2, 3])({"image": MetaTensor(torch.ones(1, 4, 4))})
    # keyword limits over accepts; nothing given: nothing checked
    image = MetaTensor(torch.zeros(1, 4, 4))
    assert CheckInputd("image")({"image": image})["image"] is image
    with pytest.raises(
        InputFileError, match=r"^x.png: 4x4 pixels, smaller than the 8x8 this bundle needs for an image"
    ):
        CheckInputd("image", {"min_size": 2}, min_size=8)({"image": image, "image_path": "x.png"})
