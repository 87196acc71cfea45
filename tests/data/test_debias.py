from __future__ import annotations

import numpy as np
import pytest
import torch

from medkit.data import (
    DistributedWeightedSampler,
    debias_sample_weights,
    debias_weights,
    train_sampler,
)


def _items(scores, labels):
    return [{"image": f"x{i}.png", "label": y, "trait_score": s} for i, (s, y) in enumerate(zip(scores, labels))]


def test_debias_weights_remove_the_shortcut_and_keep_class_shares():
    rng = np.random.default_rng(0)
    # a calibrated shortcut: the score is the probability of class 1 given the shortcut
    scores = rng.uniform(0.05, 0.95, 4000)
    labels = (rng.uniform(size=4000) < scores).astype(int)
    w = debias_weights(_items(scores, labels), "trait_score")
    for c in (0, 1):
        assert abs(w[labels == c].sum() - (labels == c).sum()) < 1e-6  # each class keeps its share of the draws
    # after weighting, the score no longer tells the classes apart: the weighted means of the score are close
    mean = [np.average(scores[labels == c], weights=w[labels == c]) for c in (0, 1)]
    assert abs(mean[0] - mean[1]) < 0.1 < abs(scores[labels == 0].mean() - scores[labels == 1].mean())
    # an image whose shortcut points the wrong way weighs more than one it points the right way; floor caps it
    w2 = debias_weights(_items([0.9, 0.1, 0.001, 0.5], [0, 0, 1, 1]), "trait_score", floor=0.05)
    # (class 1: p 0.001 kept at 0.05 against 0.5: ten times the weight, not five hundred)
    assert w2[0] == pytest.approx(9 * w2[1]) and w2[2] == pytest.approx(10 * w2[3])


def test_debias_weights_refuse_missing_scores_and_more_classes():
    with pytest.raises(ValueError, match="x1.png: no 'trait_score'"):
        debias_weights(
            [{"image": "x0.png", "label": 0, "trait_score": 0.2}, {"image": "x1.png", "label": 1}], "trait_score"
        )
    with pytest.raises(ValueError, match="two classes"):
        debias_weights(_items([0.2, 0.3], [0, 2]), "trait_score")


def _sampler(items, key, seed=0):
    return train_sampler(debias_sample_weights(items, key), seed)


def test_debias_sampler_is_seeded_and_off_without_a_key():
    items = _items([0.9, 0.1, 0.2, 0.8] * 5, [0, 0, 1, 1] * 5)
    assert debias_sample_weights(items, "") is None and train_sampler(None) is None
    assert debias_sample_weights([{"image": "x.png", "label": 0}], "trait_score") is None  # unscored: shuffle
    draws = [list(_sampler(items, "trait_score", seed=3)) for _ in range(2)]
    assert draws[0] == draws[1] and len(draws[0]) == len(items)
    sampler = _sampler(items, "trait_score", seed=3)
    assert isinstance(sampler, torch.utils.data.distributed.DistributedSampler)  # the engines call set_epoch
    # epochs 1, 2, 3 (as the engines number them) draw what torch's WeightedRandomSampler with a generator seeded
    # the same way draws epoch after epoch; a resumed run's sampler, set to epoch 3 at once, draws epoch 3's
    plain = torch.utils.data.WeightedRandomSampler(
        debias_sample_weights(items, "trait_score"), len(items), generator=torch.Generator().manual_seed(3)
    )
    expected = [list(plain) for _ in range(3)]
    for epoch in (1, 2, 3):
        sampler.set_epoch(epoch)
        assert list(sampler) == expected[epoch - 1]
    again = _sampler(items, "trait_score", seed=3)
    again.set_epoch(3)
    assert list(again) == expected[2] != expected[1]
    # the images whose score contradicts their label (indices 0 and 2 of each four) are drawn more often
    counts = np.bincount(np.concatenate([list(_sampler(items, "trait_score", seed=k)) for k in range(50)]) % 4)
    assert counts[0] > 3 * counts[1] and counts[2] > 3 * counts[3]


def test_distributed_weighted_sampler_splits_the_draws_between_processes():
    items = _items([0.9, 0.1, 0.2, 0.8] * 5, [0, 0, 1, 1] * 5)
    weights = debias_sample_weights(items, "trait_score")
    ranks = [DistributedWeightedSampler(items, weights, num_replicas=2, rank=r, seed=1) for r in (0, 1)]
    first = [list(r) for r in ranks]
    assert [len(d) for d in first] == [10, 10] and first[0] != first[1]  # each process its own draws
    assert [list(r) for r in ranks] == first  # the same epoch draws the same
    for r in ranks:
        r.set_epoch(2)
    assert [list(r) for r in ranks] != first  # another epoch other draws (first: epoch 0, drawn as epoch 1)
    drawn = []
    for epoch in range(1, 31):
        for r in ranks:
            r.set_epoch(epoch)
            drawn += list(r)
    counts = np.bincount(np.asarray(drawn) % 4)
    assert counts[0] > 3 * counts[1] and counts[2] > 3 * counts[3]
    with pytest.raises(ValueError, match="3 weights for a dataset of 20 items"):
        DistributedWeightedSampler(items, weights[:3], num_replicas=2, rank=0)
