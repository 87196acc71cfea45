import glob
import os

import numpy as np
import pytest
import tifffile

from medkit.data.datalist import class_counts, item_class
from medkit.errors import InputFileError
from medkit.transforms import ClassFromMaskd


def _mask(path, value):
    arr = np.zeros((8, 8), np.uint8)
    arr[2:4, 3:5] = value
    tifffile.imwrite(path, arr, compression="zlib")
    return str(path)


def test_item_class_reads_numbers_and_masks(tmp_path):
    full, empty = _mask(tmp_path / "a_mask.tif", 255), _mask(tmp_path / "b_mask.tif", 0)
    assert [item_class(v) for v in (0, 1, "1", " 0", 1.0)] == [0, 1, 1, 0, 1]
    assert item_class(full) == 1 and item_class(empty) == 0
    png = tmp_path / "c_mask.png"
    from PIL import Image

    Image.fromarray(np.pad(np.full((2, 2), 255, np.uint8), 3)).save(png)
    assert item_class(str(png)) == 1


def test_item_class_names_a_missing_or_broken_mask(tmp_path):
    with pytest.raises(InputFileError, match="nope_mask.tif: label is neither a class number nor a mask file"):
        item_class(str(tmp_path / "nope_mask.tif"))
    broken = tmp_path / "broken_mask.tif"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(InputFileError, match="broken_mask.tif"):
        item_class(str(broken))


def test_class_from_maskd_and_class_counts_on_a_monai_label_datalist(synthetic_lgg):
    # MONAI Label's datastore: every image with its label file
    masks = sorted(glob.glob(os.path.join(synthetic_lgg, "**", "*_mask.tif"), recursive=True))
    items = [{"image": m.replace("_mask.tif", ".tif"), "label": m} for m in masks]
    classes = [ClassFromMaskd(keys="label")(i)["label"] for i in items]
    expected = [int(np.any(tifffile.imread(m))) for m in masks]
    assert classes == expected and 0 < sum(expected) < len(expected)
    assert class_counts(items, 2) == [expected.count(0), expected.count(1)]
    # numbers pass through untouched
    assert ClassFromMaskd(keys="label")({"label": 1})["label"] == 1
