"""``CheckInputd``: refuse an input of a kind the bundle was not made for, by name, instead of predicting on it.

A bundle declares what it accepts once, in its metadata (``medkit.accepts``, described in
``medkit/schemas/meta_schema.json``); each preprocessing factory runs this check right after loading, so
``medkit``, ``python -m monai.bundle run`` and MONAI Label all refuse the same inputs. A refused input raises
:class:`~medkit.errors.InputFileError` (``"<path>: <problem>"``), which ``medkit.data.TolerantDataset`` turns into
the input's error row while the rest of the batch is predicted.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medkit.errors import InputFileError

__all__ = ["CheckInputd", "ACCEPTS_KEYS"]

#: the entries of ``medkit.accepts`` (and keyword arguments of ``CheckInputd``), each with what it means
ACCEPTS_KEYS: dict[str, str] = {
    "kind": "what the bundle reads, in words, for the messages (e.g. 'chest radiograph')",
    "modalities": "DICOM Modality values accepted where the file has a header (an empty Modality passes)",
    "max_frames": "most frames of a multi-frame DICOM",
    "spatial_dims": "spatial dimensions of the image (2: a slice or radiograph, 3: a volume)",
    "channels": "channels of the image as read",
    "max_colour_spread": "largest colour_spread of a colour file (0: grey stored as colour; a photograph or a "
    "3-sequence MRI slice is far above 0.01; 886 of the 920 real LGG slices are above 0.02)",
    "min_size": "smallest size, in pixels or voxels, along each spatial dimension",
    "min_extent_mm": "smallest extent in millimetres along each spatial dimension (voxel size from the affine)",
    "finite": "every value must be finite (no NaN or Inf)",
    "not_constant": "the image must not have one value everywhere (a blank image)",
    "value_range": "[low, high]: at least half of the values must lie in this range (CT: Hounsfield units)",
}


def _sizes(value: Any, n: int, name: str) -> list[float]:
    """``value`` as ``n`` numbers (one number stands for all ``n``)."""
    values = [value] * n if isinstance(value, (int, float)) else list(value)
    if len(values) != n:
        raise ValueError(f"{name}: expected one number or {n}, got {value!r}")
    return [float(v) for v in values]


def _a(words: str) -> str:
    """``words`` with its indefinite article."""
    return f"{'an' if words[:1].lower() in 'aeiou' else 'a'} {words}"


def _fmt(values: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in values)


class CheckInputd(MapTransform):
    """Raise ``InputFileError("<path>: <problem>")`` for an image outside what the bundle accepts.

    Put it straight after loading: it reads the reader's metadata (``modality``/``Modality``, ``frames``,
    ``colour_spread``, the affine) and the channel-first image. Each limit is optional; an absent one is not
    checked. The file is named by ``<key>_path`` (``KeepPathd``), else the image's ``filename_or_obj``.

    Args:
        keys: keys of channel-first images (MONAI ``MetaTensor`` for the header checks).
        accepts: the bundle's ``medkit.accepts`` (keys of :data:`ACCEPTS_KEYS`); ``None``: nothing checked
            beyond ``limits``.
        allow_missing_keys: do not raise when a key is absent.
        limits: single entries of ``accepts``, set over it.

    Raises:
        ValueError: an entry that is not one of :data:`ACCEPTS_KEYS`, or a malformed one.
    """

    def __init__(
        self,
        keys: KeysCollection,
        accepts: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
        **limits: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.accepts = {**dict(accepts or {}), **limits}
        unknown = sorted(set(self.accepts) - set(ACCEPTS_KEYS))
        if unknown:
            raise ValueError(f"accepts: unknown entries {unknown}; expected some of {sorted(ACCEPTS_KEYS)}")
        self.noun = str(self.accepts.get("kind") or "image")
        self.kind = _a(self.noun)
        modalities = self.accepts.get("modalities")
        self.modalities = None if modalities is None else [str(m).upper() for m in modalities]
        value_range = self.accepts.get("value_range")
        if value_range is not None and (len(value_range) != 2 or float(value_range[0]) >= float(value_range[1])):
            raise ValueError(f"accepts.value_range: expected [low, high] with low < high, got {value_range!r}")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            meta = getattr(img, "meta", None) or {}
            path = str(d.get(f"{key}_path") or meta.get("filename_or_obj") or key)
            problem = self.problem(img, meta)
            if problem:
                raise InputFileError(path, problem)
        return d

    def problem(self, img: Any, meta: Mapping[str, Any]) -> str:
        """What is wrong with channel-first ``img`` (with its reader's ``meta``), in a few words; ``""`` if nothing."""
        a = self.accepts
        for check in (self._header, self._shape, self._values):
            found = check(img, meta, a)
            if found:
                return found
        return ""

    def _header(self, img: Any, meta: Mapping[str, Any], a: Mapping[str, Any]) -> str:
        modality = str(meta.get("modality") or meta.get("Modality") or "").strip().upper()
        if self.modalities is not None and modality and modality not in self.modalities:
            return f"DICOM modality {modality}, not {self.kind} (this bundle accepts {', '.join(self.modalities)})"
        frames = int(meta.get("frames", 1) or 1)
        if a.get("max_frames") is not None and frames > int(a["max_frames"]):
            return f"multi-frame DICOM ({frames} frames), not a single {self.noun}"
        spread = float(meta.get("colour_spread", 0.0) or 0.0)
        if a.get("max_colour_spread") is not None and spread > float(a["max_colour_spread"]):
            return f"a colour image (its channels differ by {spread:.0%} of the value range), so not {self.kind}"
        return ""

    def _shape(self, img: Any, meta: Mapping[str, Any], a: Mapping[str, Any]) -> str:
        shape = [int(s) for s in img.shape[1:]]
        n = len(shape)
        if a.get("spatial_dims") is not None and n != int(a["spatial_dims"]):
            return (
                f"a {n}D image (shape {_fmt(shape)}), this bundle needs {int(a['spatial_dims'])}D input ({self.kind})"
            )
        if a.get("channels") is not None and int(img.shape[0]) != int(a["channels"]):
            return f"has {int(img.shape[0])} channel(s), this bundle needs {int(a['channels'])}"
        if a.get("min_size") is not None:
            low = _sizes(a["min_size"], n, "accepts.min_size")
            if any(s < m for s, m in zip(shape, low)):
                unit = "voxels" if n == 3 else "pixels"
                return f"{_fmt(shape)} {unit}, smaller than the {_fmt(low)} this bundle needs for {self.kind}"
        if a.get("min_extent_mm") is not None:
            affine = np.asarray(getattr(img, "affine", np.eye(n + 1)), dtype=np.float64)
            spacing = np.linalg.norm(affine[:n, :n], axis=0) if affine.shape[0] > n else np.ones(n)
            extent = [round(float(s * p), 1) for s, p in zip(shape, spacing)]
            low = _sizes(a["min_extent_mm"], n, "accepts.min_extent_mm")
            if any(e < m for e, m in zip(extent, low)):
                return f"covers {_fmt(extent)} mm, less than the {_fmt(low)} mm this bundle needs for {self.kind}"
        return ""

    def _values(self, img: Any, meta: Mapping[str, Any], a: Mapping[str, Any]) -> str:
        # numpy, not torch: one image's statistics, and torch's thread pool stalls on a busy machine
        tensor = img.as_tensor() if hasattr(img, "as_tensor") else torch.as_tensor(img)
        values = np.asarray(tensor.detach().cpu()).reshape(-1)
        if values.size == 0:
            return "image has no pixels"
        if a.get("finite") and values.dtype.kind == "f":
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if bad == values.size:
                return "every value is NaN or Inf"
            if bad:
                return f"{bad} of {values.size} values are NaN or Inf"
        if a.get("not_constant"):
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            if low == high:
                return f"every value is {low:g} (a blank image)"
        if a.get("value_range") is not None:
            low, high = (float(v) for v in a["value_range"])
            inside = float(np.count_nonzero((values >= low) & (values <= high))) / values.size
            if inside < 0.5:
                return f"only {inside:.0%} of its values lie in {low:g} to {high:g}, the range of {self.kind}"
        return ""
