"""Classifier labels from masks, and post-processing of classifier outputs shared by training, evaluation and
inference."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.transforms import Activationsd, AsDiscreted, Compose, CopyItemsd, EnsureTyped, MapTransform

__all__ = ["ClassFromMaskd", "classification_postprocessing"]


class ClassFromMaskd(MapTransform):
    """Turn a label given as a mask file path into its class (1: the mask has a foreground pixel, 0: empty);
    class numbers pass through as ``int``. What MONAI Label's datastore gives a classification bundle's trainer
    is the label file of each image, so a slice classifier's train.json starts with this
    (``medkit.data.item_class`` reads the label; an unreadable mask raises ``InputFileError`` naming it).
    """

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        from medkit.data.datalist import item_class

        d = dict(data)
        for key in self.key_iterator(d):
            if isinstance(d[key], str):
                d[key] = item_class(d[key])
        return d


def classification_postprocessing(num_classes: int, with_label: bool = True) -> Compose:
    """Softmax the logits in ``pred``; with labels, add ``label_onehot`` for ROC AUC.

    After it, ``pred`` holds class probabilities, ``label`` the integer class and ``label_onehot``
    its one-hot vector, which is what ``ignite.metrics.Accuracy`` and MONAI's ``ROCAUC`` read. ``pred`` is brought
    to the CPU: the engines decollate each item's class label into a Python number (``decollate_batch(detach=True)``
    turns 0-d tensors into scalars), so ``label_onehot`` is built on the CPU, and MONAI's ``ROCAUC`` fails on a
    GPU ``pred`` beside it (found on an H200); a few probabilities per image cost nothing to copy.

    Args:
        num_classes: number of output classes (at least 2).
        with_label: the data carry a ``label`` (training, evaluation) or not (inference).
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    transforms = [EnsureTyped(keys="pred", track_meta=False, device="cpu"), Activationsd(keys="pred", softmax=True)]
    if with_label:
        transforms += [
            CopyItemsd(keys="label", names="label_onehot"),
            AsDiscreted(keys="label_onehot", to_onehot=int(num_classes)),
        ]
    return Compose(transforms)
