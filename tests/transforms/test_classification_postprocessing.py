from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import ROCAUCMetric
from monai.transforms import Decollated

from medkit.metrics.classification import roc_auc
from medkit.transforms import classification_postprocessing
from tests.conftest import DEVICES


@pytest.mark.parametrize("device", DEVICES)
def test_outputs_meet_on_the_cpu_for_roc_auc(device):
    """As MONAI's engines hand an item over: the batch on the device, decollated with ``detach=True``, which turns
    each class label into a Python number; on a GPU, ROC AUC then failed on the GPU ``pred`` beside it."""
    torch.manual_seed(0)
    labels = [0, 1, 0, 1, 1, 0]
    output = {"pred": torch.randn(6, 2, device=device), "label": torch.tensor(labels, device=device)}
    items = Decollated(keys=None, detach=True)(output)
    assert isinstance(items[0]["label"], int)
    post = classification_postprocessing(num_classes=2)
    items = [post(i) for i in items]
    assert {i["pred"].device.type for i in items} == {i["label_onehot"].device.type for i in items} == {"cpu"}
    probs = torch.stack([i["pred"] for i in items])
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(6))
    assert torch.equal(torch.stack([i["label_onehot"] for i in items]).argmax(1), torch.tensor(labels))
    metric = ROCAUCMetric()
    metric(probs, torch.stack([i["label_onehot"] for i in items]))
    expected = roc_auc(probs[:, 1].numpy(), np.asarray(labels))
    assert float(metric.aggregate()) == pytest.approx(float(expected))


def test_inference_keeps_no_label():
    out = classification_postprocessing(num_classes=3, with_label=False)({"pred": torch.zeros(3)})
    assert set(out) == {"pred"} and torch.allclose(out["pred"], torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="at least 2"):
        classification_postprocessing(num_classes=1)
