"""Inference inputs: expand files, folders and globs; a dataset that reports unreadable files instead of failing."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Mapping, Sequence

import torch
from monai.data import Dataset

from medkit.data.folders import list_image_files
from medkit.errors import InputFileError
from medkit.io.ct import VOLUME_SUFFIXES

__all__ = ["inference_datalist", "series_datalist", "TolerantDataset", "error_message"]

logger = logging.getLogger(__name__)

#: keys of what an item's result depends on but could not be read, set by the MRI preprocessing
#: (``medkit.transforms.mri.NEIGHBOUR_MISSING``, ``CASE_MISSING``); every ``TolerantDataset`` item carries them
CONTEXT_KEYS = ("neighbour_missing", "case_missing")


def inference_datalist(
    inputs: Sequence[str | os.PathLike], key: str = "image", skip_masks: bool = False, with_case: bool = False
) -> list[dict]:
    """One ``{key: path}`` item per input image, in the order given.

    A folder stands for every image below it (sorted by folder, then by name, the trailing slice number ``_<n>``
    of a name as a number: ``case_2`` before ``case_10``); a glob pattern for its matches (sorted). An input
    that does not exist or matches nothing, and a broken symbolic link in a folder, is kept as an item, so that
    reading it fails and it is reported by name with the others.

    Args:
        inputs: files, folders or glob patterns.
        key: key of the path in each item.
        skip_masks: leave out ``*_mask.*`` files (masks stored beside their slices, as in the LGG set).
        with_case: images found in a folder input get ``"case"`` (their folder's name) and ``"slice"`` (the
            trailing ``_<n>`` of their name, else their position), so writers can stack them per patient;
            single files get an empty case.
    """
    from medkit.data.lgg import is_mask_file, slice_number

    items: list[dict] = []

    def add(path: str, case: str = "", position: int = 0) -> None:
        if skip_masks and is_mask_file(path):
            return
        item = {key: os.path.abspath(path) if os.path.exists(path) else path}
        if with_case:
            number = slice_number(path) if case else None
            item.update(case=case, slice=position if number is None else number)
        items.append(item)

    for raw in inputs:
        path = os.path.expanduser(os.fspath(raw))
        if os.path.isdir(path):
            skipped: list[dict] = []
            files = list_image_files(path, skipped, recursive=True)
            for rec in skipped:  # a broken link was meant as an input: an item, reported when reading it fails
                if os.path.islink(rec["file"]):
                    files.append(rec["file"])
                else:
                    logger.warning("%s: %s (ignored)", rec["file"], rec["problem"])
            images = [f for f in files if not (skip_masks and is_mask_file(f))]  # positions count images only
            if not images:
                logger.warning("%s: folder holds no image files%s", path, " (only masks)" if files else "")
            for n, f in enumerate(sorted(images, key=_natural_slice_key)):
                add(f, os.path.basename(os.path.dirname(os.path.abspath(f))), n)
        elif os.path.exists(path):
            add(path)
        elif glob.has_magic(path):
            matches = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
            for f in matches or [path]:
                add(f)
        else:
            add(path)
    return items


def _natural_slice_key(path: str) -> tuple:
    """Sort key of a folder's files: by folder, then by the name before a trailing ``_<n>`` (the case), then by
    ``n`` as a number (``case_2`` before ``case_10``); names without one by themselves."""
    from medkit.data.lgg import case_of_slice, slice_number

    stem = case_of_slice(path)
    if stem is None:
        return os.path.dirname(path), os.path.basename(path), -1, path
    return os.path.dirname(path), stem, slice_number(path), path


def _is_volume(path: str) -> bool:
    return path.lower().endswith(VOLUME_SUFFIXES)


def _series_patient(folder: str) -> str:
    """Patient id of a series folder: its parent's name in the RSNA layout (``<patient_id>/<series_id>``, both
    numbers), else the folder's own name."""
    folder = os.path.abspath(folder)
    name, parent = os.path.basename(folder), os.path.basename(os.path.dirname(folder))
    return parent if name.isdigit() and parent.isdigit() else name


def series_datalist(inputs: Sequence[str | os.PathLike], key: str = "image") -> list[dict]:
    """One ``{key: path, "patient": id}`` item per CT volume found in ``inputs``.

    A NIfTI or NRRD file is one volume (patient: its name without suffix); a folder holding files is one DICOM series
    (its NIfTI files, if any, are volumes of their own); a folder holding only folders is searched below (a
    patient folder with series folders, or the competition's ``train_images``). Inputs that do not exist are
    kept, so reading them fails and they are reported by name.
    """
    items: list[dict] = []

    def walk(folder: str) -> None:
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        files = [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]
        volumes = [f for f in files if _is_volume(f)]
        for f in volumes:
            items.append({key: f, "patient": _volume_patient(f)})
        if len(files) > len(volumes):
            items.append({key: folder, "patient": _series_patient(folder)})
        for n in names:
            if os.path.isdir(os.path.join(folder, n)):
                walk(os.path.join(folder, n))

    for raw in inputs:
        path = os.path.abspath(os.path.expanduser(os.fspath(raw)))
        if os.path.isdir(path):
            before = len(items)
            walk(path)
            if len(items) == before:
                logger.warning("%s: folder holds no CT volume", path)
        elif os.path.isfile(path) and _is_volume(path):
            items.append({key: path, "patient": _volume_patient(path)})
        else:
            items.append({key: path, "patient": os.path.basename(path)})
    return items


def _volume_patient(path: str) -> str:
    name = os.path.basename(path)
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def error_message(exc: BaseException, path: str) -> str:
    """One line naming ``path`` and the problem, from an exception possibly wrapped by MONAI's transforms."""
    seen = exc
    while seen is not None:
        if isinstance(seen, InputFileError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    text = str(root).strip().splitlines()
    return f"{path}: {type(root).__name__}: {text[-1] if text else 'failed'}"


class TolerantDataset(Dataset):
    """A ``Dataset`` whose items never raise: an item whose transform fails comes back as a placeholder.

    Each returned item carries ``"error"``: ``""`` when the transform succeeded, else one line naming
    the file and the problem. A failed item holds a copy of ``placeholder`` (tensors of the shape the
    transform produces) and ``<key>_path`` for each placeholder key, so batches still collate and the
    writer can report it by name (``medkit.handlers.report_writer.report_failures``, after the run). Each failure is
    logged once at debug level, however often the item is read.

    Every item also carries each of ``context_keys`` (``""`` unless the transform set it): what a read item's
    result depends on but could not be read (``medkit.transforms.NeighbourSlicesd``'s ``"neighbour_missing"``,
    ``CaseChannelScaled``'s ``"case_missing"``), so that batches of read and failed items still collate.

    Args:
        data: items with file paths.
        transform: the preprocessing.
        placeholder: ``{key: tensor}`` standing in for a failed item's outputs.
        context_keys: keys every item carries, ``""`` where the transform did not set them.
    """

    def __init__(
        self,
        data: Sequence[dict],
        transform: Callable,
        placeholder: Mapping[str, torch.Tensor],
        context_keys: Sequence[str] = CONTEXT_KEYS,
    ) -> None:
        super().__init__(data=data, transform=transform)
        self.placeholder = dict(placeholder)
        self.context_keys = tuple(context_keys)
        self._reported: set[int] = set()  # failed items already logged (a two-pass reader sees them twice)

    def _transform(self, index: int) -> dict:
        item = self.data[index]
        try:
            out = super()._transform(index)
            out["error"] = ""
            for k in self.context_keys:
                out.setdefault(k, "")
            return out
        except Exception as e:  # any decoder/transform failure is reported, not raised
            key = next(iter(self.placeholder), "image")
            message = error_message(e, str(item.get(key, index)))
            if index not in self._reported:  # the writer's row reports it after the run (report_failures)
                self._reported.add(index)
                logger.debug(message)
            failed = {k: torch.as_tensor(v).clone() for k, v in self.placeholder.items()}
            failed.update({f"{k}_path": str(item.get(k, "")) for k in self.placeholder})
            # identifiers (patient, case, slice number) stay, so the failure is reported where it belongs
            failed.update({k: v for k, v in item.items() if k not in failed and isinstance(v, (str, int))})
            failed.update({k: "" for k in self.context_keys})
            failed["error"] = message
            return failed
