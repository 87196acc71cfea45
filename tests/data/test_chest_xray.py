from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from medkit.data import build_chest_xray_datalist, class_weights, make_datalist, select_split, split_by_patient
from medkit.data.chest_xray import acquisition_traits, patient_id, series_of, split_by_series, split_by_traits
from medkit.errors import DatasetLayoutError, MedkitError


@pytest.mark.parametrize(
    "name, patient",
    [
        ("person1_bacteria_1.jpeg", "person1"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-0381-0001.jpeg", "NORMAL2-IM-0381"),
        ("odd_name.png", "odd_name"),
    ],
)
def test_patient_id(name, patient):
    assert patient_id(f"/x/NORMAL/{name}") == patient


@pytest.mark.parametrize(
    "name, series",
    [
        ("person12_bacteria_40.jpeg", ("person", 12)),
        ("person12_virus_41.jpeg", ("person", 12)),
        ("IM-0115-0001.jpeg", ("IM", 115)),
        ("NORMAL2-IM-0381-0001.jpeg", ("NORMAL2-IM", 381)),
        ("person447_virus_921_1.jpeg", None),
        ("odd_name.png", None),
    ],
)
def test_series_of(name, series):
    assert series_of(f"/x/{name}") == series


def _named(names: list[str]) -> list[dict]:
    return [{"image": f"/d/{n}", "patient": patient_id(n), "label": int(n.startswith("person"))} for n in names]


def test_split_by_series_holds_out_the_last_numbers_of_each_series():
    names = [f"IM-{i:04d}-0001.jpeg" for i in range(100, 120)]
    names += [f"NORMAL2-IM-{i:04d}-000{k}.jpeg" for i in range(500, 510) for k in (1, 2)]
    names += [f"person{i}_bacteria_{i}.jpeg" for i in range(1, 41)] + ["odd.jpeg"]
    rest, shifted = split_by_series(_named(names), 0.2)
    held = {i["patient"] for i in shifted}
    assert held == {f"IM-{i:04d}" for i in range(116, 120)} | {"NORMAL2-IM-0508", "NORMAL2-IM-0509"} | {
        f"person{i}" for i in range(33, 41)
    }
    assert len(shifted) == 4 + 4 + 8 and not held & {i["patient"] for i in rest}
    assert any(i["image"].endswith("odd.jpeg") for i in rest)
    assert split_by_series(_named(names), 0.0)[1] == []
    with pytest.raises(ValueError, match="fraction"):
        split_by_series(_named(names), 1.0)


def test_trait_split_holds_out_the_images_framed_like_the_other_class():
    rng = np.random.default_rng(0)

    def radiograph(black_border: bool) -> np.ndarray:
        image = rng.uniform(0.3, 0.9, (64, 64)).astype(np.float32)
        if black_border:
            image[:6], image[-6:], image[:, :6], image[:, -6:] = 0, 0, 0, 0
        return image

    # normals mostly framed in black, pneumonia mostly not; 3 of each the other way round
    framed = {f"IM-{i:04d}": i >= 3 for i in range(20)} | {f"person{i}": i < 3 for i in range(20)}
    images = {p: radiograph(b) for p, b in framed.items()}
    items = [{"image": p, "patient": p, "label": int(p.startswith("person"))} for p in framed]
    rest, shifted, scores = split_by_traits(items, 0.15, read=lambda path: (images[path], {}))
    assert {i["patient"] for i in shifted} == {"IM-0000", "IM-0001", "IM-0002", "person0", "person1", "person2"}
    assert len(rest) == 34 and scores.shape == (40,)
    assert acquisition_traits(images["IM-0010"])[2] > 0.9 > 0.1 > acquisition_traits(images["person10"])[2]


def test_series_split_gives_a_shifted_and_a_random_validation(synthetic_cxr):
    d = build_chest_xray_datalist(synthetic_cxr, val_fraction=0.3, seed=1, split="series")
    sides = [{i["patient"] for i in d[k]} for k in ("training", "validation", "validation_patient")]
    assert all(sides) and not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    pooled = build_chest_xray_datalist(synthetic_cxr, val_fraction=0.3, seed=1)
    assert sorted(i["image"] for k in ("training", "validation", "validation_patient") for i in d[k]) == sorted(
        i["image"] for k in ("training", "validation") for i in pooled[k]
    )
    assert len(select_split(d, "all")) == len(select_split(pooled, "all"))
    with pytest.raises(ValueError, match="split"):
        build_chest_xray_datalist(synthetic_cxr, split="site")


def test_no_patient_in_two_splits(synthetic_cxr):
    d = build_chest_xray_datalist(synthetic_cxr, val_fraction=0.3, seed=1)
    train = {i["patient"] for i in d["training"]}
    val = {i["patient"] for i in d["validation"]}
    test = {i["patient"] for i in d["test"]}
    assert train and val and test
    assert not train & val and not (train | val) & test
    # stratified: both classes in validation, about 30% of each class's 10 patients
    for label in (0, 1):
        n = len({i["patient"] for i in d["validation"] if i["label"] == label})
        assert n == 3
    assert d["labels"] == {"0": "NORMAL", "1": "PNEUMONIA"}
    assert len(select_split(d, "all")) == len(d["training"]) + len(d["validation"]) + len(d["test"])


def test_split_is_reproducible(synthetic_cxr):
    a = build_chest_xray_datalist(synthetic_cxr, seed=3)
    b = build_chest_xray_datalist(synthetic_cxr, seed=3)
    assert a["validation"] == b["validation"]


def test_class_folders_directly_and_nested(tmp_path, synthetic_cxr):
    flat = tmp_path / "flat"
    shutil.copytree(os.path.join(synthetic_cxr, "train"), flat)
    d = build_chest_xray_datalist(str(flat))
    assert len(d["training"]) + len(d["validation"]) > 0 and d["test"] == []
    nested = tmp_path / "download" / "chest_xray"
    shutil.copytree(synthetic_cxr, nested)
    d = build_chest_xray_datalist(str(tmp_path / "download"))
    assert len(d["test"]) > 0


def test_layout_errors_name_the_folder(tmp_path, synthetic_cxr):
    root = tmp_path / "data"
    shutil.copytree(synthetic_cxr, root)
    (root / "train" / "COVID").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"train/COVID: unknown class folder"):
        build_chest_xray_datalist(str(root))
    shutil.rmtree(root / "train" / "COVID")
    (root / "extras").mkdir()
    with pytest.raises(DatasetLayoutError, match="extras: unexpected folder"):
        build_chest_xray_datalist(str(root))
    shutil.rmtree(root / "extras")
    for f in (root / "test" / "NORMAL").iterdir():
        f.unlink()
    with pytest.raises(DatasetLayoutError, match="NORMAL: class folder holds no image files"):
        build_chest_xray_datalist(str(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty"):
        build_chest_xray_datalist(str(tmp_path / "empty"))
    with pytest.raises(DatasetLayoutError, match="not found"):
        build_chest_xray_datalist(str(tmp_path / "nowhere"))


def test_bad_files_are_left_out_and_reported(tmp_path, synthetic_cxr):
    root = tmp_path / "data"
    shutil.copytree(synthetic_cxr, root)
    normal = root / "train" / "NORMAL"
    (normal / "IM-9999-0001.jpeg").write_bytes(b"")
    (normal / "IM-9998-0001.jpeg").write_text("not an image")
    (normal / "notes.docx").write_text("x")
    d = build_chest_xray_datalist(str(root))
    problems = {os.path.basename(r["file"]): r["problem"] for r in d["skipped"]}
    assert problems["IM-9999-0001.jpeg"].startswith("file is empty")
    assert "not a readable image" in problems["IM-9998-0001.jpeg"]
    assert "not an image file" in problems["notes.docx"]
    used = {os.path.basename(i["image"]) for i in select_split(d, "all")}
    assert not used & set(problems)


def test_split_by_patient_checks_arguments():
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_patient([], val_fraction=1.0)
    with pytest.raises(ValueError, match="patient"):
        split_by_patient([{"label": 0}])


def test_class_weights_balance():
    items = [{"label": 0}] * 1 + [{"label": 1}] * 3
    w = class_weights(items, 2)
    assert w[0] / w[1] == pytest.approx(3.0) and np.mean(w) == pytest.approx(1.0)
    assert class_weights([{"label": 0}], 2)[1] == 0.0


def test_make_datalist_needs_a_source(tmp_path):
    with pytest.raises(MedkitError, match="no data folder"):
        make_datalist("pneumonia", "")
    with pytest.raises(MedkitError, match="unknown data source"):
        make_datalist("nope", str(tmp_path))


def test_real_chest_xray_layout(medkit_data):
    root = os.path.join(medkit_data, "chest_xray")
    d = build_chest_xray_datalist(root, check_images=False)
    assert len(d["training"]) + len(d["validation"]) == 5216
    assert not {i["patient"] for i in d["training"]} & {i["patient"] for i in d["validation"]}
    # the real names all parse to patient ids, so patients are far fewer than images
    assert len({i["patient"] for i in select_split(d, "all")}) < 3500


def test_synthetic_images_are_readable(synthetic_cxr):
    path = os.path.join(synthetic_cxr, "train", "PNEUMONIA")
    first = sorted(os.listdir(path))[0]
    with Image.open(os.path.join(path, first)) as im:
        assert im.size == (48, 48)


def test_bombs_giants_and_broken_links_are_left_out_and_named(tmp_path, synthetic_cxr, caplog):
    from tests.io.test_header import write_bomb_png

    root = tmp_path / "data"
    shutil.copytree(synthetic_cxr, root)
    n_good = len(select_split(build_chest_xray_datalist(str(root)), "all"))
    normal = root / "train" / "NORMAL"
    bomb = write_bomb_png(normal / "IM-9997-0001.png", 20000, 20000)  # Pillow refuses it: DecompressionBombError
    giant = write_bomb_png(root / "test" / "PNEUMONIA" / "person99_virus_1.png", 13000, 13000)  # Pillow only warns
    link = normal / "IM-9996-0001.jpeg"
    link.symlink_to(tmp_path / "gone.jpeg")
    for check_images in (False, True):  # headers are checked either way
        d = make_datalist("pneumonia", str(root), check_images=check_images)
        problems = {r["file"]: r["problem"] for r in d["skipped"]}
        assert set(problems) == {bomb, giant, str(link)}
        assert (
            problems[bomb]
            == "image of 400,000,000 pixels exceeds the limit of 50,000,000 (MEDKIT_MAX_PIXELS); not decoded"
        )
        assert problems[giant].startswith("image of 13000x13000 = 169,000,000 pixels exceeds the limit")
        assert problems[str(link)] == f"broken symbolic link to {tmp_path / 'gone.jpeg'} (target missing)"
        assert len(select_split(d, "all")) == n_good
    warned = [r.getMessage() for r in caplog.records if r.name == "medkit.data" and r.levelname == "WARNING"]
    assert f"{bomb}: {problems[bomb]}" in warned and f"{link}: {problems[str(link)]}" in warned


@pytest.mark.parametrize("layout", ["splits", "class folders"])
def test_a_broken_link_beside_the_folders_is_reported_once(tmp_path, synthetic_cxr, layout):
    root = tmp_path / "data"
    shutil.copytree(os.path.join(synthetic_cxr, "train") if layout == "class folders" else synthetic_cxr, root)
    (root / "val").symlink_to(tmp_path / "gone")
    d = build_chest_xray_datalist(str(root), check_images=False)
    assert d["skipped"] == [
        {"file": str(root / "val"), "problem": f"broken symbolic link to {tmp_path / 'gone'} (target missing)"}
    ]
