from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric

from medkit.metrics import dice_from_counts, segmentation_report
from medkit.metrics.classification import classification_report, threshold_balanced, threshold_for_recall
from medkit.metrics.segmentation import dice_counts


def test_patient_dice_is_the_3d_dice_of_the_stacked_slices():
    rng = np.random.default_rng(0)
    truth = rng.random((6, 16, 16)) > 0.7
    pred = truth ^ (rng.random((6, 16, 16)) > 0.9)
    truth[0] = False  # a slice without tumour
    records = []
    for k in range(6):
        i, p, g = dice_counts(pred[k], truth[k])
        records.append({"case": "A", "intersection": i, "pred_pixels": p, "true_pixels": g})
    report = segmentation_report(records)
    stacked = DiceMetric(include_background=True)(
        torch.as_tensor(pred)[None, None].float(), torch.as_tensor(truth)[None, None].float()
    )
    assert report["dice_patient_mean"] == pytest.approx(float(stacked), rel=1e-6)
    per_slice = [
        float(DiceMetric()(torch.as_tensor(pred[k])[None, None].float(), torch.as_tensor(truth[k])[None, None].float()))
        for k in range(1, 6)
    ]
    assert report["dice_slice_mean"] == pytest.approx(np.mean(per_slice), rel=1e-6)
    assert report["n_cases"] == 1 and report["n_slices"] == 6


def test_report_over_patients_and_empty_cases():
    records = [
        {"case": "A", "intersection": 8, "pred_pixels": 10, "true_pixels": 10},  # 0.8
        {"case": "A", "intersection": 0, "pred_pixels": 0, "true_pixels": 0},
        {"case": "B", "intersection": 0, "pred_pixels": 5, "true_pixels": 0},  # no tumour, false alarm -> 0
        {"case": "C", "intersection": 0, "pred_pixels": 0, "true_pixels": 0},  # nothing to find, nothing found -> 1
    ]
    report = segmentation_report(records)
    assert report["per_case"] == {"A": 0.8, "B": 0.0, "C": 1.0}
    assert report["dice_patient_mean"] == pytest.approx(0.6)
    assert report["dice_slice_mean"] == pytest.approx(0.8)
    assert report["false_positive_slices"] == 1
    detection = report["slice_detection"]
    assert detection["confusion_matrix"] == [[2, 1], [0, 1]]
    assert (detection["accuracy"], detection["sensitivity"]) == (0.75, 1.0)
    assert detection["specificity"] == pytest.approx(2 / 3)
    assert dice_from_counts(0, 0, 0) == 1.0


def test_threshold_for_recall():
    scores = [0.95, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1]
    truth = [1, 1, 0, 1, 1, 0, 0, 0]
    t = threshold_for_recall(scores, truth, 0.75)  # 3 of 4 positives: keep down to 0.6, next lower score 0.4
    assert t == pytest.approx(0.5)
    t_all = threshold_for_recall(scores, truth, 1.0)
    assert t_all == pytest.approx(0.35)
    probs = np.stack([1 - np.asarray(scores), scores], axis=1)
    assert classification_report(probs, truth, ["no", "yes"], t_all)["sensitivity"] == 1.0
    with pytest.raises(ValueError):
        threshold_for_recall(scores, [0] * 8, 0.9)


def test_threshold_balanced():
    # negatives 0.1 0.2 0.5, positives 0.4 0.8 0.9: sensitivity + specificity is 1 + 2/3 between 0.2 and 0.4 and
    # between 0.5 and 0.8, 2/3 + 2/3 between 0.4 and 0.5: of the two best, the middle one in score order (upper)
    scores, truth = [0.1, 0.2, 0.5, 0.4, 0.8, 0.9], [0, 0, 0, 1, 1, 1]
    assert abs(threshold_balanced(scores, truth) - 0.65) < 1e-12
    # a clean separation: the midpoint of the gap
    assert abs(threshold_balanced([0.1, 0.3, 0.7, 0.9], [0, 0, 1, 1]) - 0.5) < 1e-12
    with pytest.raises(ValueError, match="positive and negative"):
        threshold_balanced([0.2, 0.4], [1, 1])
