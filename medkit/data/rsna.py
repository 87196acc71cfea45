"""RSNA 2023 Abdominal Trauma Detection layout -> a MONAI datalist of CT series with per-organ labels.

Layout (as the competition publishes it)::

    <root>/train.csv                      patient_id, one-hot columns per organ, any_injury
    <root>/train_series_meta.csv          patient_id, series_id, aortic_hu, incomplete_organ
    <root>/train_images/<patient_id>/<series_id>/<instance_number>.dcm

Each series is one item ``{"image": <series folder>, "patient", "series", "label": [bowel, extravasation, kidney,
liver, spleen], "any_injury", "aortic_hu"}`` (``aortic_hu`` from ``train_series_meta.csv``, -1 when it has none:
a number either way, so batches collate) (labels as in ``medkit.metrics.rsna.TARGETS``: 0 healthy, 1 injury
or low, 2 high), plus ``"seg"``: ``<root>/segmentations/<series_id>.nii[.gz]`` where the series has one (the
competition published organ masks for some series; the synthetic set writes organ and injury masks for all, see
``SEGMENTATION_LABELS``). A patient's series all go to the same side of the split.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter

from medkit.data.folders import list_subfolders
from medkit.data.splits import check_split_fractions, split_three_ways
from medkit.errors import DatasetLayoutError, InputFileError
from medkit.io.ct import NIFTI_SUFFIXES
from medkit.io.header import broken_link_problem, dicom_header
from medkit.metrics.rsna import TARGET_NAMES, TARGETS

__all__ = [
    "build_rsna_datalist",
    "read_rsna_labels",
    "read_series_meta",
    "label_vector",
    "patient_stratum",
    "RSNA_TRAIN_COLUMNS",
    "RSNA_SERIES_META_COLUMNS",
    "SEGMENTATION_LABELS",
    "segmentation_path",
]

logger = logging.getLogger(__name__)

#: the columns of the real ``train.csv``, in order
RSNA_TRAIN_COLUMNS = ("patient_id", *(f"{t}_{g}" for t, grades in TARGETS for g in grades), "any_injury")
#: the columns of the real ``train_series_meta.csv``, in order
RSNA_SERIES_META_COLUMNS = ("patient_id", "series_id", "aortic_hu", "incomplete_organ")
#: voxel labels of ``segmentations/<series_id>.nii[.gz]``: 1-5 are the competition's organ masks; 6-10 are
#: medkit's injury labels (the synthetic set writes them; the real set has none), each over its organ's label
SEGMENTATION_LABELS: dict[str, int] = {
    "liver": 1,
    "spleen": 2,
    "kidney_left": 3,
    "kidney_right": 4,
    "bowel": 5,
    "liver_injury": 6,
    "spleen_injury": 7,
    "kidney_injury": 8,
    "bowel_injury": 9,
    "extravasation": 10,
}
SEGMENTATIONS_DIR = "segmentations"


def segmentation_path(root: str, series: str) -> str | None:
    """``<root>/segmentations/<series>.nii`` or ``.nii.gz`` (the competition's layout) if there is one."""
    for suffix in NIFTI_SUFFIXES:
        path = os.path.join(root, SEGMENTATIONS_DIR, f"{series}{suffix}")
        if os.path.isfile(path):
            return path
    return None


def _flag(cell: str) -> int | None:
    """0 or 1 from a CSV cell (``"1"``, ``"1.0"``), ``None`` for anything else."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if value in (0.0, 1.0) else None


def read_rsna_labels(train_csv: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read the competition's ``train.csv`` into per-patient labels.

    Args:
        train_csv: the real or a synthetic ``train.csv``; extra columns are ignored.

    Returns:
        ``patient_id -> {"bowel": 0|1, "extravasation": 0|1, "kidney": 0|1|2, "liver": 0|1|2, "spleen": 0|1|2,
        "any_injury": 0|1}``, where 1 is ``injury`` or ``low`` and 2 is ``high``; in file order.

    Raises:
        InputFileError: a missing file or column, a cell that is not 0/1, a target whose columns are not one-hot,
            an ``any_injury`` that disagrees with the targets, or a duplicate patient. Rows are numbered as lines
            of the file (the header is row 1), e.g. ``"train.csv: row 7 (patient 10217): kidney columns
            [0, 1, 1] are not one-hot"``.
    """
    path = os.fspath(train_csv)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as e:
        raise InputFileError(path, f"cannot open ({e.strerror or type(e).__name__})") from None
    labels: dict[str, dict[str, int]] = {}
    first_row: dict[str, int] = {}
    with f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise InputFileError(path, "empty file, expected the train.csv header")
        missing = [c for c in RSNA_TRAIN_COLUMNS if c not in header]
        if missing:
            raise InputFileError(path, f"row 1 (header): missing column(s) {', '.join(missing)}")
        col = {c: header.index(c) for c in RSNA_TRAIN_COLUMNS}
        for row in reader:
            n = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            pid = row[col["patient_id"]].strip() if len(row) > col["patient_id"] else ""
            where = f"row {n} (patient {pid or '?'})"
            if not pid:
                raise InputFileError(path, f"{where}: empty patient_id")
            if pid in labels:
                raise InputFileError(path, f"{where}: duplicate patient_id (first on row {first_row[pid]})")
            short = [c for c in RSNA_TRAIN_COLUMNS if col[c] >= len(row) or not row[col[c]].strip()]
            if short:
                raise InputFileError(path, f"{where}: missing value(s) for {', '.join(short)}")
            values = {}
            for c in RSNA_TRAIN_COLUMNS[1:]:
                values[c] = _flag(row[col[c]].strip())
                if values[c] is None:
                    raise InputFileError(path, f"{where}: {c} is {row[col[c]].strip()!r}, expected 0 or 1")
            out: dict[str, int] = {}
            for t, grades in TARGETS:
                group = [values[f"{t}_{g}"] for g in grades]
                if sum(group) != 1:
                    names = "/".join(f"{t}_{g}" for g in grades)
                    raise InputFileError(path, f"{where}: {t} columns {names} are {group}, expected exactly one 1")
                out[t] = group.index(1)
            injured = [t for t in TARGET_NAMES if out[t]]
            if values["any_injury"] != int(bool(injured)):
                problem = f"any_injury is 0 but {injured[0]} is injured" if injured else "any_injury is 1 but no injury"
                raise InputFileError(path, f"{where}: {problem}")
            out["any_injury"] = int(bool(injured))
            labels[pid] = out
            first_row[pid] = n
    return labels


def read_series_meta(path: str) -> dict[tuple[str, str], dict]:
    """``(patient_id, series_id)`` -> ``{"aortic_hu": float | None, "incomplete_organ": int}``; ``{}`` if no file."""
    if not os.path.isfile(path):
        return {}
    out: dict[tuple[str, str], dict] = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                key = (str(int(float(row["patient_id"]))), str(int(float(row["series_id"]))))
                hu = row.get("aortic_hu", "")
                out[key] = {
                    "aortic_hu": float(hu) if hu not in ("", None) else None,
                    "incomplete_organ": int(float(row.get("incomplete_organ") or 0)),
                }
            except (KeyError, ValueError) as e:
                raise InputFileError(path, f"row {n}: {e}") from None
    return out


def label_vector(labels: dict[str, int]) -> list[int]:
    """The five target labels of one patient in ``TARGETS`` order."""
    return [int(labels[name]) for name in TARGET_NAMES]


def _series_problem(folder: str) -> str | None:
    """``None`` when every file of ``folder`` has a readable DICOM header of an image within
    ``medkit.io.header.MAX_PIXELS``, else the first problem found (``"<file name>: <problem>"``)."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or os.path.isdir(path):
            continue
        try:
            dicom_header(path)
        except InputFileError as e:
            return f"{name}: {e.problem}"
    return None


def _listing_problem(folder: str) -> str | None:
    """``"empty series folder"`` or the first broken symbolic link of ``folder`` (``"<name>: broken ..."``), else
    ``None``; costs one directory listing (a ``stat`` only for symbolic links)."""
    empty = True
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            empty = False
            problem = broken_link_problem(entry.path) if entry.is_symlink() else None
            if problem:
                return f"{entry.name}: {problem}"
    return "empty series folder" if empty else None


def _rows_without_images(images: str, labels: dict, meta: dict) -> list[dict]:
    """A ``skipped`` record for each patient of ``train.csv`` without a folder under ``images`` and for each row of
    ``train_series_meta.csv`` without a series folder (unless its patient's whole folder is already reported)."""
    records = [
        {"file": os.path.join(images, pid), "problem": "patient of train.csv has no image folder (left out)"}
        for pid in labels
        if not os.path.isdir(os.path.join(images, pid))
    ]
    reported = {rec["file"] for rec in records}
    for pid, sid in meta:
        folder = os.path.join(images, pid, sid)
        if os.path.join(images, pid) not in reported and not os.path.isdir(folder):
            records.append({"file": folder, "problem": "series of train_series_meta.csv has no folder (left out)"})
    return records


def patient_stratum(label: list[int]) -> str:
    """A patient's split stratum: the rarest injury it has (extravasation, bowel, high grade, low grade) or healthy."""
    bowel, extravasation, *organs = label
    if extravasation:
        return "extravasation"
    if bowel:
        return "bowel"
    return "high" if max(organs) == 2 else "low" if max(organs) == 1 else "healthy"


def build_rsna_datalist(
    dataset_dir: str,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    images_dir: str = "train_images",
    check_images: bool = False,
    progress: bool = False,
) -> dict:
    """A MONAI datalist of every labelled series under ``dataset_dir``, split by patient (training/validation/test).

    Patients are stratified by their rarest injury (``patient_stratum``) so that the few extravasation and bowel
    injuries reach every split. Reported in ``"skipped"`` (one ``{"file", "problem"}`` record each) and left out:
    patients of ``train.csv`` without an image folder (also counted in ``"missing"``), rows of
    ``train_series_meta.csv`` without a series folder, series folders that are empty or hold a broken symbolic
    link, folders of patients missing from ``train.csv``, broken symbolic links among the folders.
    With ``check_images`` every file's DICOM header is read and series with unreadable files, or images over
    ``medkit.io.header.MAX_PIXELS``, are left out (pixels are decoded when a series is loaded, where a failure
    names the file).

    Raises:
        DatasetLayoutError: no ``train.csv``, or no series folder of a labelled patient.
    """
    check_split_fractions(val_fraction, test_fraction)
    root = os.path.abspath(os.path.expanduser(os.fspath(dataset_dir)))
    labels_csv = os.path.join(root, "train.csv")
    if not os.path.isfile(labels_csv):
        raise DatasetLayoutError(root, "no train.csv (the RSNA 2023 label table) in this folder")
    labels = read_rsna_labels(labels_csv)
    meta = read_series_meta(os.path.join(root, "train_series_meta.csv"))
    images = os.path.join(root, images_dir)
    if not os.path.isdir(images):
        raise DatasetLayoutError(
            root,
            f"no {images_dir}/ folder: the RSNA CT images are not here (only the tables?); "
            "`medkit prepare rsna-synthetic` writes a look-alike set to train and test the pipeline on",
        )
    skipped: list[dict] = []
    items: list[dict] = []
    patients = list_subfolders(images, skipped)
    if progress:
        from tqdm import tqdm

        patients = tqdm(patients, desc="reading series headers", unit="patient")
    for patient in patients:
        if patient not in labels:
            skipped.append({"file": os.path.join(images, patient), "problem": "patient not in train.csv (left out)"})
            continue
        series_folders = list_subfolders(os.path.join(images, patient), skipped)
        if not series_folders:
            skipped.append({"file": os.path.join(images, patient), "problem": "no series folder (left out)"})
        for series in series_folders:
            folder = os.path.join(images, patient, series)
            problem = _listing_problem(folder)
            if problem:
                skipped.append({"file": folder, "problem": problem + " (left out)"})
                continue
            if check_images:
                problem = _series_problem(folder)
                if problem:
                    skipped.append({"file": folder, "problem": problem + " (left out)"})
                    continue
            vector = label_vector(labels[patient])
            info = meta.get((patient, series), {})
            item = {
                "image": folder,
                "patient": patient,
                "series": series,
                "label": vector,
                "any_injury": int(any(vector)),
                "aortic_hu": -1.0 if info.get("aortic_hu") is None else info["aortic_hu"],
            }
            seg = segmentation_path(root, series)
            if seg:
                item["seg"] = seg
            items.append(item)
    if not items:
        raise DatasetLayoutError(images, "no <patient_id>/<series_id>/ folder of a patient listed in train.csv")
    reported = {rec["file"] for rec in skipped}
    skipped.extend(rec for rec in _rows_without_images(images, labels, meta) if rec["file"] not in reported)
    strata = {i["patient"]: patient_stratum(i["label"]) for i in items}
    sides = split_three_ways(strata, val_fraction, test_fraction, seed)
    datalist: dict = {
        "name": "rsna-2023-abdominal-trauma-detection",
        "root": root,
        "targets": list(TARGET_NAMES),
        "training": [],
        "validation": [],
        "test": [],
        "skipped": skipped,
        "missing": len(set(labels) - set(strata)),
    }
    for item in items:
        datalist[sides[item["patient"]]].append(item)
    counts = {
        side: Counter(strata[i["patient"]] for i in datalist[side]) for side in ("training", "validation", "test")
    }
    logger.info("RSNA datalist: %s", {side: dict(c) for side, c in counts.items()})
    return datalist
