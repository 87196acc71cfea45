"""``KeepPathd``: remember each input's file path under ``<key>_path`` before loading replaces it with pixels."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["KeepPathd"]


class KeepPathd(MapTransform):
    """Copy ``d[key]`` to ``d[f"{key}_path"]`` unless that is already set (MONAI Label sets ``image_path`` itself).

    Args:
        keys: keys of the file paths.
        allow_missing_keys: do not raise when a key is absent.
        from_meta: take the path from a loaded image's ``filename_or_obj`` meta instead (for chains that must
            not hold ``<key>_path`` early: MONAI's ``Spacingd`` takes every ``<key>_*`` entry of a NIfTI input
            for a meta dictionary).
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, from_meta: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.from_meta = from_meta

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if self.from_meta:
                value = str(getattr(value, "meta", {}).get("filename_or_obj", ""))
            d.setdefault(f"{key}_path", value)
        return d
