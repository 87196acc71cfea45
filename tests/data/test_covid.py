from __future__ import annotations

import os

import pytest

from medkit.data import build_covid_datalist, make_datalist, select_split
from medkit.data.covid import FOLDERS, FOUR_CLASS_MAP, THREE_CLASSES
from medkit.data.synthetic import write_synthetic_covid_radiography
from medkit.errors import DatasetLayoutError, MedkitError


@pytest.fixture(scope="module")
def four_folders(tmp_path_factory) -> str:
    return write_synthetic_covid_radiography(tmp_path_factory.mktemp("covid4"), n_per_class=5, size=32, folders=FOLDERS)


def _counts(d: dict) -> dict:
    names = d["labels"]
    out: dict = {}
    for item in select_split(d, "all"):
        out[names[str(item["label"])]] = out.get(names[str(item["label"])], 0) + 1
    return out


def test_three_classes_merge_other_diseases(four_folders):
    d = build_covid_datalist(four_folders, val_fraction=0.2)
    assert d["labels"] == {"0": "COVID", "1": "Other_lung_disease", "2": "Normal"}
    assert _counts(d) == {"COVID": 5, "Other_lung_disease": 10, "Normal": 5}
    assert d["skipped"] == []


def test_four_classes(four_folders):
    d = build_covid_datalist(four_folders, class_names=FOLDERS, folder_classes=FOUR_CLASS_MAP)
    assert [d["labels"][str(i)] for i in range(4)] == list(FOLDERS)
    assert set(_counts(d).values()) == {5}


def test_missing_folder_reported_once(tmp_path, caplog):
    root = write_synthetic_covid_radiography(tmp_path / "c", n_per_class=4, size=32)
    d = make_datalist("covid", root)  # the builder returns the records; make_datalist logs each once
    absent = [r for r in d["skipped"] if r["problem"] == "class folder absent"]
    assert len(absent) == 1 and absent[0]["file"].endswith("Lung_Opacity")
    assert sum("Lung_Opacity: class folder absent" in r.message for r in caplog.records) == 1
    assert _counts(d) == {"COVID": 4, "Other_lung_disease": 4, "Normal": 4}


def test_images_subfolder_and_nested_root(tmp_path):
    root = tmp_path / "download" / "COVID-19_Radiography_Dataset"
    write_synthetic_covid_radiography(root, n_per_class=3, size=32, images_subfolder=True)
    (root / "COVID" / "masks").mkdir()
    (root / "COVID.metadata.xlsx").write_text("ignored")
    d = build_covid_datalist(str(tmp_path / "download"))
    assert len(select_split(d, "all")) == 9
    assert all(f"{os.sep}images{os.sep}" in i["image"] for i in select_split(d, "all"))


def test_unknown_class_and_mismatched_map(tmp_path):
    root = write_synthetic_covid_radiography(tmp_path / "c", n_per_class=2, size=32)
    with pytest.raises(ValueError, match="not in class_names"):
        build_covid_datalist(root, class_names=THREE_CLASSES, folder_classes={"COVID": "Covid-19"})
    os.makedirs(os.path.join(root, "Tuberculosis"))
    with pytest.raises(DatasetLayoutError, match="Tuberculosis: unknown class folder"):
        build_covid_datalist(root)


def test_datalist_file_must_match_bundle_classes(tmp_path, four_folders):
    from medkit.data import write_json_atomic

    path = write_json_atomic(build_covid_datalist(four_folders), tmp_path / "dl.json")
    assert make_datalist("covid", datalist_file=path, class_names=THREE_CLASSES)["training"]
    with pytest.raises(MedkitError, match="differ from the bundle"):
        make_datalist("covid", datalist_file=path, class_names=FOLDERS)


def test_real_covid_layout(medkit_data):
    d = build_covid_datalist(os.path.join(medkit_data, "COVID-19_Radiography_Dataset"), check_images=False)
    assert _counts(d) == {"COVID": 800, "Other_lung_disease": 600, "Normal": 1000}


def test_a_bomb_is_left_out_by_name(tmp_path, synthetic_covid):
    import shutil

    from tests.io.test_header import write_bomb_png

    root = tmp_path / "c"
    shutil.copytree(synthetic_covid, root)
    bomb = write_bomb_png(root / "COVID" / "COVID-999.png", 30000, 30000)
    d = build_covid_datalist(str(root), check_images=False)
    assert [r for r in d["skipped"] if r["file"] == bomb][0]["problem"].startswith("image of 900,000,000 pixels")
    assert bomb not in {i["image"] for i in select_split(d, "all")}
    assert _counts(d)["COVID"] == 12
