"""The RSNA 2023 score against hand-computed values and against the competition's published definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medkit.metrics.rsna import (
    SUBMISSION_COLUMNS,
    best_constant,
    prior_probabilities,
    rsna_report,
    rsna_score,
    weighted_log_loss,
)


def _one_row(bowel=(0.9, 0.1), extra=(0.8, 0.2), kidney=(0.7, 0.2, 0.1), liver=(0.6, 0.3, 0.1), spleen=(0.5, 0.3, 0.2)):
    return [*bowel, *extra, *kidney, *liver, *spleen]


def test_hand_computed_two_patients():
    pred = np.array([_one_row(), _one_row(bowel=(0.2, 0.6), spleen=(0.1, 0.1, 0.8))])  # bowel row 2 sums to 0.8
    labels = np.array([[0, 0, 0, 0, 0], [1, 0, 0, 0, 2]])
    out = {k: float(v) for k, v in weighted_log_loss(pred, labels).items()}
    # bowel: weights 1 and 2; row 2 renormalised to (0.25, 0.75)
    assert out["bowel"] == pytest.approx((-math.log(0.9) - 2 * math.log(0.75)) / 3)
    assert out["extravasation"] == pytest.approx(-math.log(0.8))
    assert out["kidney"] == pytest.approx(-math.log(0.7))
    assert out["liver"] == pytest.approx(-math.log(0.6))
    assert out["spleen"] == pytest.approx((-math.log(0.5) - 4 * math.log(0.8)) / 5)
    # any_injury: truth (0, 1), prediction max(1 - p_healthy) = (0.5, 0.9) [spleen 0.5, then bowel 0.75 / spleen 0.9]
    assert out["any_injury"] == pytest.approx((-math.log(0.5) - 6 * math.log(0.9)) / 7)
    parts = [out[k] for k in ("bowel", "extravasation", "kidney", "liver", "spleen", "any_injury")]
    assert out["score"] == pytest.approx(sum(parts) / 6)
    assert rsna_score(pred, labels) == pytest.approx(out["score"])


def _competition_score(solution, submission):
    """The competition's published metric (Kaggle "rsna-2023-abdominal-trauma-detection" score), verbatim in logic."""
    import pandas as pd
    import sklearn.metrics

    def normalize_probabilities_to_one(df, group_columns):
        row_totals = df[group_columns].sum(axis=1)
        if row_totals.min() == 0:
            raise ValueError("All rows must contain at least one non-zero prediction")
        for col in group_columns:
            df[col] /= row_totals
        return df

    binary_targets = ["bowel", "extravasation"]
    triple_level_targets = ["kidney", "liver", "spleen"]
    all_target_categories = binary_targets + triple_level_targets
    label_group_losses = []
    for category in all_target_categories:
        if category in binary_targets:
            col_group = [f"{category}_healthy", f"{category}_injury"]
        else:
            col_group = [f"{category}_healthy", f"{category}_low", f"{category}_high"]
        solution = normalize_probabilities_to_one(solution, col_group)
        submission = normalize_probabilities_to_one(submission, col_group)
        label_group_losses.append(
            sklearn.metrics.log_loss(
                y_true=solution[col_group].values,
                y_pred=submission[col_group].values,
                sample_weight=solution[f"{category}_weight"].values,
            )
        )
    healthy_cols = [x + "_healthy" for x in all_target_categories]
    any_injury_labels = (1 - solution[healthy_cols]).max(axis=1)
    any_injury_predictions = (1 - submission[healthy_cols]).max(axis=1)
    any_injury_loss = sklearn.metrics.log_loss(
        y_true=any_injury_labels.values,
        y_pred=any_injury_predictions.values,
        sample_weight=solution["any_injury_weight"].values,
    )
    label_group_losses.append(any_injury_loss)
    assert isinstance(pd.DataFrame, type)
    return np.mean(label_group_losses)


def _solution_table(labels):
    """train.csv-style one-hot rows plus the competition's sample weights (its create_training_solution)."""
    import pandas as pd

    one_hot = np.zeros((len(labels), len(SUBMISSION_COLUMNS)))
    offsets = [0, 2, 4, 7, 10]
    for k, off in enumerate(offsets):
        one_hot[np.arange(len(labels)), off + labels[:, k]] = 1
    sol = pd.DataFrame(one_hot, columns=list(SUBMISSION_COLUMNS))
    sol["any_injury"] = (labels > 0).any(axis=1).astype(int)
    sol["bowel_weight"] = np.where(sol["bowel_injury"] == 1, 2, 1)
    sol["extravasation_weight"] = np.where(sol["extravasation_injury"] == 1, 6, 1)
    for organ in ("kidney", "liver", "spleen"):
        sol[f"{organ}_weight"] = np.where(sol[f"{organ}_low"] == 1, 2, np.where(sol[f"{organ}_high"] == 1, 4, 1))
    sol["any_injury_weight"] = np.where(sol["any_injury"] == 1, 6, 1)
    return sol


def test_matches_the_competition_definition():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    n = 200
    labels = np.stack(
        [
            rng.integers(0, 2, n),
            rng.integers(0, 2, n),
            rng.integers(0, 3, n),
            rng.integers(0, 3, n),
            rng.integers(0, 3, n),
        ],
        axis=1,
    )
    labels[:40] = 0  # some patients without any injury
    pred = rng.uniform(0.01, 1.0, (n, len(SUBMISSION_COLUMNS)))  # unnormalised, as submissions may be
    expected = _competition_score(_solution_table(labels), pd.DataFrame(pred.copy(), columns=list(SUBMISSION_COLUMNS)))
    assert rsna_score(pred, labels) == pytest.approx(expected, rel=1e-9)
    # the prior baseline scored the same way
    prior = np.repeat(prior_probabilities(labels)[None], n, axis=0)
    expected_prior = _competition_score(_solution_table(labels), pd.DataFrame(prior, columns=list(SUBMISSION_COLUMNS)))
    assert rsna_score(prior, labels) == pytest.approx(expected_prior, rel=1e-9)


def test_logits_loss_is_differentiable_and_matches_probabilities():
    torch.manual_seed(0)
    logits = torch.randn(6, 13, requires_grad=True)
    labels = torch.tensor([[0, 1, 2, 0, 1]] * 3 + [[0, 0, 0, 0, 0]] * 3)
    loss = weighted_log_loss(logits, labels, logits=True, eps=1e-7)["score"]
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    probs = torch.cat(
        [
            torch.softmax(logits.detach()[:, s], 1)
            for s in (slice(0, 2), slice(2, 4), slice(4, 7), slice(7, 10), slice(10, 13))
        ],
        1,
    )
    assert rsna_score(probs, labels) == pytest.approx(float(loss), rel=1e-5)


def test_prior_baseline_and_report():
    labels = np.array([[0, 0, 0, 0, 0]] * 6 + [[1, 1, 2, 1, 0]] * 2)
    prior = prior_probabilities(labels)
    assert prior[:2] == pytest.approx([0.75, 0.25], abs=1e-5) and prior[4:7] == pytest.approx([0.75, 0, 0.25], abs=1e-5)
    perfect = np.array(
        [[1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]] * 6 + [[0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0]] * 2, float
    )
    report = rsna_report(perfect, labels)
    assert report["n_cases"] == 8 and report["weighted_log_loss"] < 1e-6
    assert report["auc_bowel"] == 1.0 and report["auc_any_injury"] == 1.0 and report["auc_spleen"] is None
    constant = rsna_report(np.repeat(prior[None], 8, 0), labels)
    assert constant["auc_bowel"] == 0.5 and constant["weighted_log_loss"] > 0.3


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"predictions must be \(N, 13\)"):
        weighted_log_loss(np.ones((2, 12)), np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="labels must be"):
        weighted_log_loss(np.ones((2, 13)), np.zeros((3, 5), int))


def test_best_constant_beats_the_frequencies_under_the_weights():
    rng = np.random.default_rng(1)
    labels = np.zeros((300, 5), dtype=np.int64)
    labels[:20, 1] = 1  # extravasation, weight 6
    labels[20:60, 4] = rng.integers(1, 3, 40)  # spleen low/high
    labels[60:70, 0] = 1
    prior, best = prior_probabilities(labels), best_constant(labels)
    n = len(labels)
    assert rsna_score(np.repeat(best[None], n, 0), labels) < rsna_score(np.repeat(prior[None], n, 0), labels) - 0.02
    assert best[3] > prior[3]  # extravasation injury predicted more often than it occurs
    assert [float(p.sum()) for p in np.split(best, [2, 4, 7, 10])] == pytest.approx([1.0] * 5)
