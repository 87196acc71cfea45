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
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d.setdefault(f"{key}_path", d[key])
        return d
