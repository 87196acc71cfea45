from __future__ import annotations

import math

import pytest
import torch

from medkit.losses import FocalLoss, classification_loss


def test_focal_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])  # p_y: 3/4 for sample 0 (class 1); 4/5
    target = torch.tensor([1, 0])
    p = torch.tensor([0.75, 0.8])
    expected = (-((1 - p) ** 2) * torch.log(p)).mean()
    assert FocalLoss(gamma=2)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # with class weights 1 and 3: (3 * l0 + 1 * l1) / 4
    per = -((1 - p) ** 2) * torch.log(p)
    weighted = (3 * per[0] + 1 * per[1]) / 4
    assert FocalLoss(gamma=2, weight=[1.0, 3.0])(logits, target).item() == pytest.approx(weighted.item(), rel=1e-6)


def test_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(8, 3), torch.randint(0, 3, (8,))
    w = torch.tensor([1.0, 2.0, 0.5])
    ce = torch.nn.functional.cross_entropy(logits, target, weight=w)
    assert FocalLoss(gamma=0, weight=w)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)
    assert FocalLoss(gamma=0, weight=w)(logits, target[:, None]).item() == pytest.approx(ce.item(), rel=1e-6)


def test_selection_and_errors():
    assert isinstance(classification_loss("focal"), FocalLoss)
    assert isinstance(classification_loss("cross_entropy", [1.0, 2.0]), torch.nn.CrossEntropyLoss)
    with pytest.raises(ValueError, match="loss kind"):
        classification_loss("dice")
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)


def test_label_smoothing_mixes_the_target_with_the_uniform_distribution():

    logits, target = torch.tensor([[4.0, -4.0], [0.5, 1.5]]), torch.tensor([0, 1])
    smooth = classification_loss("cross_entropy", label_smoothing=0.2)(logits, target)
    soft = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    expected = -(soft * torch.log_softmax(logits, dim=1)).sum(1).mean()
    assert torch.allclose(smooth, expected)
    assert classification_loss("cross_entropy")(logits, target) < smooth  # confident and right: smoothing costs
    with pytest.raises(ValueError, match="cross_entropy"):
        classification_loss("focal", label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        classification_loss("cross_entropy", label_smoothing=1.0)
