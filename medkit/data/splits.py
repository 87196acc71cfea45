"""Patient-level, class-stratified train/validation splits."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["split_by_patient", "split_three_ways", "check_split_fractions", "kfold_patients", "split_fold"]


def split_by_patient(
    items: Sequence[dict], val_fraction: float = 0.15, seed: int = 0, patient_key: str = "patient"
) -> tuple[list[dict], list[dict]]:
    """Split items into training and validation so that no patient is on both sides.

    Patients are stratified by their most frequent label, so each class keeps about
    ``val_fraction`` of its patients in validation.

    Args:
        items: dicts with ``patient_key`` and ``"label"``.
        val_fraction: fraction of each class's patients that go to validation, in ``[0, 1)``.
        seed: seed of the shuffle, so the split is reproducible.
        patient_key: key of the patient id.

    Returns:
        ``(training, validation)`` lists, each in the input order.

    Raises:
        ValueError: ``val_fraction`` is outside ``[0, 1)`` or an item lacks the keys.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels_of: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        if patient_key not in item or "label" not in item:
            raise ValueError(f"every item needs '{patient_key}' and 'label' keys, got {sorted(item)}")
        labels_of[item[patient_key]][item["label"]] += 1
    by_class: dict[object, list[str]] = defaultdict(list)
    for patient in sorted(labels_of):
        by_class[labels_of[patient].most_common(1)[0][0]].append(patient)
    rng = np.random.default_rng(seed)
    val_patients: set[str] = set()
    for label in sorted(by_class, key=str):
        patients = by_class[label]
        order = rng.permutation(len(patients))
        n_val = int(round(val_fraction * len(patients)))
        if val_fraction > 0 and n_val == 0 and len(patients) > 1:
            n_val = 1
        val_patients.update(patients[i] for i in order[:n_val])
    training = [i for i in items if i[patient_key] not in val_patients]
    validation = [i for i in items if i[patient_key] in val_patients]
    return training, validation


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise ``ValueError`` unless validation and test fractions leave patients for training (builders call it
    before scanning a data set, so a bad value fails at once)."""
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}")


def split_three_ways(
    strata: dict[str, object], val_fraction: float, test_fraction: float, seed: int = 0
) -> dict[str, str]:
    """Patient -> ``"training"``, ``"validation"`` or ``"test"``, each stratum keeping about the given fractions.

    The test patients are drawn first (seed ``seed``), then validation from the rest (seed ``seed + 1``), so
    changing ``val_fraction`` never moves a patient into or out of the test set.

    Args:
        strata: patient id -> its stratum (any hashable label).
        val_fraction: fraction of patients for validation.
        test_fraction: fraction of patients held out for testing.
        seed: seed of the split.

    Raises:
        ValueError: the fractions do not leave patients for training.
    """
    check_split_fractions(val_fraction, test_fraction)
    keyed = [{"patient": p, "label": s} for p, s in strata.items()]
    rest, test = split_by_patient(keyed, test_fraction, seed=seed)
    train, val = split_by_patient(rest, val_fraction / (1.0 - test_fraction), seed=seed + 1)
    sides = {k["patient"]: "training" for k in train}
    sides.update({k["patient"]: "validation" for k in val})
    sides.update({k["patient"]: "test" for k in test})
    return sides


def kfold_patients(strata: dict[str, object], n_folds: int, seed: int = 0) -> dict[str, int]:
    """Patient -> fold ``0..n_folds-1``; each stratum's patients are shuffled (seed ``seed``) and dealt round-robin,
    so every fold gets its share of each stratum and fold sizes differ by at most one per stratum.

    Raises:
        ValueError: ``n_folds`` is below 2 or above the number of patients.
    """
    if not 2 <= n_folds <= len(strata):
        raise ValueError(f"n_folds must be between 2 and the number of patients ({len(strata)}), got {n_folds}")
    rng = np.random.default_rng(seed)
    by_stratum: dict[object, list[str]] = defaultdict(list)
    for patient in sorted(strata):
        by_stratum[strata[patient]].append(patient)
    fold_of: dict[str, int] = {}
    start = 0  # continue dealing where the last stratum stopped, so small strata do not all land in fold 0
    for stratum in sorted(by_stratum, key=str):
        patients = by_stratum[stratum]
        for i, j in enumerate(rng.permutation(len(patients))):
            fold_of[patients[j]] = (start + i) % n_folds
        start = (start + len(patients)) % n_folds
    return fold_of


def split_fold(
    strata: dict[str, object], n_folds: int, fold: int, val_fraction: float = 0.0, seed: int = 0
) -> dict[str, str]:
    """Patient -> ``"training"``, ``"validation"`` or ``"test"`` for fold ``fold`` of a ``n_folds``-fold
    cross-validation: the fold's patients are the test side, ``val_fraction`` of the others (stratified, seed
    ``seed + 1``) validation, the rest training. Over the folds every patient is tested exactly once.

    Raises:
        ValueError: ``fold`` is not in ``0..n_folds-1`` (or ``n_folds`` is invalid, see ``kfold_patients``).
    """
    fold_of = kfold_patients(strata, n_folds, seed)
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    rest = [{"patient": p, "label": strata[p]} for p in strata if fold_of[p] != fold]
    train, val = split_by_patient(rest, val_fraction, seed=seed + 1)
    sides = {p: "test" for p in strata if fold_of[p] == fold}
    sides.update({k["patient"]: "training" for k in train})
    sides.update({k["patient"]: "validation" for k in val})
    return sides
