"""The RSNA 2023 Abdominal Trauma Detection layout written with synthetic series: which patients, their random
streams, the series folders, the optional masks and the two tables."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medkit.data.rsna import RSNA_SERIES_META_COLUMNS, RSNA_TRAIN_COLUMNS, SEGMENTATIONS_DIR, read_rsna_labels
from medkit.data.synthetic_ct.series import dicom_uid, segmentation_label_map, write_segmentation, write_series
from medkit.data.synthetic_ct.volume import RSNA_GRADES, RSNA_TARGETS, check_labels, synthetic_ct_volume
from medkit.errors import MedkitError
from medkit.io.atomic import write_table_atomic

__all__ = ["patient_rng", "write_synthetic_rsna", "write_synthetic_rsna_demo", "DEMO_INJURIES"]


def _patient_key(patient_id: str) -> int:
    return int.from_bytes(hashlib.sha256(str(patient_id).encode()).digest()[:8], "little")


def patient_rng(seed: int, patient_id: str) -> np.random.Generator:
    """The generator :func:`write_synthetic_rsna` gives :func:`synthetic_ct_volume` for one patient.

    It depends only on ``(seed, patient_id)``, so a patient's images do not depend on who else is written.
    """
    return np.random.default_rng([int(seed), _patient_key(patient_id)])


def _sort_key(patient_id: str) -> tuple:
    return (0, int(patient_id), "") if patient_id.isdigit() else (1, 0, patient_id)


def _strata(labels: Mapping[str, Mapping[str, int]], pool: Sequence[str]) -> list[tuple[str, int]]:
    """Every injured (target, grade) present in ``pool``, rarest first."""
    counts = {(t, g): 0 for t in RSNA_TARGETS for g in range(1, len(RSNA_GRADES[t]))}
    for p in pool:
        for t in RSNA_TARGETS:
            if labels[p][t]:
                counts[(t, labels[p][t])] += 1
    return sorted((k for k, n in counts.items() if n), key=lambda k: (counts[k], RSNA_TARGETS.index(k[0]), k[1]))


def _choose(labels: Mapping[str, Mapping[str, int]], pool: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` patients of ``pool`` picked by ``seed``: one of each injured (target, grade) first, rarest first,
    then one healthy patient, then at random."""
    order = [pool[i] for i in np.random.default_rng([int(seed), 0x5E1EC7]).permutation(len(pool))]
    chosen: list[str] = []
    taken: set[str] = set()
    for t, g in _strata(labels, pool):
        if len(chosen) >= n:
            break
        if any(labels[p][t] == g for p in chosen):
            continue
        p = next(p for p in order if p not in taken and labels[p][t] == g)
        chosen.append(p)
        taken.add(p)
    healthy = next((p for p in order if p not in taken and not any(labels[p][t] for t in RSNA_TARGETS)), None)
    if healthy is not None and len(chosen) < n and all(any(labels[p][t] for t in RSNA_TARGETS) for p in chosen):
        chosen.append(healthy)
        taken.add(healthy)
    for p in order:
        if len(chosen) >= n:
            break
        if p not in taken:
            chosen.append(p)
            taken.add(p)
    return chosen


def _series_counts(series_per_patient: int | tuple[int, int]) -> tuple[int, int]:
    lo_hi = (series_per_patient, series_per_patient) if isinstance(series_per_patient, int) else series_per_patient
    try:
        lo, hi = (int(v) for v in lo_hi)
    except (TypeError, ValueError):
        lo, hi = 0, -1
    if isinstance(series_per_patient, bool) or not 1 <= lo <= hi:
        raise MedkitError(f"series_per_patient must be an int >= 1 or a (min, max) pair, got {series_per_patient!r}")
    return lo, hi


def write_synthetic_rsna(
    out_dir: str | os.PathLike,
    labels: str | os.PathLike | Mapping[str, Mapping[str, int]],
    patient_ids: Iterable[str] | None = None,
    n_patients: int | None = None,
    shape: Sequence[int] = (96, 96, 64),
    seed: int = 0,
    series_per_patient: int | tuple[int, int] = 1,
    compression: str | None = None,
    segmentations: bool = False,
) -> dict[str, Any]:
    """Write an RSNA 2023 Abdominal Trauma Detection look-alike for real (or made-up) patients' labels.

    Layout, as the competition publishes it: ``out_dir/train_images/<patient_id>/<series_id>/<instance>.dcm``
    (CT Image Storage, uint16 stored values with RescaleIntercept -1024, 12 bits stored, one file per axial slice;
    instance numbers start at a random number per series and grow with ``ImagePositionPatient`` z),
    ``out_dir/train.csv`` (the real columns, one-hot, ``any_injury`` recomputed from the targets) and
    ``out_dir/train_series_meta.csv`` (``aortic_hu`` of each series, ``incomplete_organ`` 0).

    Each series is written under a temporary name beside its final folder and renamed when complete (an
    existing one is replaced), and the CSVs are written last, atomically: an interrupted run leaves no half
    series and no tables naming missing series. A patient's images depend only on ``(seed, patient_id)``
    (see :func:`patient_rng`), so a rerun with other patients reproduces the ones they share.

    Args:
        out_dir: the data set folder to write (created if needed).
        labels: a ``train.csv`` path or the dict :func:`read_rsna_labels` returns.
        patient_ids: the patients to write (all must be in ``labels``); default all of ``labels``.
        n_patients: write this many of them, picked by ``seed``: one patient of each injured target and grade
            first (rarest first, as far as ``n_patients`` allows), one healthy patient, then at random.
        shape: ``(x, y, z)`` voxels per series (columns, rows, slices).
        seed: random seed of the choice of patients and of every image.
        series_per_patient: series per patient, or a ``(min, max)`` pair to draw it per patient (the real set
            has one or two). The series of a patient share the body and differ in contrast timing and noise.
        compression: ``None`` (explicit VR little endian) or ``"rle"`` (RLE Lossless).
        segmentations: also write ``out_dir/segmentations/<series_id>.nii.gz``, organ and injury labels
            (``medkit.data.rsna.SEGMENTATION_LABELS``) on the series' grid, for training with voxel supervision.

    Returns:
        ``{"out_dir", "train_csv", "series_meta_csv", "patient_ids", "n_patients", "n_series", "n_files" (DICOM
        files plus the two CSVs), "counts" ({target: {grade name: patients}, "any_injury": patients}),
        "seconds"}``.

    Raises:
        InputFileError: a bad ``train.csv``.
        MedkitError: bad labels, unknown patients, or bad arguments.
    """
    start = time.perf_counter()
    if compression not in (None, "rle"):
        raise MedkitError(f"compression must be None or 'rle', got {compression!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MedkitError(f"seed must be a non-negative int, got {seed!r}")
    lo, hi = _series_counts(series_per_patient)
    if isinstance(labels, (str, os.PathLike)):
        table = read_rsna_labels(labels)
    elif isinstance(labels, Mapping):
        table = {str(p): check_labels(v, f"labels of patient {p}") for p, v in labels.items()}
    else:
        raise MedkitError(f"labels must be a train.csv path or a dict of patient labels, got {type(labels).__name__}")
    if patient_ids is None:
        pool = list(table)
    else:
        pool = list(dict.fromkeys(str(p) for p in patient_ids))
        unknown = [p for p in pool if p not in table]
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise MedkitError(f"patient ids not in the labels: {', '.join(unknown[:5])}{more}")
    if n_patients is not None:
        if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
            raise MedkitError(f"n_patients must be a positive int, got {n_patients!r}")
        if n_patients > len(pool):
            raise MedkitError(f"n_patients is {n_patients} but only {len(pool)} patients are available")
        pool = _choose(table, pool, int(n_patients), int(seed))
    if not pool:
        raise MedkitError("no patients to write")
    chosen = sorted(pool, key=_sort_key)

    out_dir = os.fspath(out_dir)
    shape = tuple(int(v) for v in shape)
    run = f"seed={int(seed)} shape={shape}"  # UIDs differ wherever the pixels may
    n_files = 0
    train_rows, series_rows = [], []
    for pid in chosen:
        key = _patient_key(pid)
        choice = np.random.default_rng([int(seed), key, 1])
        n_series = int(choice.integers(lo, hi + 1))
        series_ids = [int(v) for v in choice.choice(np.arange(1, 65536), size=n_series, replace=False)]
        patient_dir = os.path.join(out_dir, "train_images", pid)
        os.makedirs(patient_dir, exist_ok=True)
        uids = {"study": dicom_uid(run, pid, "study"), "frame": dicom_uid(run, pid, "frame")}
        for k, sid in enumerate(series_ids):
            volume, info = synthetic_ct_volume(
                table[pid], shape, patient_rng(seed, pid), series=k, return_masks=segmentations
            )
            first_instance = int(choice.integers(1, 60))
            final = os.path.join(patient_dir, str(sid))
            tmp = os.path.join(patient_dir, f".tmp-{os.getpid()}-{sid}")
            old = os.path.join(patient_dir, f".old-{os.getpid()}-{sid}")
            for leftover in (tmp, old):
                shutil.rmtree(leftover, ignore_errors=True)
            try:
                paths = write_series(
                    tmp,
                    volume,
                    info,
                    pid,
                    sid,
                    k + 1,
                    first_instance,
                    {**uids, "series": dicom_uid(run, pid, sid, "series")},
                    run,
                    compression,
                )
                if os.path.lexists(final):
                    os.replace(final, old)
                try:
                    os.replace(tmp, final)
                except OSError:
                    if os.path.lexists(old) and not os.path.lexists(final):
                        os.replace(old, final)
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
            n_files += len(paths)
            if segmentations:
                seg_path = os.path.join(out_dir, SEGMENTATIONS_DIR, f"{sid}.nii.gz")
                write_segmentation(seg_path, segmentation_label_map(info["masks"]), info)
                n_files += 1  # after its series: no mask of a series that is not there
            series_rows.append(
                {"patient_id": pid, "series_id": sid, "aortic_hu": info["aortic_hu"], "incomplete_organ": 0}
            )
        row: dict[str, Any] = {"patient_id": pid}
        for t in RSNA_TARGETS:
            for g, name in enumerate(RSNA_GRADES[t]):
                row[f"{t}_{name}"] = int(table[pid][t] == g)
        row["any_injury"] = int(any(table[pid][t] for t in RSNA_TARGETS))
        train_rows.append(row)

    train_csv = write_table_atomic(train_rows, RSNA_TRAIN_COLUMNS, os.path.join(out_dir, "train.csv"))
    meta_csv = write_table_atomic(series_rows, RSNA_SERIES_META_COLUMNS, os.path.join(out_dir, "train_series_meta.csv"))
    counts: dict[str, Any] = {
        t: {name: sum(table[p][t] == g for p in chosen) for g, name in enumerate(RSNA_GRADES[t])} for t in RSNA_TARGETS
    }
    counts["any_injury"] = sum(r["any_injury"] for r in train_rows)
    return {
        "out_dir": out_dir,
        "train_csv": train_csv,
        "series_meta_csv": meta_csv,
        "patient_ids": chosen,
        "n_patients": len(chosen),
        "n_series": len(series_rows),
        "n_files": n_files + 2,
        "counts": counts,
        "seconds": round(time.perf_counter() - start, 3),
    }


#: injuries of the small demo set: every target and grade at least once, two together in some patients
DEMO_INJURIES: tuple[dict[str, int], ...] = (
    {"extravasation": 1, "spleen": 2},
    {"bowel": 1},
    {"liver": 1},
    {"kidney": 2},
    {"liver": 2, "extravasation": 1},
    {"spleen": 1},
    {"kidney": 1, "bowel": 1},
)


def write_synthetic_rsna_demo(
    out_dir: str | os.PathLike, n_healthy: int = 7, shape: Sequence[int] = (32, 32, 16), seed: int = 0
) -> str:
    """A tiny RSNA look-alike for tests, demos and ``medkit verify``: ``DEMO_INJURIES`` patients (ids 1000...)
    and ``n_healthy`` healthy ones (ids 2000...), labels made up here, with organ and injury masks; returns
    ``out_dir``."""
    healthy = dict.fromkeys(RSNA_TARGETS, 0)
    labels = {str(1000 + i): {**healthy, **extra} for i, extra in enumerate(DEMO_INJURIES)}
    labels.update({str(2000 + i): dict(healthy) for i in range(n_healthy)})
    for row in labels.values():
        row["any_injury"] = int(any(row[t] for t in RSNA_TARGETS))
    write_synthetic_rsna(out_dir, labels, shape=shape, seed=seed, segmentations=True)
    return os.fspath(out_dir)
