"""The RSNA trauma losses: the weighted log loss against the score, and masked Dice + cross-entropy by hand."""

from __future__ import annotations

import math

import pytest
import torch

from medkit.losses import RSNAWeightedLoss
from medkit.losses.rsna import masked_dice_ce
from medkit.metrics.rsna import rsna_score

SPLITS = [2, 2, 3, 3, 3]


def test_weighted_loss_is_the_score_of_the_softmax():
    torch.manual_seed(0)
    logits = torch.randn(4, 13)
    labels = torch.tensor([[1, 0, 2, 0, 1], [0, 1, 0, 2, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 2]])
    probs = torch.cat([torch.softmax(p, 1) for p in torch.split(logits, SPLITS, 1)], 1)
    assert rsna_score(probs, labels) == pytest.approx(float(RSNAWeightedLoss(eps=1e-15)(logits, labels)), rel=1e-4)


def test_loss_without_the_any_injury_term():
    logits = torch.zeros(3, 13)
    labels = torch.tensor([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 2, 2, 2]])
    both, organs = RSNAWeightedLoss()(logits, labels), RSNAWeightedLoss(any_weight=0.0)(logits, labels)
    # uniform outputs: each organ term is log(classes); any-injury p = max(1 - p_healthy) = 1 - 1/3 = 2/3,
    # scored for one healthy patient (weight 1, -log(1/3)) and two injured ones (weight 6 each, -log(2/3))
    expected_organs = (2 * math.log(2.0) + 3 * math.log(3.0)) / 5
    expected_any = (math.log(3.0) + 12 * math.log(1.5)) / 13
    assert float(organs) == pytest.approx(expected_organs, rel=1e-5)
    assert float(both) == pytest.approx((5 * expected_organs + expected_any) / 6, rel=1e-5)


def test_masked_dice_ce_hand_computed():
    # two voxels, two classes, equal logits: CE = log 2 each; Dice of class 1: p=0.5 on both voxels, target one voxel
    logits = torch.zeros(1, 2, 2, 1, 1)
    labels = torch.tensor([0, 1]).reshape(1, 1, 2, 1, 1)
    smooth = 1.0
    dice = 1 - (2 * 0.5 + smooth) / ((0.5 + 0.5 + 1.0) + smooth)
    assert float(masked_dice_ce(logits, labels, smooth=smooth)) == pytest.approx(torch.log(torch.tensor(2.0)) + dice)
    # the unlabelled voxel is ignored: only voxel 2 (class 1) counts
    ignored = torch.tensor([-1, 1]).reshape(1, 1, 2, 1, 1)
    dice = 1 - (2 * 0.5 + smooth) / ((0.5 + 1.0) + smooth)
    assert float(masked_dice_ce(logits, ignored, smooth=smooth)) == pytest.approx(
        float(torch.log(torch.tensor(2.0))) + dice
    )
    # a label absent from the batch adds no Dice term (it would push that label to zero everywhere): CE only
    three = torch.zeros(1, 3, 2, 1, 1)
    assert float(masked_dice_ce(three, labels, smooth=smooth)) == pytest.approx(
        float(torch.log(torch.tensor(3.0))) + 1 - (2 / 3 + smooth) / (2 / 3 + 1 + smooth)
    )
    # class weights: CE becomes the weighted mean over the labelled voxels
    weighted = masked_dice_ce(logits, labels, smooth=smooth, class_weights=[1.0, 9.0])
    assert float(weighted) == pytest.approx(float(masked_dice_ce(logits, labels, smooth=smooth)))  # equal CE per voxel
    skewed = torch.tensor([2.0, 0.0]).reshape(1, 2, 1, 1, 1).expand(1, 2, 2, 1, 1)
    ce = torch.nn.functional.cross_entropy(
        skewed[..., 0, 0].permute(0, 2, 1).reshape(2, 2), torch.tensor([0, 1]), reduction="none"
    )
    dice_part = float(masked_dice_ce(skewed, labels, smooth=smooth)) - float(ce.mean())
    expected = float((ce[0] * 1 + ce[1] * 9) / 10) + dice_part
    assert float(masked_dice_ce(skewed, labels, smooth=smooth, class_weights=[1.0, 9.0])) == pytest.approx(expected)
    # nothing labelled: zero, with a gradient path
    logits.requires_grad_(True)
    none = masked_dice_ce(logits, torch.full((1, 1, 2, 1, 1), -1))
    assert float(none) == 0.0
    none.backward()
    assert logits.grad is not None
