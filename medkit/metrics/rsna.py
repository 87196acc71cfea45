"""The RSNA 2023 Abdominal Trauma Detection score: sample-weighted log loss over five organ targets and any_injury.

One definition serves the metric (float64, clipped like scikit-learn's ``log_loss``) and the training loss (the
same expression on a batch, differentiable), so the network is trained on exactly what it is scored by.

Layout: labels are ``(N, 5)`` integers in ``TARGETS`` order (bowel, extravasation: 0 healthy / 1 injury; kidney,
liver, spleen: 0 healthy / 1 low / 2 high); predictions are ``(N, 13)``, the targets' classes side by side in
``SUBMISSION_COLUMNS`` order (as in the competition's ``sample_submission.csv``), as probabilities or logits.

The competition's definition (its published ``score`` function): each target's columns are renormalised to sum
to one, then scored by log loss weighted per sample (healthy 1; low 2, high 4; bowel injury 2; extravasation
injury 6); ``any_injury`` is derived from labels and predictions alike as ``max over targets of 1 - p(healthy)``
and scored by binary log loss weighted 1 (no injury) / 6 (injury); the score is the mean of the six losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ignite.metrics import Metric

__all__ = [
    "TARGETS",
    "TARGET_NAMES",
    "SUBMISSION_COLUMNS",
    "CLASS_WEIGHTS",
    "ANY_INJURY_WEIGHTS",
    "target_slices",
    "group_probabilities",
    "weighted_log_loss",
    "rsna_score",
    "prior_probabilities",
    "best_constant",
    "rsna_report",
    "RSNAScore",
]

TARGETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bowel", ("healthy", "injury")),
    ("extravasation", ("healthy", "injury")),
    ("kidney", ("healthy", "low", "high")),
    ("liver", ("healthy", "low", "high")),
    ("spleen", ("healthy", "low", "high")),
)
TARGET_NAMES: tuple[str, ...] = tuple(name for name, _ in TARGETS)
SUBMISSION_COLUMNS: tuple[str, ...] = tuple(f"{name}_{cls}" for name, classes in TARGETS for cls in classes)
# sample weight of each class of each target, and of any_injury (no injury, injury)
CLASS_WEIGHTS: dict[str, tuple[float, ...]] = {
    "bowel": (1.0, 2.0),
    "extravasation": (1.0, 6.0),
    "kidney": (1.0, 2.0, 4.0),
    "liver": (1.0, 2.0, 4.0),
    "spleen": (1.0, 2.0, 4.0),
}
ANY_INJURY_WEIGHTS: tuple[float, float] = (1.0, 6.0)
EPS = 1e-15  # scikit-learn's log_loss clip in the competition's days


def target_slices() -> dict[str, slice]:
    """Each target's columns in the 13-column prediction layout."""
    out, start = {}, 0
    for name, classes in TARGETS:
        out[name] = slice(start, start + len(classes))
        start += len(classes)
    return out


def _check(pred: torch.Tensor, labels: torch.Tensor) -> None:
    n_cols = len(SUBMISSION_COLUMNS)
    if pred.ndim != 2 or pred.shape[1] != n_cols:
        raise ValueError(f"predictions must be (N, {n_cols}), got {tuple(pred.shape)}")
    if labels.ndim != 2 or labels.shape != (pred.shape[0], len(TARGETS)):
        raise ValueError(
            f"labels must be (N, {len(TARGETS)}) matching {pred.shape[0]} predictions, got {tuple(labels.shape)}"
        )


def group_probabilities(pred: torch.Tensor, logits: bool = False) -> dict[str, torch.Tensor]:
    """Per target, ``(N, classes)`` probabilities: softmax of logits, or the given values renormalised to sum 1."""
    out = {}
    for name, cols in target_slices().items():
        part = pred[:, cols]
        out[name] = torch.softmax(part, dim=1) if logits else part / part.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return out


def weighted_log_loss(
    pred: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, logits: bool = False, eps: float = EPS
) -> dict[str, torch.Tensor]:
    """The six weighted log losses and their mean (``"score"``), as tensors (differentiable in ``pred``).

    Args:
        pred: ``(N, 13)`` probabilities (renormalised per target) or, with ``logits``, scores (softmax per target).
        labels: ``(N, 5)`` class indices in ``TARGETS`` order.
        logits: whether ``pred`` holds logits.
        eps: probabilities are clipped to ``[eps, 1 - eps]`` before the log.

    Returns:
        ``{"bowel", "extravasation", "kidney", "liver", "spleen", "any_injury", "score"}``.
    """
    pred = torch.as_tensor(pred)
    labels = torch.as_tensor(labels, device=pred.device).long()
    _check(pred, labels)
    if not pred.is_floating_point():
        pred = pred.double()
    probs = group_probabilities(pred, logits)
    losses: dict[str, torch.Tensor] = {}
    healthy_true, healthy_pred = [], []
    for k, (name, _) in enumerate(TARGETS):
        p = probs[name].clamp(eps, 1 - eps)
        p = p / p.sum(dim=1, keepdim=True)  # scikit-learn renormalises after clipping
        y = labels[:, k]
        w = torch.as_tensor(CLASS_WEIGHTS[name], dtype=p.dtype, device=p.device)[y]
        losses[name] = -(w * torch.log(p.gather(1, y[:, None])[:, 0])).sum() / w.sum()
        healthy_true.append((y == 0).to(p.dtype))
        healthy_pred.append(probs[name][:, 0])
    any_true = (1 - torch.stack(healthy_true, dim=1)).amax(dim=1)
    any_pred = (1 - torch.stack(healthy_pred, dim=1)).amax(dim=1).clamp(eps, 1 - eps)
    w_any = torch.where(any_true > 0, ANY_INJURY_WEIGHTS[1], ANY_INJURY_WEIGHTS[0]).to(any_pred.dtype)
    bce = -(any_true * torch.log(any_pred) + (1 - any_true) * torch.log(1 - any_pred))
    losses["any_injury"] = (w_any * bce).sum() / w_any.sum()
    losses["score"] = torch.stack(list(losses.values())).mean()
    return losses


def rsna_score(pred: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, logits: bool = False) -> float:
    """The competition score (lower is better) in float64."""
    pred_t = torch.as_tensor(pred).detach().double()
    return float(weighted_log_loss(pred_t, labels, logits=logits)["score"])


def prior_probabilities(labels: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """The prior-probability baseline: each target's class frequencies in ``labels``, as one 13-column row."""
    labels = np.asarray(labels, dtype=np.int64)
    row = []
    for k, (_, classes) in enumerate(TARGETS):
        counts = np.bincount(labels[:, k], minlength=len(classes)).astype(np.float64)
        row.extend((counts + 1e-6) / (counts.sum() + 1e-6 * len(classes)))
    return np.asarray(row)


def best_constant(labels: np.ndarray | Sequence[Sequence[int]], steps: int = 400) -> np.ndarray:
    """The one 13-column prediction that minimises the weighted score on ``labels`` (a stronger baseline than
    the class frequencies, because the sample weights reward predicting injuries more often than they occur).

    A model whose score is near this constant's has learnt the label balance, not the images.
    """
    labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    prior = torch.as_tensor(prior_probabilities(labels_t.numpy()))
    logits = torch.log(prior).float()[None].requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = weighted_log_loss(logits.expand(len(labels_t), -1), labels_t, logits=True, eps=1e-7)["score"]
        loss.backward()
        optimizer.step()
    return torch.cat(list(group_probabilities(logits.detach().double(), logits=True).values()), dim=1)[0].numpy()


def _auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    from medkit.metrics.classification import roc_auc

    if positive.all() or not positive.any():
        return None
    return float(roc_auc(scores, positive.astype(np.int64)))


def rsna_report(pred: np.ndarray, labels: np.ndarray, logits: bool = False) -> dict:
    """``n_cases``, ``weighted_log_loss`` with its six parts, and per-target injury AUC (``None`` without both kinds).

    A target's AUC ranks cases by ``1 - p(healthy)`` against "injured at any grade"; ``auc_any_injury`` uses the
    derived any-injury probability. Kidney/liver/spleen also get ``auc_<target>_high`` (high grade against the rest).
    """
    pred_t = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    labels = np.asarray(labels, dtype=np.int64)
    losses = weighted_log_loss(pred_t, labels, logits=logits)
    probs = {k: v.numpy() for k, v in group_probabilities(pred_t, logits).items()}
    report: dict = {
        "n_cases": int(labels.shape[0]),
        "weighted_log_loss": float(losses["score"]),
        **{f"log_loss_{k}": float(v) for k, v in losses.items() if k != "score"},
    }
    injured = np.stack([labels[:, k] > 0 for k in range(len(TARGETS))], axis=1)
    for k, (name, classes) in enumerate(TARGETS):
        report[f"auc_{name}"] = _auc(1 - probs[name][:, 0], injured[:, k])
        if len(classes) == 3:
            report[f"auc_{name}_high"] = _auc(probs[name][:, 2], labels[:, k] == 2)
    any_pred = np.max(np.stack([1 - probs[name][:, 0] for name in TARGET_NAMES], axis=1), axis=1)
    report["auc_any_injury"] = _auc(any_pred, injured.any(axis=1))
    report["prevalence"] = {name: float(injured[:, k].mean()) for k, name in enumerate(TARGET_NAMES)}
    return report


class RSNAScore(Metric):
    """Ignite metric: the competition score (lower is better) over an epoch of ``(pred, label)`` pairs.

    ``pred`` are per-target probabilities (``(13,)`` per item, after ``medkit.transforms.rsna_postprocessing``),
    ``label`` the ``(5,)`` class indices.
    """

    def reset(self) -> None:
        self._pred: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, output) -> None:
        pred, labels = output
        for p, y in zip(pred, labels):
            self._pred.append(torch.as_tensor(p).detach().cpu().double().reshape(-1))
            self._labels.append(torch.as_tensor(y).detach().cpu().long().reshape(-1))

    def compute(self) -> float:
        if not self._pred:
            raise ValueError("RSNAScore needs at least one item before compute()")
        return rsna_score(torch.stack(self._pred), torch.stack(self._labels))
