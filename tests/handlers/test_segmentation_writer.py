from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medkit.handlers import SegmentationWriter
from medkit.transforms import segmentation_postprocessing


class _State:
    def __init__(self, output, batch):
        self.output, self.batch = output, batch


class _Engine:
    def __init__(self, output, batch):
        self.state = _State(output, batch)


@pytest.mark.parametrize("for_writers", [False, True])
def test_masks_keep_the_slice_orientation(tmp_path, for_writers):
    logits = torch.full((1, 6, 9), -10.0)
    logits[0, 1:3, 5:8] = 10.0  # a block in rows 1-2, columns 5-7 of a 6 x 9 slice
    out = segmentation_postprocessing(for_writers=for_writers)({"pred": logits})
    writer = SegmentationWriter(str(tmp_path), pixel_spacing=(0.5, 2.0), pred_layout="xy" if for_writers else "rc")
    image = torch.rand(3, 6, 9)
    writer._collect(
        _Engine([out], [{"image": image, "image_path": "/x/s_1.tif", "case": "P", "slice": 1, "error": ""}])
    )
    writer.write()
    mask = np.asarray(Image.open(tmp_path / "masks" / "P" / "s_1_mask.png"))
    expected = np.zeros((6, 9), np.uint8)
    expected[1:3, 5:8] = 255
    np.testing.assert_array_equal(mask, expected)
    row = writer.rows[0]
    assert row["tumour_pixels"] == 6 and row["tumour_area_mm2"] == pytest.approx(6.0)
    if for_writers:
        assert out["pred"].dtype == torch.uint8 and tuple(out["pred"].shape) == (9, 6)  # MONAI's (x, y) 2D label


def _case_slices(n_slices=3, size=8):
    """Masks of one case: a lesion over slices 0-1 (rows 1-4) and a one-pixel island on the last slice."""
    truth = np.zeros((n_slices, size, size), np.uint8)
    truth[0:2, 1:4, 1:4] = 1
    pred = truth.copy()
    pred[-1, 6, 6] = 1  # false positive elsewhere in the volume
    return pred, truth


@pytest.mark.parametrize("largest", [False, True])
def test_writer_keeps_the_largest_3d_component_of_a_case(tmp_path, largest):
    pred, _ = _case_slices()
    writer = SegmentationWriter(str(tmp_path), largest_component_3d=largest, display_channel=1)
    for n in (3, 1, 2):  # out of order: slice numbers decide
        item = {"image": torch.rand(3, 8, 8), "image_path": f"/x/c_{n}.tif", "case": "P", "slice": n, "error": ""}
        writer._collect(_Engine([{"pred": torch.as_tensor(pred[n - 1][None]).float()}], [item]))
    lone = {"image": torch.rand(3, 8, 8), "image_path": "/y/lone.tif", "case": "", "slice": "", "error": ""}
    writer._collect(_Engine([{"pred": torch.as_tensor(pred[2][None]).float()}], [lone]))  # no case: kept as is
    writer.write()
    pixels = {r["image"]: r["tumour_pixels"] for r in writer.rows}
    assert pixels == {"/x/c_1.tif": 9, "/x/c_2.tif": 9, "/x/c_3.tif": 0 if largest else 1, "/y/lone.tif": 1}
    in_order = ["/x/c_1.tif", "/x/c_2.tif", "/x/c_3.tif", "/y/lone.tif"]  # each case's slices by number
    assert [r["image"] for r in writer.rows] == in_order
    with open(tmp_path / "predictions.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == in_order
    last = np.asarray(Image.open(tmp_path / "masks" / "P" / "c_3_mask.png"))
    assert last.max() == (0 if largest else 255)
    overlay = np.asarray(Image.open(tmp_path / "overlays" / "P" / "c_1_overlay.png"))
    inside = overlay[2, 2]  # not on the outline: the display channel shown as grey
    assert inside[0] == inside[1] == inside[2]
    import nibabel as nib

    volume = np.asarray(nib.load(tmp_path / "nifti" / "P_mask.nii.gz").dataobj)
    assert volume.shape == (8, 8, 3) and volume.sum() == (18 if largest else 19)


def test_report_scores_the_largest_3d_component(tmp_path):
    from medkit.handlers import SegmentationReportWriter

    pred, truth = _case_slices()
    figures = {}
    for largest in (False, True):
        writer = SegmentationReportWriter(str(tmp_path / str(largest)), n_worst=1, largest_component_3d=largest)
        for n in (2, 3, 1):
            out = {"pred": torch.as_tensor(pred[n - 1][None]).float(), "label": torch.as_tensor(truth[n - 1][None])}
            item = {"image": torch.rand(1, 8, 8), "image_path": f"/x/c_{n}.tif", "case": "P", "slice": n}
            writer._collect(_Engine([out], [item]))
        figures[largest] = writer._finish()
    assert figures[False]["false_positive_slices"] == 1 and figures[True]["false_positive_slices"] == 0
    assert figures[True]["dice_patient_mean"] == 1.0 > figures[False]["dice_patient_mean"]
    assert (tmp_path / "True" / "worst_cases.png").is_file()


def _doubted_blob_case(size=8):
    """Slice 1: a 64-pixel false positive the classifier doubts (0.2); slices 3-4: the lesion it is sure of."""
    pred = np.zeros((4, size, size), np.uint8)
    pred[0] = 1
    pred[2:4, 2:5, 2:5] = 1
    truth = np.zeros_like(pred)
    truth[2:4, 2:5, 2:5] = 1
    return pred, truth, (0.2, 0.5, 0.99, 0.97)


@pytest.mark.parametrize("with_probability", [False, True])
def test_writer_and_report_weigh_components_by_the_classifier_probability(tmp_path, with_probability):
    """Two-stage: each slice's classifier probability weighs its pixels when choosing the 3D component."""
    from medkit.handlers import SegmentationReportWriter

    pred, truth, probs = _doubted_blob_case()
    writer = SegmentationWriter(str(tmp_path / "w"), largest_component_3d=True, overlays=False)
    report = SegmentationReportWriter(str(tmp_path / "r"), n_worst=0, largest_component_3d=True)
    for n in (1, 2, 3, 4):
        out = {"pred": torch.as_tensor(pred[n - 1][None]).float(), "label": torch.as_tensor(truth[n - 1][None])}
        if with_probability:
            out["tumour_probability"] = torch.tensor([probs[n - 1]])
        item = {"image": torch.rand(1, 8, 8), "image_path": f"/x/c_{n}.tif", "case": "P", "slice": n, "error": ""}
        writer._collect(_Engine([out], [item]))
        report._collect(_Engine([out], [item]))
    writer.write()
    pixels = [r["tumour_pixels"] for r in sorted(writer.rows, key=lambda r: r["slice"])]
    figures = report._finish()
    if with_probability:
        assert pixels == [0, 0, 9, 9] and figures["dice_patient_mean"] == 1.0
    else:  # pixels count alike: the bigger false positive wins
        assert pixels == [64, 0, 0, 0] and figures["dice_patient_mean"] == 0.0


@pytest.mark.parametrize("where", ["logits", "gate"])
def test_a_nan_output_is_a_failed_row_not_an_empty_mask(tmp_path, where):
    """NaN logits binarise to background and would read as "no tumour"; a NaN gate probability has no decision:
    both give an error row naming the slice, no mask file, and leave the case's other slices written."""
    logits = torch.full((1, 6, 9), -10.0)
    if where == "logits":
        logits[0, 2, 3] = float("nan")
    out = segmentation_postprocessing()({"pred": logits})
    if where == "gate":
        out["tumour_probability"] = torch.tensor([float("nan")])
    good = segmentation_postprocessing()({"pred": torch.full((1, 6, 9), -10.0)})
    writer = SegmentationWriter(str(tmp_path))
    items = [
        {"image": torch.rand(3, 6, 9), "image_path": f"/x/s_{n}.tif", "case": "P", "slice": n, "error": ""}
        for n in (1, 2)
    ]
    writer._collect(_Engine([out, good], items))
    writer.write()
    bad, fine = writer.rows
    assert bad["error"] == "/x/s_1.tif: the network's output is NaN or Inf; no prediction"
    assert "tumour_pixels" not in bad and not (tmp_path / "masks" / "P" / "s_1_mask.png").exists()
    assert fine["error"] == "" and fine["tumour_pixels"] == 0 and fine["case_incomplete"]
    assert writer.n_failed == 1
