from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents
from monai.inferers import SimpleInferer
from torch import nn

from medkit.inferers import GatedInferer
from medkit.inferers.gated import passes_gate
from medkit.metrics.classification import stack_scores
from tests.conftest import DEVICES


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
        return torch.full((x.shape[0], 1, *x.shape[2:]), 5.0, device=x.device)


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


def _stack_batches():
    """Case P: a tumour over slices 1-5 that the classifier misses on slice 3; case Q: one bright slice (2) among
    dark ones; and a lone image without a case. Slices arrive out of order, two per batch."""
    items = [("P", n, v) for n, v in zip(range(1, 6), (0.9, 0.9, 0.1, 0.9, 0.9))]
    items += [("Q", n, v) for n, v in zip(range(1, 5), (0.1, 0.9, 0.1, 0.1))]
    order = [2, 0, 4, 1, 3, 8, 6, 5, 7]
    items = [items[i] for i in order] + [("", "", 0.1)]
    batches = []
    for i in range(0, len(items), 2):
        chunk = items[i : i + 2]
        batches.append(
            {
                "image": torch.stack([torch.full((3, 8, 8), v) for _, _, v in chunk]),
                "case": [c for c, _, _ in chunk],
                "slice": [str(n) for _, n, _ in chunk],
                "error": ["" for _ in chunk],
            }
        )
    return batches


def _run(inferer, batches, device="cpu"):
    """Each batch through ``inferer`` in an engine on ``device`` (the loader's images stay on the CPU, as MONAI's
    evaluator receives them); per ``(case, slice)``: segmented, probability, threshold."""
    seg = _CountingSegmenter()
    decided = {}

    def step(engine, batch):
        engine.state.output = {"pred": inferer(batch["image"].to(device), seg)}
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        for case, n, pred, p, t in zip(
            batch["case"],
            batch["slice"],
            engine.state.output["pred"],
            engine.state.output["tumour_probability"],
            engine.state.output["gate_threshold"],
        ):
            decided[(case, n)] = (bool((pred > 0).all()), float(p), float(t))
        return engine.state.output

    engine = Engine(step)
    engine.register_events(*IterationEvents)
    engine.state.device = torch.device(device)  # as MONAI's workflows set it: the gate's first pass reads it
    inferer.attach(engine)
    engine.run(batches, max_epochs=1)
    return decided, seg.seen


@pytest.mark.parametrize("device", DEVICES)
def test_slices_of_a_stack_are_gated_on_the_mean_of_their_neighbours(device):
    gate = _FixedClassifier()
    smoothed = GatedInferer(SimpleInferer(), gate=gate, threshold=0.5, slice_window=3, stack_threshold=0.5)
    decided, seen = _run(smoothed, _stack_batches(), device)
    p = {k: torch.softmax(gate(torch.full((1, 3, 8, 8), v)), 1)[0, 1].item() for k, v in (("hi", 0.9), ("lo", 0.1))}
    # P3: (P2 + P3 + P4) / 3, two bright neighbours lift it over 0.5; P1 averages itself twice with P2
    assert decided[("P", "3")] == (True, pytest.approx((2 * p["hi"] + p["lo"]) / 3, abs=1e-5), 0.5)
    assert decided[("P", "1")][0] and decided[("P", "1")][1] == pytest.approx(p["hi"], abs=1e-5)
    # Q2: one bright slice between dark ones falls to a third
    assert decided[("Q", "2")] == (False, pytest.approx((p["hi"] + 2 * p["lo"]) / 3, abs=1e-5), 0.5)
    assert decided[("", "")] == (False, pytest.approx(p["lo"], abs=1e-5), 0.5)  # lone: its own probability
    assert [k for k, d in decided.items() if d[0]] == [("P", "3"), ("P", "1"), ("P", "5"), ("P", "2"), ("P", "4")]
    assert seen == 5

    plain, _ = _run(GatedInferer(SimpleInferer(), gate=gate, threshold=0.5), _stack_batches(), device)
    assert not plain[("P", "3")][0] and plain[("Q", "2")][0]


def test_stack_threshold_is_used_for_stacks_and_threshold_for_lone_slices():
    gate = _FixedClassifier()
    inferer = GatedInferer(SimpleInferer(), gate=gate, threshold=1e-9, slice_window=3, stack_threshold=0.99)
    decided, _ = _run(inferer, _stack_batches())
    assert decided[("", "")][0] and decided[("", "")][2] == pytest.approx(1e-9)
    stacked = {k: d for k, d in decided.items() if k[0]}
    assert all(d[0] == (d[1] >= 0.99) for d in stacked.values()) and not stacked[("P", "3")][0]
    assert all(d[2] == pytest.approx(0.99) for d in stacked.values())
    with pytest.raises(ValueError, match="odd"):
        GatedInferer(SimpleInferer(), gate=gate, slice_window=4, stack_threshold=0.5)


def test_known_probabilities_are_decided_as_the_inferer_gates():
    gate = _FixedClassifier()
    settings = {"threshold": 0.4, "slice_window": 3, "stack_threshold": 0.5}
    decided, _ = _run(GatedInferer(SimpleInferer(), gate=gate, **settings), _stack_batches())
    keys = list(decided)
    probs = {k: torch.softmax(gate(torch.full((1, 3, 8, 8), v)), 1)[0, 1].item() for k, v in _stack_values().items()}
    scores, thresholds, _ = stack_scores(
        [probs[k] for k in keys], [c for c, _ in keys], [n for _, n in keys], **settings
    )
    assert passes_gate(scores, thresholds).tolist() == [decided[k][0] for k in keys]
    assert scores == pytest.approx([decided[k][1] for k in keys], abs=1e-5)
    assert thresholds == pytest.approx([decided[k][2] for k in keys])


def _stack_values() -> dict[tuple[str, str], float]:
    """``(case, slice)`` -> image value of the slices ``_stack_batches`` gives."""
    return {
        (c, n): float(v)
        for batch in _stack_batches()
        for c, n, v in zip(batch["case"], batch["slice"], batch["image"][:, 0, 0, 0].tolist())
    }
