"""Fit the classification heads of an ``EvidenceClassifier`` on patients its segmenter did not train on."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import torch

from medkit.losses.rsna import RSNAWeightedLoss
from medkit.metrics.rsna import weighted_log_loss

__all__ = ["collect_evidence", "fit_evidence_heads"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def collect_evidence(
    network: torch.nn.Module, batches: Iterable[dict], device: Any = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, F), labels (N, targets))``: the segmenter's evidence and the per-target labels of every item."""
    network.eval()
    features, labels = [], []
    for batch in batches:
        image = torch.as_tensor(batch["image"]).to(device)
        features.append(network.evidence(network.segment(image)).cpu())
        labels.append(torch.as_tensor(batch["label"]).long().reshape(image.shape[0], -1))
    if not features:
        raise ValueError("no items to fit the heads on (empty data loader: is the split empty?)")
    return torch.cat(features), torch.cat(labels)


def fit_evidence_heads(
    network: torch.nn.Module,
    batches: Iterable[dict],
    checkpoint: str | os.PathLike | None = None,
    save_to: str | os.PathLike | None = None,
    device: Any = "cpu",
    steps: int = 500,
    learning_rate: float = 0.05,
    weight_decay: float = 0.01,
    any_weight: float = 1.0,
) -> dict[str, float]:
    """Fit the heads of ``network`` (a ``medkit.networks.EvidenceClassifier``) to the RSNA weighted log loss.

    The segmenter is frozen: its evidence is computed once per item, standardised (the network's
    ``feature_mean`` / ``feature_std`` are set from these items), and every head, started from the class
    frequencies (zero weights, log-prior biases), is fitted by full-batch Adam to ``RSNAWeightedLoss`` plus
    ``weight_decay`` x the squared weights. Fit on patients the segmenter did not see (the validation split):
    on its own training patients the evidence is too clean.

    Args:
        network: the network, its segmenter trained.
        batches: batches with ``image`` and per-target ``label`` (a data loader).
        checkpoint: load these weights first (the training's best checkpoint) when the file exists.
        save_to: write the whole network's state dict here afterwards (atomically; may equal ``checkpoint``).
        device: where the segmenter runs.
        steps: optimisation steps.
        learning_rate: Adam step size.
        weight_decay: L2 penalty on the head weights (not the biases).
        any_weight: weight of the any_injury term of the loss.

    Returns:
        ``{"n_items", "prior_weighted_log_loss", "fitted_weighted_log_loss"}`` on the fitting items.
    """
    from medkit.io.atomic import atomic_path
    from medkit.networks.weights import load_pretrained

    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if checkpoint and os.path.isfile(checkpoint):
        load_pretrained(network, os.fspath(checkpoint), strict=True)
    elif checkpoint:
        logger.warning("%s: no checkpoint; fitting the heads on the segmenter's current weights", checkpoint)
    features, labels = collect_evidence(network, batches, device)
    mean, std = features.mean(0), features.std(0, unbiased=False).clamp(min=1e-3)
    heads = network.heads
    params = []
    with torch.no_grad():
        network.feature_mean.copy_(mean.to(network.feature_mean.device))
        network.feature_std.copy_(std.to(network.feature_std.device))
        for i, head in enumerate(heads.values()):
            counts = torch.bincount(labels[:, i].clamp(min=0), minlength=head.out_features)[: head.out_features]
            head.weight.zero_()
            head.bias.copy_(torch.log((counts.float() + 1.0) / (counts.sum() + head.out_features)))
            params += [head.weight, head.bias]
    z = ((features - mean) / std).to(heads[next(iter(heads))].weight.device)
    y = labels.to(z.device)
    loss_fn = RSNAWeightedLoss(any_weight=any_weight)

    def logits() -> torch.Tensor:
        return torch.cat([head(z) for head in heads.values()], dim=1)

    prior = float(weighted_log_loss(logits().detach(), y, logits=True)["score"])
    optimiser = torch.optim.Adam(params, lr=float(learning_rate))
    for _ in range(int(steps)):
        optimiser.zero_grad()
        penalty = sum((head.weight**2).sum() for head in heads.values())
        loss = loss_fn(logits(), y) + float(weight_decay) * penalty
        loss.backward()
        optimiser.step()
    fitted = float(weighted_log_loss(logits().detach(), y, logits=True)["score"])
    logger.info(
        "evidence heads fitted on %d items: weighted log loss %.4f (class frequencies %.4f)", len(y), fitted, prior
    )
    if save_to:
        os.makedirs(os.path.dirname(os.path.abspath(save_to)), exist_ok=True)
        with atomic_path(save_to) as tmp:
            torch.save(network.state_dict(), tmp)
    return {"n_items": float(len(y)), "prior_weighted_log_loss": prior, "fitted_weighted_log_loss": fitted}
