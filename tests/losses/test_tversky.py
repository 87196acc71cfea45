from __future__ import annotations

import pytest
import torch

from medkit.losses import SEGMENTATION_LOSSES, FocalTverskyLoss, segmentation_loss

PROB = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]], [[[0.3, 0.0], [0.0, 0.8]]]])
TRUE = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]], [[[0.0, 0.0], [0.0, 1.0]]]])


def _by_hand(p, g, fn_w=0.7, fp_w=0.3, gamma=0.75, smooth=1.0):
    tp = float((p * g).sum())
    fn = float(((1 - p) * g).sum())
    fp = float((p * (1 - g)).sum())
    ti = (tp + smooth) / (tp + fn_w * fn + fp_w * fp + smooth)
    return (1 - ti) ** gamma


def test_focal_tversky_matches_hand_computed_values():
    # batch: TP = .9+.6+.1+.8 = 2.4, FN = .1+.4+.9+.2 = 1.6, FP = .2+.3 = .5 -> TI = 3.4/4.67
    assert FocalTverskyLoss(sigmoid=False)(PROB, TRUE).item() == pytest.approx((1 - 3.4 / 4.67) ** 0.75, rel=1e-6)
    assert FocalTverskyLoss(sigmoid=False)(PROB, TRUE).item() == pytest.approx(_by_hand(PROB, TRUE), rel=1e-6)
    per_sample = FocalTverskyLoss(sigmoid=False, batch=False)(PROB, TRUE).item()
    expected = (_by_hand(PROB[0], TRUE[0]) + _by_hand(PROB[1], TRUE[1])) / 2
    assert per_sample == pytest.approx(expected, rel=1e-6)
    # gamma=1 with equal weights is the soft Dice loss
    assert FocalTverskyLoss(0.5, 0.5, gamma=1.0, sigmoid=False)(PROB, TRUE).item() == pytest.approx(
        _by_hand(PROB, TRUE, 0.5, 0.5, 1.0), rel=1e-6
    )


def test_misses_cost_more_than_false_alarms():
    truth = torch.zeros(1, 1, 4, 4)
    truth[..., :2, :] = 1
    miss = truth.clone()
    miss[..., 0, :] = 0  # 4 false negatives
    alarm = truth.clone()
    alarm[..., 2, :] = 1  # 4 false positives
    loss = FocalTverskyLoss(sigmoid=False)
    assert loss(miss, truth) > loss(alarm, truth) > loss(truth, truth) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", SEGMENTATION_LOSSES)
def test_every_selectable_loss_trains(kind):
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    truth = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    value = segmentation_loss(kind)(logits, truth)
    value.backward()
    assert torch.isfinite(value) and logits.grad.abs().sum() > 0


def test_unknown_loss():
    with pytest.raises(ValueError, match="focal_tversky"):
        segmentation_loss("jaccard")
