from __future__ import annotations

import pytest
import torch

from medkit.losses import RSNASegLoss, RSNAWeightedLoss
from medkit.losses.rsna import masked_dice_ce, pool_labels
from medkit.networks import SegGuidedClassifier
from medkit.workflows import PrepareBatchWithSeg

HEADS = {"bowel": 2, "extravasation": 2, "kidney": 3, "liver": 3, "spleen": 3}


def _net(**kw) -> SegGuidedClassifier:
    torch.manual_seed(0)
    return SegGuidedClassifier(HEADS, seg_classes=4, channels=(4, 8, 8, 16), **kw)


def test_outputs_in_training_and_eval_mode():
    net = _net()
    assert net.head_sizes == HEADS
    x = torch.randn(2, 3, 32, 32, 20)
    logits, seg = net.train()(x)
    assert logits.shape == (2, 13) and seg.shape == (2, 4, 8, 8, 5)  # segmentation at 1/4 resolution
    net.eval()
    assert net(x).shape == (2, 13)  # an ordinary classifier for evaluation and inference
    full_logits, full_seg = net.forward_all(x)
    assert full_seg.shape == (2, 4, 32, 32, 20)
    torch.testing.assert_close(full_logits, net(x))
    coarse_logits, coarse_seg = net.forward_all(x, full_size=False)
    assert coarse_seg.shape == (2, 4, 8, 8, 5)
    torch.testing.assert_close(coarse_logits, full_logits)


def test_heads_on_segmentation_evidence_only():
    net = _net(head_inputs="seg").eval()
    assert all(head.in_features == 2 * 3 for head in net.heads.values())  # max and mean of 3 foreground labels
    assert net(torch.randn(2, 3, 32, 32, 20)).shape == (2, 13)
    full = _net()
    assert all(head.in_features == 2 * 16 + 2 * 3 for head in full.heads.values())


@pytest.mark.parametrize(
    "kwargs",
    [{"heads": {}}, {"heads": {"liver": 1}}, {"seg_classes": 1}, {"channels": (4, 8, 16)}, {"head_inputs": "deep"}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        SegGuidedClassifier(**{"heads": HEADS, **kwargs})


def test_pool_labels_keeps_a_single_voxel_lesion_and_unlabelled_blocks():
    labels = torch.zeros(1, 1, 8, 8, 4, dtype=torch.int8)
    labels[..., :4, :, :] = 1  # an organ over half the volume
    labels[0, 0, 1, 1, 1] = 6  # one injured voxel in it
    labels[..., 4:, 4:, :] = -1  # an unlabelled corner
    pooled = pool_labels(labels, (4, 4, 2))
    assert pooled.dtype == torch.long and pooled.shape == (1, 1, 4, 4, 2)
    assert pooled[0, 0, 0, 0, 0] == 6  # the lesion outranks the organ
    assert (pooled[0, 0, 2:, 2:] == -1).all()
    assert pooled[0, 0, 1, 1, 0] == 1 and pooled[0, 0, 2, 0, 0] == 0
    assert pool_labels(labels, (8, 8, 4)) is labels


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


def test_seg_loss_adds_the_segmentation_term_only_when_given():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 13), torch.tensor([[1, 0, 2, 0, 1], [0, 1, 0, 2, 0], [0, 0, 0, 0, 0]])
    seg_logits, seg = torch.randn(3, 4, 4, 4, 2), torch.randint(0, 4, (3, 1, 8, 8, 4))
    plain = float(RSNAWeightedLoss()(logits, labels))
    loss = RSNASegLoss(seg_weight=0.5)
    assert float(loss(logits, labels)) == pytest.approx(plain)
    assert float(loss((logits, seg_logits), labels)) == pytest.approx(plain)
    expected = plain + 0.5 * float(masked_dice_ce(seg_logits, pool_labels(seg, (4, 4, 2))))
    assert float(loss((logits, seg_logits), (labels, seg))) == pytest.approx(expected)
    assert float(RSNASegLoss(seg_weight=0)((logits, seg_logits), (labels, seg))) == pytest.approx(plain)


def test_prepare_batch_with_and_without_masks():
    batch = {"image": torch.zeros(2, 3, 4, 4, 4), "label": torch.zeros(2, 5, dtype=torch.long)}
    image, label = PrepareBatchWithSeg()(batch, "cpu")
    assert isinstance(label, torch.Tensor)
    image, (label, seg) = PrepareBatchWithSeg()({**batch, "seg": torch.zeros(2, 1, 4, 4, 4)}, "cpu")
    assert seg.shape == (2, 1, 4, 4, 4)
    _, label = PrepareBatchWithSeg()({**batch, "seg": ["a.nii", "b.nii"]}, "cpu")  # collated paths: no masks
    assert isinstance(label, torch.Tensor)
    _, label = PrepareBatchWithSeg(None)({**batch, "seg": torch.zeros(2, 1, 4, 4, 4)}, "cpu")
    assert isinstance(label, torch.Tensor)


def test_segmentation_supervision_is_learnt():
    """A bright cube is labelled 1; a few steps of the joint loss make the net segment it and say so."""
    torch.manual_seed(0)
    net = _net(dropout=0.0).train()
    x = torch.zeros(4, 3, 32, 32, 16)
    seg = torch.zeros(4, 1, 32, 32, 16, dtype=torch.long)
    x[:2, :, 8:20, 8:20, 4:12] = 1.0
    seg[:2, :, 8:20, 8:20, 4:12] = 1
    labels = torch.tensor([[1, 0, 0, 0, 0]] * 2 + [[0, 0, 0, 0, 0]] * 2)
    loss_fn = RSNASegLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(net(x), (labels, seg))
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss)
    assert float(loss) < first / 2
    net.eval()
    probs = torch.softmax(net.forward_all(x)[1], 1)[:, 1]
    assert probs[:2, 10:18, 10:18, 6:10].mean() > 0.5 > probs[2:].mean()
