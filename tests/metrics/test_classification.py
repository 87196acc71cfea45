from __future__ import annotations

import numpy as np
import pytest

from medkit.metrics.classification import (
    classification_report,
    confusion_matrix,
    roc_auc,
    roc_curve,
    slice_mean,
    stack_means,
    stack_scores,
    stack_windows_marked,
)


def test_auc_hand_computed():
    # positives 0.8, 0.4; negatives 0.5, 0.1 -> pairs (0.8>0.5, 0.8>0.1, 0.4<0.5, 0.4>0.1) = 3/4
    assert roc_auc([0.8, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    # a tie counts one half: (1 + 0.5) / 2
    assert roc_auc([0.7, 0.3, 0.3], [1, 1, 0]) == pytest.approx(0.75)
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_roc_curve_ends():
    fpr, tpr, _ = roc_curve([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    assert (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]))


def test_binary_report_hand_computed():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    labels = [0, 0, 1, 1, 1]
    r = classification_report(probs, labels, ["NORMAL", "PNEUMONIA"])
    # predictions 0, 1, 1, 1, 0 -> TN 1, FP 1, TP 2, FN 1
    assert r["confusion_matrix"] == [[1, 1], [1, 2]]
    assert r["n_cases"] == 5
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    assert r["specificity"] == pytest.approx(1 / 2)
    f1_pos = 2 * (2 / 3) * (2 / 3) / (4 / 3)
    f1_neg = 2 * (1 / 2) * (1 / 2) / 1
    assert r["f1_macro"] == pytest.approx((f1_pos + f1_neg) / 2)
    # positives 0.8, 0.7, 0.4 vs negatives 0.1, 0.6: wins 2 + 2 + 1 = 5 of 6
    assert r["auc"] == pytest.approx(5 / 6)


def test_threshold_moves_decisions():
    probs = np.array([[0.7, 0.3], [0.6, 0.4]])
    assert classification_report(probs, [1, 1], ["a", "b"], threshold=0.35)["confusion_matrix"] == [[0, 0], [1, 1]]


def test_multiclass_macro():
    probs = np.eye(3)[[0, 1, 2, 2]] * 0.8 + 0.2 / 3
    r = classification_report(probs, [0, 1, 2, 1], ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert r["per_class"]["c"]["precision"] == pytest.approx(0.5)
    assert confusion_matrix([0, 1, 2, 1], [0, 1, 2, 2], 3).tolist() == r["confusion_matrix"]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="probs must be"):
        classification_report(np.zeros((3, 3)), [0, 1, 0], ["a", "b"])
    with pytest.raises(ValueError, match="labels"):
        classification_report(np.zeros((2, 2)), [0, 1, 1], ["a", "b"])


def test_slice_mean_hand_computed_with_the_ends_repeated():
    np.testing.assert_allclose(slice_mean([0, 0, 0.9, 0, 0], 3), [0, 0.3, 0.3, 0.3, 0])
    np.testing.assert_allclose(slice_mean([1, 0, 0], 3), [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(slice_mean([1, 0, 0, 0], 5), [3 / 5, 2 / 5, 1 / 5, 0])  # 1,1,1,0,0 / 1,1,0,0,0 ...
    np.testing.assert_allclose(slice_mean([0.2, 0.4], 1), [0.2, 0.4])
    np.testing.assert_allclose(slice_mean([0.7], 7), [0.7])
    for bad in (0, 2, -3):
        with pytest.raises(ValueError, match="odd"):
            slice_mean([0.1, 0.2], bad)


def test_stack_scores_orders_each_case_by_slice_and_leaves_lone_slices_alone():
    probs = [0.9, 0.0, 0.3, 0.6, 0.5, 0.8]
    cases = ["A", "A", "A", "", "B", "C"]
    slices = ["3", "1", "2", "", "1", "10"]  # A in slice order: 0.0, 0.3, 0.9
    scores, thresholds, stacked = stack_scores(probs, cases, slices, 0.2, slice_window=3, stack_threshold=0.35)
    np.testing.assert_allclose(scores, [(0.3 + 0.9 + 0.9) / 3, (0.0 + 0.0 + 0.3) / 3, 0.4, 0.6, 0.5, 0.8])
    np.testing.assert_allclose(thresholds, [0.35, 0.35, 0.35, 0.2, 0.2, 0.2])
    assert stacked.tolist() == [True, True, True, False, False, False]
    assert ((scores >= thresholds).tolist()) == [True, False, True, True, True, True]

    plain, same, none = stack_scores(probs, cases, slices, 0.2, slice_window=3, stack_threshold=None)
    np.testing.assert_allclose(plain, probs)
    assert (same == 0.2).all() and not none.any()
    with pytest.raises(ValueError, match="6 probabilities"):
        stack_scores(probs, cases[:2], slices, 0.2)


def test_a_failed_slice_holds_its_place_but_is_never_averaged():
    rng = np.random.default_rng(3)
    probs = rng.random(10)
    cases, slices = ["p"] * 10, list(range(1, 11))
    complete, _ = stack_means(probs, cases, slices, 7)
    failed = [n == 5 for n in slices]  # slice 5 unreadable: its placeholder probability must not count
    junk = np.where(failed, 0.99, probs)
    means, stacked = stack_means(junk, cases, slices, 7, failed)
    assert stacked.tolist() == [not f for f in failed]
    untouched = [i for i, n in enumerate(slices) if abs(n - 5) > 3]  # windows without slice 5: exactly as complete
    assert untouched == [0, 8, 9] and means[untouched].tolist() == complete[untouched].tolist()
    # slice 4's window 1..7: slice 5 is replaced by the nearest readable slice towards 4 (itself), as at an end
    assert means[3] == pytest.approx(probs[[0, 1, 2, 3, 3, 5, 6]].mean())
    # slice 6's window 3..9: 5 -> 6
    assert means[5] == pytest.approx(probs[[2, 3, 5, 5, 6, 7, 8]].mean())
    # the placeholder's value changes nothing
    again, _ = stack_means(np.where(failed, 0.0, probs), cases, slices, 7, failed)
    assert again[~np.asarray(failed)].tolist() == means[~np.asarray(failed)].tolist()
    # a case left with one readable slice is a lone slice
    lone, lone_stacked = stack_means([0.2, 0.9], ["q", "q"], [1, 2], 3, [False, True])
    assert lone[0] == 0.2 and not lone_stacked.any()
    scores, thresholds, stacked2 = stack_scores(junk, cases, slices, 0.1, 7, 0.5, failed)
    assert scores[~np.asarray(failed)].tolist() == means[~np.asarray(failed)].tolist()
    with pytest.raises(ValueError, match="failed flags"):
        stack_means(probs, cases, slices, 7, failed[:3])


def test_windows_holding_a_marked_slice_are_flagged():
    cases, slices = ["p"] * 9 + ["", "q"], [*range(1, 10), 0, 1]
    marked = [n == 5 for n in range(1, 10)] + [False, False]
    flags = stack_windows_marked(cases, slices, 5, marked)
    assert flags.tolist() == [False, False, True, True, True, True, True, False, False, False, False]
    assert stack_windows_marked(cases, slices, 1, marked).tolist() == marked
    with pytest.raises(ValueError, match="flags"):
        stack_windows_marked(cases, slices, 3, marked[:2])
