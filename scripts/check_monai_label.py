#!/usr/bin/env python
"""Check a medkit bundle with stock MONAI Label (0.8.5): no subclassing, no config edits, no filters.

A comparison with MONAI Label's own classes and sample app; `medkit label-server` is how medkit serves its bundles.
Runs in .venv-label (`bash scripts/setup.sh --label`; README.md, "MONAI Label"); the training stage reads the LGG
kaggle_3m folder from --train-data or $MEDKIT_DATA/lgg-mri-segmentation/kaggle_3m.

Usage:
    OMP_NUM_THREADS=1 .venv-label/bin/python scripts/check_monai_label.py BUNDLE IMAGE \
        [--weights FILE] [--work DIR] [--stages infer,train,app] [--train-epochs N] \
        [--train-data KAGGLE_3M_DIR] [--bundle2 OTHER_BUNDLE [--weights2 FILE]]

  infer : BundleInferTask(path, conf) exactly as sample-apps/monaibundle/main.py builds it (type from the folder
          name), then task({"image": IMAGE, "device": "cpu"}); prints type, labels, result (label file: path,
          shape, dtype, unique values).
  train : BundleTrainTask(path, conf)(request, datastore) with a fake datastore of {"image": tif, "label": mask}
          (4 training patients x 8 slices, then 1 validation patient x 8 slices; val_split 0.2 takes the last 8).
  app   : the installed sample app sample-apps/monaibundle (main.py MyApp), bundles at <app>/model/<name>/,
          zoo_source local, models = BUNDLE[,BUNDLE2]; lists infers/trainers and runs app.infer for each.

Every bundle is copied to <work>/app/model/<name> first (--weights FILE is put there as models/model.pt).
pydicom-seg 0.4.1 needs pydicom._storage_sopclass_uids (removed in pydicom 3): .venv-label maps it to pydicom.uid
(medkit.label.compat) in every process.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback

import numpy as np
import torch


def _err(stage, exc):
    print(f"[{stage}] FAILED: {type(exc).__name__}: {exc}"[:3000])
    tb = traceback.format_exc().strip().splitlines()
    print("\n".join("    " + line for line in tb[-14:]))


def _describe_label(label_file):
    if label_file is None:
        print("    label_file: None")
        return
    if not isinstance(label_file, str):
        a = np.asarray(label_file)
        print(f"    label (in memory): shape {a.shape} dtype {a.dtype} unique {np.unique(a)[:10]}")
        return
    print(
        f"    label_file: {label_file} (exists: {os.path.exists(label_file)}, "
        f"{os.path.getsize(label_file) if os.path.exists(label_file) else 0} bytes)"
    )
    try:
        import itk

        img = itk.imread(label_file)
        a = itk.array_from_image(img)
        print(
            f"    read back with itk: array shape {a.shape} dtype {a.dtype} unique {np.unique(a)[:10]} "
            f"itk size {tuple(itk.size(img))} spacing {tuple(itk.spacing(img))}"
        )
    except Exception as e:  # noqa: BLE001
        print(f"    could not read back with itk: {type(e).__name__}: {e}")


def copy_bundle(src, app_dir, weights=None):
    name = os.path.basename(os.path.abspath(src).rstrip("/"))
    dst = os.path.join(app_dir, "model", name)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("runs", "eval", "__pycache__"))
    if weights:
        os.makedirs(os.path.join(dst, "models"), exist_ok=True)
        shutil.copy(weights, os.path.join(dst, "models", "model.pt"))
    mp = os.path.join(dst, "models", "model.pt")
    if os.path.exists(mp):  # the source may be rewritten by a running training: check the copy loads
        sd = torch.load(mp, map_location="cpu", weights_only=True)
        print(f"    {mp}: {len(sd)} tensors, loads OK")
    else:
        print(f"    {mp}: absent")
    return name, dst


def stage_infer(path, conf, image):
    from monailabel.tasks.infer.bundle import BundleInferTask

    print(f"\n=== infer: BundleInferTask({path!r}, {conf}) [stock, no kwargs] ===")
    try:
        task = BundleInferTask(path, conf)
    except Exception as e:  # noqa: BLE001
        _err("infer init", e)
        return
    print(f"    is_valid(): {task.is_valid()}")
    if not task.is_valid():
        return
    print(f"    type: {task.type!s}  labels: {task.labels}  dimension: {task.dimension}")
    try:
        print(f"    pre_transforms: {[type(t).__name__ for t in task.pre_transforms({'device': 'cpu'})]}")
        print(f"    inferer: {type(task.inferer({'device': 'cpu'})).__name__}")
        print(f"    post_transforms: {[type(t).__name__ for t in task.post_transforms({'device': 'cpu'})]}")
    except Exception as e:  # noqa: BLE001
        _err("infer transforms", e)
    try:
        label_file, result = task({"image": image, "device": "cpu"})
        print("[infer] OK")
        print(
            f"    result_json: {json.dumps({k: v for k, v in result.items() if k != 'latencies'}, default=str)[:1500]}"
        )
        _describe_label(label_file)
    except Exception as e:  # noqa: BLE001
        _err("infer run", e)


class FakeDatastore:
    """Minimal stand-in for a MONAI Label Datastore: datalist() -> [{"image", "label"}]."""

    def __init__(self, items):
        self.items = items

    def datalist(self, full_path=True):
        return self.items


def seg_items(kaggle_dir, n_train=4, n_val=1, per_patient=8, exclude=()):
    """8 slices per patient (half with tumour where possible): n_train patients, then n_val patients."""
    items, patients = [], []
    for p in sorted(os.listdir(kaggle_dir)):
        d = os.path.join(kaggle_dir, p)
        if not os.path.isdir(d) or p in exclude:
            continue
        masks = sorted(glob.glob(os.path.join(d, "*_mask.tif")))
        from PIL import Image

        pos = [m for m in masks if np.asarray(Image.open(m)).any()]
        if len(pos) < per_patient // 2:
            continue
        neg = [m for m in masks if m not in pos]
        chosen = pos[: per_patient // 2] + neg[: per_patient - per_patient // 2]
        patients.append(p)
        items += [{"image": m.replace("_mask.tif", ".tif"), "label": m} for m in chosen]
        if len(patients) == n_train + n_val:
            break
    return items, patients


def stage_train(path, conf, epochs, kaggle_dir, exclude):
    from monailabel.tasks.train.bundle import BundleTrainTask

    print(f"\n=== train: BundleTrainTask({path!r}, {conf}) [stock] ===")
    try:
        t = BundleTrainTask(path, conf)
        print(f"    is_valid(): {t.is_valid()}  version: {t.version}")
        print(f"    config() keys: {sorted(t.config())}")
    except Exception as e:  # noqa: BLE001
        _err("train init", e)
        return
    if epochs <= 0:
        return
    items, patients = seg_items(kaggle_dir, exclude=exclude)
    print(f"    fake datastore: {len(items)} items; train patients {patients[:4]}, validation patient {patients[4:]}")
    req = {
        "model": os.path.basename(path),
        "max_epochs": epochs,
        "device": "cpu",
        "val_split": 0.2,
        "multi_gpu": False,
        "pretrained": True,
        "tracking": "None",
    }
    print(f"    request: {req}")
    before = {f: os.path.getmtime(f) for f in glob.glob(os.path.join(path, "models", "*"))}
    try:
        t(req, FakeDatastore(items))
        print("[train] OK (returned)")
    except Exception as e:  # noqa: BLE001
        _err("train run", e)
    after = {f: os.path.getmtime(f) for f in glob.glob(os.path.join(path, "models", "*"))}
    changed = sorted(f for f in after if before.get(f) != after[f])
    print(f"    models/ now: {sorted(os.path.basename(f) for f in after)}; written/updated by this run: {changed}")
    runs = glob.glob(os.path.join(path, "runs", "*"))
    print(f"    runs/: {len(runs)} files")


def stage_app(app_dir, names, image):
    print(f"\n=== app: sample-apps/monaibundle MyApp(app_dir={app_dir!r}, models={','.join(names)}) [stock] ===")
    studies = os.path.join(os.path.dirname(app_dir), "studies")
    os.makedirs(studies, exist_ok=True)
    shutil.copy(image, studies)
    sys.path.insert(0, app_dir)
    try:
        import main as app_main  # the sample app's main.py

        conf = {
            "models": ",".join(names),
            "preload": "false",
            "zoo_source": "local",
            "skip_trainers": "false",
            "sam2": "false",
        }
        app = app_main.MyApp(app_dir, studies, conf)
        print(f"    infers: {list(app._infers)}  trainers: {list(app._trainers)}")
        for n, task in app._infers.items():
            print(f"    infer {n}: type {task.type!s} labels {task.labels}")
    except SystemExit as e:
        print(f"[app] FAILED: SystemExit({e.code})")
        return
    except Exception as e:  # noqa: BLE001
        _err("app build", e)
        return
    image_id = os.path.splitext(os.path.basename(image))[0]
    for n in names:
        try:
            res = app.infer(request={"model": n, "image": image_id, "device": "cpu"})
            print(f"[app infer {n}] OK")
            print(f"    label: {res.get('label')}")
            print(f"    params: {json.dumps(res.get('params'), default=str)[:700]}")
            if res.get("file"):
                _describe_label(res["file"])
        except Exception as e:  # noqa: BLE001
            _err(f"app infer {n}", e)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle_dir")
    p.add_argument("image")
    p.add_argument("--weights", help="put this file into the bundle copy as models/model.pt")
    p.add_argument("--bundle2", help="a second bundle for the app stage")
    p.add_argument("--weights2")
    p.add_argument("--work", help="scratch folder (default: a new temp dir)")
    p.add_argument("--stages", default="infer", help="comma list of infer,train,app")
    p.add_argument("--train-epochs", type=int, default=1)
    p.add_argument(
        "--train-data",
        default=os.path.join(os.environ.get("MEDKIT_DATA", ""), "lgg-mri-segmentation", "kaggle_3m"),
    )
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(1)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="    [%(levelname)s] %(name)s: %(message)s"
    )
    stages = set(filter(None, a.stages.split(",")))

    import monai
    import monailabel
    from monailabel.utils.others.generic import get_bundle_models

    print(f"monailabel {monailabel.__version__}, monai {monai.__version__}, torch {torch.__version__}")
    image = os.path.abspath(a.image)
    work = a.work or tempfile.mkdtemp(prefix="mlstock_")
    app_dir = os.path.join(work, "app")
    if "app" in stages:
        src = os.path.join(sys.prefix, "monailabel", "sample-apps", "monaibundle")
        shutil.copytree(src, app_dir, dirs_exist_ok=True)
    os.makedirs(os.path.join(app_dir, "model"), exist_ok=True)

    name, _ = copy_bundle(a.bundle_dir, app_dir, a.weights)
    names = [name]
    if a.bundle2:
        names.append(copy_bundle(a.bundle2, app_dir, a.weights2)[0])
    print(f"bundles copied to {app_dir}/model/: {names}")

    conf = {"models": name, "preload": "false", "zoo_source": "local"}
    models = get_bundle_models(app_dir, conf)
    print(f"get_bundle_models -> {models}")
    path = models[name]

    if "infer" in stages:
        stage_infer(path, conf, image)
    if "train" in stages:
        case = os.path.basename(os.path.dirname(image))
        stage_train(path, conf, a.train_epochs, a.train_data, exclude=(case,))
    if "app" in stages:
        stage_app(app_dir, names, image)
    print(f"\nscratch folder: {work}")


if __name__ == "__main__":
    main()
