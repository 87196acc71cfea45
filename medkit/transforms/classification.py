"""Post-processing of classifier outputs shared by training, evaluation and inference."""

from __future__ import annotations

from monai.transforms import Activationsd, AsDiscreted, Compose, CopyItemsd, EnsureTyped

__all__ = ["classification_postprocessing"]


def classification_postprocessing(num_classes: int, with_label: bool = True) -> Compose:
    """Softmax the logits in ``pred``; with labels, add ``label_onehot`` for ROC AUC.

    After it, ``pred`` holds class probabilities, ``label`` the integer class and ``label_onehot``
    its one-hot vector, which is what ``ignite.metrics.Accuracy`` and MONAI's ``ROCAUC`` read.

    Args:
        num_classes: number of output classes (at least 2).
        with_label: the data carry a ``label`` (training, evaluation) or not (inference).
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    transforms = [EnsureTyped(keys="pred", track_meta=False), Activationsd(keys="pred", softmax=True)]
    if with_label:
        transforms += [
            CopyItemsd(keys="label", names="label_onehot"),
            AsDiscreted(keys="label_onehot", to_onehot=int(num_classes)),
        ]
    return Compose(transforms)
