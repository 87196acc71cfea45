from __future__ import annotations

import math

import pytest
import torch

from medkit.losses import RSNAWeightedLoss
from medkit.metrics.rsna import rsna_score
from medkit.networks import MultiHeadClassifier

HEADS = {"bowel": 2, "extravasation": 2, "kidney": 3, "liver": 3, "spleen": 3}


def test_heads_side_by_side_and_trainable():
    torch.manual_seed(0)
    net = MultiHeadClassifier(HEADS, in_channels=3, block_inplanes=(4, 8, 8, 16))
    assert net.head_sizes == HEADS
    x = torch.randn(2, 3, 24, 24, 16)
    out = net(x)
    assert out.shape == (2, 13)
    labels = torch.tensor([[1, 0, 2, 0, 1], [0, 1, 0, 2, 0]])
    loss_fn = RSNAWeightedLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    first = float(loss_fn(net(x), labels))
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(net(x), labels)
        loss.backward()
        opt.step()
    assert float(loss) < first / 2  # two volumes are learnt
    net.eval()
    probs = torch.cat([torch.softmax(p, 1) for p in torch.split(net(x), [2, 2, 3, 3, 3], 1)], 1)
    assert rsna_score(probs.detach(), labels) == pytest.approx(
        float(RSNAWeightedLoss(eps=1e-15)(net(x), labels)), rel=1e-4
    )


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


def test_bad_heads_are_rejected():
    with pytest.raises(ValueError, match="at least 2 classes"):
        MultiHeadClassifier({"bowel": 1})
    with pytest.raises(ValueError, match="4 stages"):
        MultiHeadClassifier(HEADS, layers=(1, 1))


@pytest.mark.parametrize("pooling, features", [("avg", 16), ("max", 16), ("avgmax", 32)])
def test_pooling_choices(pooling, features):
    net = MultiHeadClassifier(HEADS, block_inplanes=(4, 8, 8, 16), pooling=pooling).eval()
    assert net.heads["bowel"].in_features == features
    assert net(torch.zeros(1, 3, 24, 24, 16)).shape == (1, 13)
    maps = torch.randn(2, 16, 3, 3, 2)
    pooled = net.backbone.avgpool(maps).flatten(1)
    mean, top = maps.mean(dim=(2, 3, 4)), maps.amax(dim=(2, 3, 4))
    expected = {"avg": mean, "max": top, "avgmax": torch.cat([mean, top], 1)}[pooling]
    assert torch.allclose(pooled, expected, atol=1e-6)
    with pytest.raises(ValueError, match="pooling must be one of"):
        MultiHeadClassifier(HEADS, pooling="sum")
