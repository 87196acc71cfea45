"""``LoadXRayd``: load radiographs with ``XRayReader`` only, so a bad file fails with medkit's own message."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.data import ImageReader
from monai.transforms import LoadImage, MapTransform

from medkit.io.xray import XRayReader

__all__ = ["LoadWithReaderd", "LoadXRayd"]


class LoadWithReaderd(MapTransform):
    """Load images with one medkit reader only, as ``(C, rows, columns)`` float32.

    Unlike ``LoadImaged(reader=...)``, no other MONAI reader is tried when this one fails, so the error that
    surfaces is ``InputFileError("<path>: <problem>")``.

    Args:
        keys: keys of the file paths.
        reader: the ``ImageReader``.
        allow_missing_keys: do not raise when a key is absent.
    """

    def __init__(self, keys: KeysCollection, reader: ImageReader, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reader = reader
        self.loader = LoadImage(reader=self.reader, image_only=True, ensure_channel_first=True)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], reader=self.reader)
        return d


class LoadXRayd(LoadWithReaderd):
    """Load PNG/JPEG/DICOM radiographs as ``(1, rows, columns)`` float32 images with ``XRayReader``."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, XRayReader(), allow_missing_keys)
