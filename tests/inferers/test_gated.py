from __future__ import annotations

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents
from monai.inferers import SimpleInferer
from torch import nn

from medkit.inferers import GatedInferer


class _FixedClassifier(nn.Module):
    """Positive-class logit = the image mean minus 0.5 (so bright images are "tumour")."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-m, m], dim=1) * 20


class _CountingSegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return torch.full((x.shape[0], 1, *x.shape[2:]), 5.0)


def test_only_slices_above_threshold_are_segmented():
    x = torch.stack([torch.full((3, 16, 16), v) for v in (0.1, 0.9, 0.2, 0.8)])
    seg = _CountingSegmenter()
    inferer = GatedInferer(SimpleInferer(), gate=_FixedClassifier(), threshold=0.5, gate_size=(8, 8))
    out = inferer(x, seg)
    assert seg.seen == 2
    assert out.shape == (4, 1, 16, 16)
    assert (out[[1, 3]] == 5.0).all() and (torch.sigmoid(out[[0, 2]]) < 1e-6).all()
    prob = inferer.last_probability
    assert prob.shape == (4,) and (prob[[1, 3]] > 0.5).all() and (prob[[0, 2]] < 0.5).all()


def test_without_gate_everything_is_segmented_and_probabilities_reach_the_output():
    seg = _CountingSegmenter()
    x = torch.zeros(3, 3, 8, 8)
    assert GatedInferer(SimpleInferer())(x, seg).shape == (3, 1, 8, 8) and seg.seen == 3

    inferer = GatedInferer(SimpleInferer(), gate=_FixedClassifier(), threshold=0.3)

    def step(engine, batch):  # as MONAI's SupervisedEvaluator: output set, then FORWARD_COMPLETED fired
        engine.state.output = {"pred": inferer(batch, seg)}
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        return engine.state.output

    engine = Engine(step)
    engine.register_events(*IterationEvents)
    inferer.attach(engine)
    engine.run([x], max_epochs=1)
    assert engine.state.output["tumour_probability"].shape == (3,)
