"""Fit the classification heads of an ``EvidenceClassifier`` on patients its segmenter did not train on."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from medkit.losses.rsna import RSNAWeightedLoss
from medkit.metrics.rsna import weighted_log_loss

__all__ = ["collect_evidence", "fit_evidence_heads", "patient_folds"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def collect_evidence(
    network: torch.nn.Module, batches: Iterable[dict], device: Any = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(features (N, F), labels (N, targets), patients)`` of every item: the segmenter's evidence, the per-target
    labels and the ``patient`` key (the item's index where there is none); features and labels on the CPU, where
    the heads are fitted (a GPU data cache hands over labels on the GPU)."""
    network.eval()
    features, labels, patients = [], [], []
    for batch in batches:
        image = torch.as_tensor(batch["image"]).to(device)
        features.append(network.evidence(network.segment(image)).cpu())
        labels.append(torch.as_tensor(batch["label"]).long().reshape(image.shape[0], -1).cpu())
        names = batch.get("patient")
        start = len(patients)
        patients += [str(p) for p in names] if names is not None else [f"#{start + i}" for i in range(image.shape[0])]
    if not features:
        raise ValueError("no items to fit the heads on (empty data loader: is the split empty?)")
    return torch.cat(features), torch.cat(labels), patients


def patient_folds(patients: Sequence[str], folds: int) -> list[torch.Tensor]:
    """``folds`` boolean masks over the items, each holding whole patients (dealt round-robin in sorted order)."""
    order = sorted(set(patients))
    fold_of = {p: i % folds for i, p in enumerate(order)}
    which = torch.tensor([fold_of[p] for p in patients])
    return [which == k for k in range(folds)]


#: per head: (its feature indices, its classes)
_Heads = Sequence[tuple[torch.Tensor, int]]


def _fit(
    z: torch.Tensor, y: torch.Tensor, heads: _Heads, weight_decay: float, steps: int, lr: float, any_weight: float
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per head ``(weight, bias)``, fitted by full-batch Adam from the class frequencies (zero weights, log-prior
    biases)."""
    params = []
    for i, (index, n) in enumerate(heads):
        counts = torch.bincount(y[:, i].clamp(min=0), minlength=n)[:n].float()
        bias = torch.log((counts + 1.0) / (counts.sum() + n))
        params.append((torch.zeros(n, len(index), requires_grad=True), bias.clone().requires_grad_(True)))
    optimiser = torch.optim.Adam([t for pair in params for t in pair], lr=lr)
    loss_fn = RSNAWeightedLoss(any_weight=any_weight)
    for _ in range(steps):
        optimiser.zero_grad()
        penalty = sum((w**2).sum() for w, _ in params)
        loss = loss_fn(_logits(z, heads, params), y) + weight_decay * penalty
        loss.backward()
        optimiser.step()
    return [(w.detach(), b.detach()) for w, b in params]


def _logits(z: torch.Tensor, heads: _Heads, params: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    return torch.cat([z[:, index] @ w.T + b for (index, _), (w, b) in zip(heads, params)], dim=1)


def _score(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float(weighted_log_loss(logits, y, logits=True)["score"])


def _load_segmenter(network: torch.nn.Module, path: str) -> None:
    """Load the segmenter's tensors of a checkpoint of the whole network, strictly (heads are refitted anyway).

    Raises:
        MedkitError: the checkpoint's segmenter does not fit the network's.
    """
    from medkit.errors import MedkitError
    from medkit.networks.weights import load_pretrained

    try:
        load_pretrained(network.segmenter, path, strict=True, prefix="segmenter.")
    except MedkitError as e:
        raise MedkitError(f"{e} (segmenter weights)") from None


def _whole(batches: Any) -> Any:
    """A data loader over every item of ``batches``' dataset (without its ``DistributedSampler``'s share)."""
    from monai.data import DataLoader

    dataset = getattr(batches, "dataset", None)
    return batches if dataset is None else DataLoader(dataset, batch_size=batches.batch_size, shuffle=False)


def fit_evidence_heads(
    network: torch.nn.Module,
    batches: Iterable[dict],
    checkpoint: str | os.PathLike | None = None,
    save_to: str | os.PathLike | None = None,
    device: Any = "cpu",
    steps: int = 500,
    learning_rate: float = 0.05,
    weight_decay: float | Sequence[float] = (0.003, 0.01, 0.03, 0.1, 0.3),
    folds: int = 5,
    any_weight: float = 1.0,
) -> dict[str, Any]:
    """Fit the heads of ``network`` (a ``medkit.networks.EvidenceClassifier``) to the RSNA weighted log loss.

    The segmenter is frozen: its evidence is computed once per item and standardised (the network's
    ``feature_mean`` / ``feature_std`` are set from these items). Every head is a logistic regression started
    from the class frequencies and fitted by full-batch Adam to ``RSNAWeightedLoss`` plus ``weight_decay`` x the
    squared weights. Given several ``weight_decay`` values, the one with the best out-of-fold score over
    ``folds`` patient-grouped folds of these items is used for the final fit on all of them. Fit on patients
    the segmenter did not see (the validation split): on its own training patients the evidence is too clean.

    Args:
        network: the network, its segmenter trained.
        batches: batches with ``image``, per-target ``label`` and, for the folds, ``patient`` (a data loader).
        checkpoint: load these weights first (the training's best checkpoint) when the file exists.
        save_to: write the whole network's state dict here afterwards (atomically; may equal ``checkpoint``).
        device: where the segmenter runs.
        steps: optimisation steps per fit.
        learning_rate: Adam step size.
        weight_decay: L2 penalty on the head weights (not the biases), or candidates to choose from.
        folds: folds of the choice (at least 2; fewer patients than folds: as many folds as patients; a single
            patient: no choice, the middle candidate).
        any_weight: weight of the any_injury term of the loss.

    Returns:
        ``{"n_items", "prior_weighted_log_loss", "fitted_weighted_log_loss"}`` (on the fitting items),
        ``"weight_decay"`` (the one used) and, with candidates, ``"cv_weighted_log_loss"`` (candidate -> score).
    """
    from medkit import distributed
    from medkit.io.atomic import atomic_path

    if distributed.is_distributed():  # a training on several processes: rank 0 fits on every item, the rest wait
        if distributed.rank() > 0:
            distributed.barrier()
            return {}
        try:
            return fit_evidence_heads(
                getattr(network, "module", network),
                _whole(batches),
                checkpoint,
                save_to,
                device,
                steps,
                learning_rate,
                weight_decay,
                folds,
                any_weight,
            )
        finally:
            distributed.barrier()
    candidates = [float(w) for w in (weight_decay if isinstance(weight_decay, Sequence) else [weight_decay])]
    if int(steps) < 1 or not candidates or min(candidates) < 0 or int(folds) < 2:
        raise ValueError(
            f"need steps >= 1, weight_decay >= 0 and folds >= 2, got steps={steps}, weight_decay={weight_decay}, "
            f"folds={folds}"
        )
    if checkpoint and os.path.isfile(checkpoint):
        _load_segmenter(network, os.fspath(checkpoint))
    elif checkpoint:
        logger.warning("%s: no checkpoint; fitting the heads on the segmenter's current weights", checkpoint)
    features, y, patients = collect_evidence(network, batches, device)
    mean, std = features.mean(0), features.std(0, unbiased=False).clamp(min=1e-3)
    z = (features - mean) / std
    heads = [(network.feature_index[name], head.out_features) for name, head in network.heads.items()]
    sizes = [n for _, n in heads]
    fit = {"steps": int(steps), "lr": float(learning_rate), "any_weight": float(any_weight)}
    result: dict[str, Any] = {"n_items": len(y)}
    chosen = candidates[len(candidates) // 2]
    if len(candidates) > 1 and len(set(patients)) < 2:
        logger.warning("one patient to fit on: no cross-validation, weight decay %g", chosen)
    elif len(candidates) > 1:
        masks = patient_folds(patients, min(int(folds), len(set(patients))))
        cv = {}
        for wd in candidates:
            out_of_fold = torch.zeros(len(y), sum(sizes))
            for held in masks:
                params = _fit(z[~held], y[~held], heads, wd, **fit)
                out_of_fold[held] = _logits(z[held], heads, params)
            cv[wd] = _score(out_of_fold, y)
        chosen = min(cv, key=cv.get)
        result["cv_weighted_log_loss"] = {str(k): round(v, 4) for k, v in cv.items()}
    params = _fit(z, y, heads, chosen, **fit)
    with torch.no_grad():
        network.feature_mean.copy_(mean.to(network.feature_mean.device))
        network.feature_std.copy_(std.to(network.feature_std.device))
        for head, (w, b) in zip(network.heads.values(), params):
            head.weight.copy_(w.to(head.weight.device))
            head.bias.copy_(b.to(head.bias.device))
    prior = _fit(z, y, heads, chosen, steps=0, lr=float(learning_rate), any_weight=float(any_weight))
    result.update(
        prior_weighted_log_loss=_score(_logits(z, heads, prior), y),
        fitted_weighted_log_loss=_score(_logits(z, heads, params), y),
        weight_decay=chosen,
    )
    logger.info(
        "evidence heads fitted on %d items (weight decay %g%s): weighted log loss %.4f (class frequencies %.4f)",
        len(y),
        chosen,
        f", out-of-fold {result['cv_weighted_log_loss']}" if "cv_weighted_log_loss" in result else "",
        result["fitted_weighted_log_loss"],
        result["prior_weighted_log_loss"],
    )
    if save_to:
        with atomic_path(save_to) as tmp:
            torch.save(network.state_dict(), tmp)
    return result
