"""Classification figures computed from probabilities and labels: accuracy, ROC AUC, F1, sensitivity, specificity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "roc_curve",
    "roc_auc",
    "confusion_matrix",
    "classification_report",
    "predict_labels",
    "slice_mean",
    "slice_order",
    "stack_means",
    "stack_scores",
    "stack_windows_marked",
    "threshold_balanced",
    "threshold_for_recall",
]


def _check(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(truth).ravel().astype(bool)
    if scores.shape != truth.shape:
        raise ValueError(f"scores and truth must have the same length, got {scores.shape} and {truth.shape}")
    return scores, truth


def roc_auc(scores: Sequence[float], truth: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted as half); NaN if one class is absent."""
    scores, truth = _check(np.asarray(scores), np.asarray(truth))
    n_pos, n_neg = truth.sum(), (~truth).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(scores: Sequence[float], truth: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (descending), starting at (0, 0)."""
    scores, truth = _check(np.asarray(scores), np.asarray(truth))
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    distinct = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tps = np.cumsum(truth)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(truth.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~truth).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, scores[distinct]]


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=int), np.asarray(preds, dtype=int)), 1)
    return cm


def predict_labels(probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class per row: argmax, or for two classes ``probs[:, 1] >= threshold`` when a threshold is given."""
    probs = np.asarray(probs)
    if threshold is not None and probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).astype(int)
    return probs.argmax(axis=1)


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def classification_report(
    probs: np.ndarray, labels: Sequence[int], class_names: Sequence[str], threshold: float | None = None
) -> dict:
    """Figures of a classifier's probabilities against integer labels.

    For two classes, the second class is the positive one: ``sensitivity`` is its recall and
    ``specificity`` the first class's recall, and ``auc`` is the AUC of its probability. For more
    classes, ``auc`` is the macro one-vs-rest AUC and ``sensitivity``/``specificity`` are macro averages
    of the per-class one-vs-rest values.

    Args:
        probs: ``(N, C)`` class probabilities.
        labels: ``N`` integer labels in ``0..C-1``.
        class_names: ``C`` names.
        threshold: decision threshold on the positive class (two classes only); argmax when ``None``.

    Returns:
        dict with ``n_cases``, ``accuracy``, ``auc``, ``f1_macro``, ``sensitivity``, ``specificity``,
        ``confusion_matrix`` (rows: truth), ``per_class`` (precision, recall, f1, specificity, auc, support).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    n_classes = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(f"probs must be (N, {n_classes}), got {probs.shape}")
    if probs.shape[0] != labels.shape[0]:
        raise ValueError(f"{probs.shape[0]} predictions but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}")
    preds = predict_labels(probs, threshold)
    cm = confusion_matrix(labels, preds, n_classes)
    total = cm.sum()
    per_class = {}
    for c, name in enumerate(class_names):
        tp = cm[c, c]
        fp = cm[:, c].sum() - tp
        fn = cm[c, :].sum() - tp
        tn = total - tp - fp - fn
        precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": _safe_div(2 * precision * recall, precision + recall),
            "specificity": _safe_div(tn, tn + fp),
            "auc": roc_auc(probs[:, c], labels == c),
            "support": int(cm[c, :].sum()),
        }
    stats = list(per_class.values())
    if n_classes == 2:
        auc = stats[1]["auc"]
        sensitivity, specificity = stats[1]["recall"], stats[0]["recall"]
    else:
        aucs = [s["auc"] for s in stats if not np.isnan(s["auc"])]
        auc = float(np.mean(aucs)) if aucs else float("nan")
        sensitivity = float(np.mean([s["recall"] for s in stats]))
        specificity = float(np.mean([s["specificity"] for s in stats]))
    return {
        "n_cases": int(total),
        "accuracy": _safe_div(np.trace(cm), total),
        "auc": auc,
        "f1_macro": float(np.mean([s["f1"] for s in stats])),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "threshold": threshold,
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
    }


def threshold_for_recall(scores: Sequence[float], truth: Sequence[int], recall: float) -> float:
    """The highest threshold on ``scores`` whose recall of the positives (``score >= threshold``) reaches ``recall``.

    The highest such threshold keeps the most specificity. Returned as the midpoint between the score that
    must still count as positive and the next lower score, so that it does not sit exactly on a case.

    Raises:
        ValueError: ``recall`` outside ``(0, 1]`` or no positive case.
    """
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must be in (0, 1], got {recall}")
    scores_a, truth_a = _check(np.asarray(scores, dtype=np.float64), np.asarray(truth).astype(bool))
    positives = np.sort(scores_a[truth_a])[::-1]
    if positives.size == 0:
        raise ValueError("no positive case: cannot pick a threshold for recall")
    k = int(np.ceil(recall * positives.size - 1e-9))  # positives that must score at or above the threshold
    lowest_kept = positives[k - 1]
    below = scores_a[scores_a < lowest_kept]
    return float((lowest_kept + below.max()) / 2) if below.size else float(lowest_kept)


def threshold_balanced(scores: Sequence[float], truth: Sequence[int]) -> float:
    """The threshold on ``scores`` with the largest sensitivity + specificity (Youden's J; ``score >= threshold`` is
    positive), for a validation unlike the training data, where the prior a recall target encodes may not hold.

    Every midpoint between neighbouring distinct scores is a candidate, so the threshold does not sit on a case; of
    equally good ones, the middle one (in score order) is taken.

    Raises:
        ValueError: ``truth`` lacks positives or negatives.
    """
    scores_a, truth_a = _check(np.asarray(scores, dtype=np.float64), np.asarray(truth).astype(bool))
    if truth_a.all() or not truth_a.any():
        raise ValueError("a balanced threshold needs positive and negative cases")
    values = np.unique(scores_a)
    if values.size == 1:
        return float(values[0])
    mids = (values[:-1] + values[1:]) / 2
    pos, neg = np.sort(scores_a[truth_a]), np.sort(scores_a[~truth_a])
    sensitivity = 1.0 - np.searchsorted(pos, mids, side="left") / pos.size  # share of positives >= mid
    specificity = np.searchsorted(neg, mids, side="left") / neg.size  # share of negatives < mid
    j = sensitivity + specificity
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(mids[best[len(best) // 2]])


def slice_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Moving mean of one case's per-slice values (in slice order) over ``window`` slices centred on each slice;
    the end slices are repeated beyond the ends, so every slice averages ``window`` values."""
    values = np.asarray(values, dtype=np.float64).ravel()
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of slices >= 1, got {window}")
    if window == 1 or values.size < 2:
        return values.copy()
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, np.full(window, 1.0 / window), mode="valid")


def slice_order(value, fallback: int) -> int:
    """An item's slice number for ordering a case's slices; ``fallback`` (e.g. its arrival index) when it has none."""
    return int(value) if str(value).isdigit() else fallback


def averages_stacks(slice_window: int, stack_threshold: float | None) -> bool:
    """Whether slices of a stack are decided on the mean over ``slice_window`` slices (see ``stack_scores``)."""
    return int(slice_window) > 1 and stack_threshold is not None


def _case_groups(cases: Sequence[str], slices: Sequence[int | str]) -> list[list[int]]:
    """Indices of each case's items (cases in order of first arrival), in slice order (non-numbers: input order)."""
    groups: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        if case:
            groups.setdefault(str(case), []).append(i)
    for indices in groups.values():
        indices.sort(key=lambda i: (slice_order(slices[i], -1), i))
    return list(groups.values())


def _window_positions(position: int, size: int, window: int, failed: np.ndarray) -> list[int]:
    """Positions of the ``window`` slices centred on ``position`` among ``size`` ordered slices: beyond the ends the
    end slice, and in place of a failed slice the nearest readable one towards ``position``."""
    out = []
    for offset in range(-(window // 2), window // 2 + 1):
        q = min(max(position + offset, 0), size - 1)
        step = 1 if q < position else -1
        while failed[q]:
            q += step
        out.append(q)
    return out


def stack_means(
    probs: Sequence[float],
    cases: Sequence[str],
    slices: Sequence[int | str],
    slice_window: int,
    failed: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(means, stacked)``: each slice of a stack (a case with more than one readable slice) gets the mean of the
    ``slice_window`` slices centred on it (``slice_mean``, its case's slices ordered by number; non-numbers keep the
    input order), other slices their own value; ``stacked`` marks the former.

    ``failed`` marks slices that could not be read: they keep their place in their case's order, but their value
    (a placeholder's) is never used: in a window it is replaced by the nearest readable slice towards the window's
    centre, as the end slice stands for the slices beyond the ends. They are not ``stacked``. Windows without a
    failed slice get exactly the means they get when every slice is read."""
    means = np.asarray(probs, dtype=np.float64).ravel().copy()
    if not (len(cases) == len(slices) == means.size):
        raise ValueError(f"{means.size} probabilities, {len(cases)} cases and {len(slices)} slice numbers")
    bad = np.zeros(means.size, dtype=bool) if failed is None else np.asarray(failed, dtype=bool).ravel()
    if bad.size != means.size:
        raise ValueError(f"{means.size} probabilities and {bad.size} failed flags")
    stacked = np.zeros(means.size, dtype=bool)
    for indices in _case_groups(cases, slices):
        values, gone = means[indices], bad[indices]
        if int((~gone).sum()) < 2:
            continue
        smoothed = slice_mean(np.where(gone, 0.0, values), slice_window)
        if gone.any():
            kernel = np.full(int(slice_window), 1.0 / int(slice_window))
            none_failed = np.zeros_like(gone)
            for p in np.flatnonzero(~gone):
                positions = _window_positions(int(p), len(indices), int(slice_window), gone)
                if positions != _window_positions(int(p), len(indices), int(slice_window), none_failed):
                    smoothed[p] = np.convolve(values[positions], kernel, mode="valid")[0]
        keep = np.asarray(indices)[~gone]
        means[keep] = smoothed[~gone]
        stacked[keep] = True
    return means, stacked


def stack_windows_marked(
    cases: Sequence[str], slices: Sequence[int | str], slice_window: int, marked: Sequence[bool]
) -> np.ndarray:
    """Per slice, whether a ``marked`` slice (e.g. one that could not be read) of its case lies in the
    ``slice_window`` slices centred on it (``stack_means``' windows, the slice itself included); slices without a
    case only look at themselves."""
    flags = np.asarray(marked, dtype=bool).ravel()
    if not (len(cases) == len(slices) == flags.size):
        raise ValueError(f"{flags.size} flags, {len(cases)} cases and {len(slices)} slice numbers")
    out = flags.copy()
    half = int(slice_window) // 2
    for indices in _case_groups(cases, slices):
        ordered = flags[indices]
        for p, i in enumerate(indices):
            out[i] = bool(ordered[max(p - half, 0) : p + half + 1].any())
    return out


def stack_scores(
    probs: Sequence[float],
    cases: Sequence[str],
    slices: Sequence[int | str],
    threshold: float,
    slice_window: int = 1,
    stack_threshold: float | None = None,
    failed: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decision score and threshold of each slice, with a patient's neighbouring slices taken into account.

    A tumour spans consecutive slices, so a slice of a stack (a case with more than one slice) is scored by the
    mean positive probability of the ``slice_window`` slices centred on it (``stack_means``) and decided against
    ``stack_threshold``, a threshold tuned on such means. Lone slices (no case, or the only slice of theirs) keep
    their own probability and ``threshold``; so does everything when ``slice_window`` is 1 or there is no
    ``stack_threshold``.

    Args:
        probs: positive-class probability per slice, in any order.
        cases: case (patient) of each slice; ``""`` for none.
        slices: slice number of each slice (orders a case's slices; non-numbers keep the input order).
        threshold: threshold of a lone slice's own probability.
        slice_window: odd number of slices averaged.
        stack_threshold: threshold of the mean over ``slice_window`` slices.
        failed: slices that could not be read (their probability a placeholder's): they hold their place in their
            stack but their probability is never averaged (``stack_means``); their own score means nothing.

    Returns:
        ``(scores, thresholds, stacked)``: per slice its score, the threshold it is decided against, and whether
        it was scored as part of a stack; a slice is positive when ``score >= threshold``.
    """
    averaged = averages_stacks(slice_window, stack_threshold)
    scores, stacked = stack_means(probs, cases, slices, slice_window if averaged else 1, failed)
    if not averaged:
        stacked[:] = False
        return scores, np.full(scores.size, float(threshold)), stacked
    return scores, np.where(stacked, float(stack_threshold), float(threshold)), stacked
