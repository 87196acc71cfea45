from __future__ import annotations

import logging
import math

import pytest
import torch

from medkit.inferers import SegmentInferer
from medkit.losses import MaskedDiceCELoss
from medkit.losses.rsna import masked_dice_ce
from medkit.networks import EvidenceClassifier
from medkit.networks.weights import load_pretrained
from medkit.workflows import PrepareBatchWithSeg, collect_evidence, fit_evidence_heads
from medkit.workflows.evidence_heads import patient_folds
from tests.conftest import DEVICES

HEADS = {"bowel": 2, "extravasation": 2, "kidney": 3, "liver": 3, "spleen": 3}


def _net(**kw) -> EvidenceClassifier:
    torch.manual_seed(0)
    return EvidenceClassifier(HEADS, seg_classes=4, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, **kw)


def test_full_resolution_segmentation_and_class_logits():
    net = _net()
    assert net.head_sizes == HEADS
    x = torch.randn(2, 3, 18, 20, 13)  # not a multiple of the UNet's 4: padded and cropped back
    assert net.train()(x).shape == (2, 4, 18, 20, 13)
    net.eval()
    assert net(x).shape == (2, 13) and net.segment(x).shape == (2, 4, 18, 20, 13)
    assert SegmentInferer()(x, net).shape == (2, 4, 18, 20, 13)
    with pytest.raises(TypeError, match="segment"):
        SegmentInferer()(x, torch.nn.Identity())


def test_evidence_is_the_largest_probability_and_the_soft_voxel_count():
    net = _net()
    logits = torch.full((1, 4, 2, 2, 1), -30.0)
    logits[0, 0] = 0.0  # background everywhere ...
    logits[0, 2, 0, 0, 0] = 30.0  # ... but one voxel of label 2
    features = net.evidence(logits)
    assert features.shape == (1, 6)
    torch.testing.assert_close(features[0, :3], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(features[0, 3:], torch.tensor([0.0, math.log(2.0), 0.0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"heads": {"a": 1}}, "at least 2 classes"),
        ({"heads": {}}, "at least 2 classes"),
        ({"seg_classes": 1}, "seg_classes"),
        ({"strides": (2,)}, "strides"),
        ({"head_labels": {"liver": [4]}}, "head_labels"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"heads": HEADS, "seg_classes": 4, "channels": (4, 8, 16), "strides": (2, 2), **kwargs}
    with pytest.raises(ValueError, match=message):
        EvidenceClassifier(**args)


def test_masked_dice_ce_loss_module():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, 4)
    seg = torch.randint(-1, 4, (2, 1, 6, 6, 4))
    loss = MaskedDiceCELoss(class_weights=[1, 2, 2, 3])
    torch.testing.assert_close(loss(logits, seg), masked_dice_ce(logits, seg, class_weights=[1, 2, 2, 3]))
    with pytest.raises(ValueError, match="label map of size"):
        loss(logits, seg[..., :2])


def test_prepare_batch_seg_only():
    batch = {"image": torch.zeros(2, 3, 4, 4, 4), "label": torch.zeros(2, 5), "seg": torch.ones(2, 1, 4, 4, 4)}
    image, target = PrepareBatchWithSeg("seg", seg_only=True)(batch)
    assert image.shape == (2, 3, 4, 4, 4) and torch.equal(target, batch["seg"])
    with pytest.raises(KeyError, match="seg"):
        PrepareBatchWithSeg("seg", seg_only=True)({"image": batch["image"], "label": batch["label"]})
    with pytest.raises(KeyError, match="seg"):  # collated mask paths are not label maps
        PrepareBatchWithSeg()({**batch, "seg": ["a.nii", "b.nii"]})
    with pytest.raises(ValueError, match="seg_only must be True"):
        PrepareBatchWithSeg("seg", seg_only=False)


def _toy_batches(n: int = 48) -> list[dict]:
    """Volumes whose bright cube (every channel 1) marks an injured liver; the segmenter is hand-set to see it."""
    g = torch.Generator().manual_seed(1)
    batches = []
    for start in range(0, n, 8):
        images, labels = [], []
        for i in range(start, min(n, start + 8)):
            image = torch.rand(3, 8, 8, 8, generator=g) * 0.2
            injured = i % 3 == 0
            if injured:
                image[:, 2:5, 2:5, 2:5] = 1.0
            images.append(image)
            labels.append(torch.tensor([0, 0, 0, 2 if injured else 0, 0]))
        patients = [f"p{i // 2}" for i in range(start, min(n, start + 8))]  # two series per patient
        batches.append({"image": torch.stack(images), "label": torch.stack(labels), "patient": patients})
    return batches


class _Thresholding(torch.nn.Module):
    """Stands in for a trained segmenter: label 1 where the first channel is bright."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x[:, :1] - 0.5) * 40
        return torch.cat([-bright, bright, torch.full_like(bright, -20), torch.full_like(bright, -20)], dim=1)


def test_fitted_heads_read_the_evidence(tmp_path, caplog):
    net = _net()
    net.segmenter = _Thresholding()
    batches = _toy_batches()
    features, labels, patients = collect_evidence(net, batches)
    assert features.shape == (48, 6) and labels.shape == (48, 5) and patients[:3] == ["p0", "p0", "p1"]
    out = tmp_path / "model.pt"
    with caplog.at_level(logging.WARNING):
        result = fit_evidence_heads(
            net, batches, checkpoint=tmp_path / "missing.pt", save_to=out, steps=300, weight_decay=[1e-3, 100.0]
        )
    assert "missing.pt: no checkpoint" in caplog.text
    assert result["n_items"] == 48 and result["weight_decay"] == 1e-3  # out-of-fold choice
    cv = result["cv_weighted_log_loss"]
    assert cv["0.001"] < cv["100.0"]
    assert result["fitted_weighted_log_loss"] < 0.5 * result["prior_weighted_log_loss"]
    torch.testing.assert_close(net.feature_mean, features.mean(0))
    probs = torch.softmax(net.eval()(batches[0]["image"])[:, 7:10], dim=1)  # liver: healthy / low / high
    injured = batches[0]["label"][:, 3] == 2
    assert (probs[injured, 2] > 0.5).all() and (probs[~injured, 0] > 0.5).all()
    again = _net()
    again.segmenter = _Thresholding()
    load_pretrained(again, str(out), strict=True)  # the saved file holds the fitted heads and their scaling
    torch.testing.assert_close(again.eval()(batches[0]["image"]), net(batches[0]["image"]))
    with pytest.raises(ValueError, match="no items"):
        fit_evidence_heads(net, [], steps=1, weight_decay=0.1)
    with pytest.raises(ValueError, match="folds"):
        fit_evidence_heads(net, batches, folds=1)


def test_patient_folds_keep_a_patient_together():
    patients = ["a", "b", "a", "c", "b", "d", "e"]
    masks = patient_folds(patients, 3)
    assert torch.stack(masks).sum(0).tolist() == [1] * 7  # every item in exactly one fold
    for m in masks:
        inside = {p for p, held in zip(patients, m.tolist()) if held}
        assert all(held for p, held in zip(patients, m.tolist()) if p in inside)


def test_heads_read_only_their_own_labels():
    net = _net(head_labels={"liver": [1, 3], "bowel": [2]}).eval()
    assert net.heads["liver"].in_features == 4 and net.heads["bowel"].in_features == 2
    assert net.heads["spleen"].in_features == 6  # a target not named reads every label
    features = torch.randn(2, 6)
    with torch.no_grad():
        net.heads["bowel"].weight.zero_()
        net.heads["bowel"].weight[1, 1] = 1.0  # the soft voxel count of label 2
        net.heads["bowel"].bias.zero_()
    logits = net.classify(features)
    torch.testing.assert_close(logits[:, 1], features[:, 4])  # feature 4: log-count of label 2
    for bad in ({"nothing": [1]}, {"liver": [4]}, {"liver": []}):
        with pytest.raises(ValueError, match="head_labels"):
            _net(head_labels=bad)


def test_segmenter_weights_from_a_whole_network_checkpoint(tmp_path):
    trained = _net()
    with torch.no_grad():
        for p in trained.segmenter.parameters():
            p.add_(1.0)
    torch.save(trained.state_dict(), tmp_path / "whole.pt")
    fresh = _net(head_labels={"liver": [1]})  # other heads: the segmenter still loads, strictly
    load_pretrained(fresh.segmenter, str(tmp_path / "whole.pt"), strict=True, prefix="segmenter.")
    for a, b in zip(fresh.segmenter.state_dict().values(), trained.segmenter.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_one_patient_fits_without_cross_validation(caplog):
    net = _net()
    net.segmenter = _Thresholding()
    batch = _toy_batches(8)[0]
    batch["patient"] = ["only"] * 8
    with caplog.at_level(logging.WARNING):
        result = fit_evidence_heads(net, [batch], steps=5, weight_decay=[0.01, 0.1, 1.0])
    assert result["weight_decay"] == 0.1 and "cv_weighted_log_loss" not in result
    assert "no cross-validation" in caplog.text


@pytest.mark.parametrize("device", DEVICES)
def test_heads_fit_from_batches_on_the_device(device):
    """A GPU data cache hands over images and labels on the GPU; the heads are fitted on the CPU (on an H200 the
    labels stayed on the GPU and the fit failed on mixed devices)."""
    net = _net().to(device)
    net.segmenter = _Thresholding()
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in _toy_batches(16)]
    features, labels, _ = collect_evidence(net, batches, device)
    assert features.device.type == labels.device.type == "cpu" and labels.shape == (16, 5)
    result = fit_evidence_heads(net, batches, device=device, steps=5, weight_decay=[0.01, 0.1])
    assert result["n_items"] == 16 and math.isfinite(result["fitted_weighted_log_loss"])
    assert all(p.device.type == torch.device(device).type for p in net.heads.parameters())
