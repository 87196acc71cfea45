"""The classification report and prediction writers with slices of a stack decided on their neighbourhood."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from medkit.handlers import ClassificationReportWriter, PredictionWriter

NAMES = ["no_tumour", "tumour"]
#: (case, slice, tumour probability, label): P's tumour is missed on slice 3, Q has one false alarm on slice 2
SLICES = [("P", n, p, 1) for n, p in zip(range(1, 6), (0.9, 0.9, 0.1, 0.9, 0.9))]
SLICES += [("Q", n, p, 0) for n, p in zip(range(1, 5), (0.1, 0.9, 0.1, 0.1))]
SLICES += [("", "", 0.6, 0)]  # a lone image: its own probability


class _Engine:
    def __init__(self, output, batch):
        self.state = type("State", (), {"output": output, "batch": batch})()


def _feed(writer):
    order = [4, 9, 0, 7, 2, 5, 1, 8, 3, 6]  # slices arrive out of order
    for i in order:
        case, n, p, label = SLICES[i]
        out = {"pred": torch.tensor([1 - p, p]), "label": torch.tensor([label])}
        item = {"image": torch.full((1, 4, 4), p), "image_path": f"/d/{case or 'x'}_{n}.tif", "case": case, "slice": n}
        writer._collect(_Engine([out], [item]))


@pytest.mark.parametrize("window", [1, 3])
def test_report_decides_slices_of_a_stack_on_their_neighbourhood(tmp_path, window):
    writer = ClassificationReportWriter(
        str(tmp_path), NAMES, threshold=0.5, n_worst=2, slice_window=window, stack_threshold=0.5
    )
    _feed(writer)
    report = writer._finish()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = {r["image"]: r for r in csv.DictReader((tmp_path / "predictions.csv").open())}
    if window == 1:  # P3 missed, Q2 and the lone image false alarms
        assert report["accuracy"] == pytest.approx(0.7) and "stack_threshold" not in metrics
        assert "prob_tumour_stack" not in rows["/d/P_3.tif"]
        return
    # P's means are 0.9, 0.633, 0.633, 0.633, 0.9 and Q's 0.367, 0.367, 0.367, 0.1: only the lone image is wrong
    assert metrics["accuracy"] == pytest.approx(0.9) and metrics["sensitivity"] == 1.0
    assert metrics["confusion_matrix"] == [[4, 1], [0, 5]]
    assert (metrics["threshold"], metrics["stack_threshold"], metrics["slice_window"], metrics["n_stacked"]) == (
        0.5,
        0.5,
        3,
        9,
    )
    assert rows["/d/P_3.tif"]["prediction"] == "tumour" and float(rows["/d/P_3.tif"]["prob_tumour"]) == 0.1
    assert float(rows["/d/P_3.tif"]["prob_tumour_stack"]) == pytest.approx(1.9 / 3, abs=1e-6)
    assert rows["/d/Q_2.tif"]["prediction"] == "no_tumour"
    assert rows["/d/x_.tif"]["prob_tumour_stack"] == "" and rows["/d/x_.tif"]["prediction"] == "tumour"
    assert (tmp_path / "worst_mistakes.png").stat().st_size > 0


def test_prediction_writer_labels_stacks_on_their_neighbourhood(tmp_path):
    writer = PredictionWriter(str(tmp_path / "p.csv"), NAMES, threshold=0.5, slice_window=3, stack_threshold=0.5)
    _feed(writer)
    failed = {"pred": torch.tensor([0.5, 0.5])}
    writer._collect(_Engine([failed], [{"image_path": "/d/bad.tif", "case": "P", "slice": 6, "error": "bad"}]))
    writer.write()
    rows = {r["image"]: r for r in csv.DictReader((tmp_path / "p.csv").open())}
    assert rows["/d/P_3.tif"]["label"] == "tumour" and rows["/d/Q_2.tif"]["label"] == "no_tumour"
    assert float(rows["/d/P_5.tif"]["prob_tumour_stack"]) == pytest.approx(0.9)  # the failed P6 is left out
    assert rows["/d/x_.tif"]["label"] == "tumour" and rows["/d/x_.tif"]["prob_tumour_stack"] == ""
    assert rows["/d/bad.tif"]["label"] == "" and rows["/d/bad.tif"]["error"] == "bad"
    # P6 failed: P5's window holds it, P4's does not; P's scale missed it, Q is complete
    assert rows["/d/P_5.tif"]["neighbour_missing"] == "True" and rows["/d/P_4.tif"]["neighbour_missing"] == "False"
    assert {r["case_incomplete"] for r in rows.values() if "/P_" in r["image"]} == {"True"}
    assert {r["case_incomplete"] for r in rows.values() if "/Q_" in r["image"]} == {"False"}
    assert rows["/d/bad.tif"]["neighbour_missing"] == ""


def test_prediction_writer_flags_slices_whose_input_missed_a_neighbour(tmp_path):
    writer = PredictionWriter(str(tmp_path / "p.csv"), NAMES, threshold=0.5, slice_window=3, stack_threshold=0.5)
    for n in range(1, 7):  # slice 1's own input missed a neighbour: 1 and 2 (whose window holds 1) are flagged
        item = {"image_path": f"/d/R_{n}.tif", "case": "R", "slice": n, "error": ""}
        item["neighbour_missing"] = "/d/R_0.tif" if n == 1 else ""
        writer._collect(_Engine([{"pred": torch.tensor([0.5, 0.5])}], [item]))
    writer.write()
    flags = [r["neighbour_missing"] for r in csv.DictReader((tmp_path / "p.csv").open())]
    assert flags == ["True", "True", "False", "False", "False", "False"]
