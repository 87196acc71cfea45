"""One training run of an X-ray classifier bundle judged on a shifted validation and on a random one.

The pneumonia bundle's datalist holds out a shifted ``validation`` and a random patient-level
``validation_patient`` of the same size; training is the rest. Two shifts (``--validation``):
* ``traits`` (default; ``medkit.data.chest_xray.split_by_traits``): for each class, the patients whose acquisition
  traits (border, black framing, corner markers, saturation) look most like the other class's, the way another
  hospital's normal radiographs may be framed like this set's pneumonia ones;
* ``series`` (``split_by_series``): the last patients of each Kermany file-naming series (``IM-``,
  ``NORMAL2-IM-``, ``person``), a later period of acquisition.
The run chooses its checkpoint on the shifted validation and reports both.

A run is named (``--run``) and lives in ``WORK/<run>``: a copy of the bundle whose metadata takes the run's
augmentation (``--aug key=value``: arguments of ``medkit.transforms.xray_augmentation``), preprocessing (``--pre
key=value``: arguments of ``xray_preprocessing``, e.g. ``equalize=true``, ``crop_margin=0.08``) and input size
(``--size N``), trained with ``medkit train --datalist`` and ``--set`` settings, then evaluated with ``medkit
evaluate`` on both validations. It resumes a killed run (``--resume``) and skips what is done, so a list of runs
can be run across sessions. For each validation it writes and prints the ROC AUC, accuracy, sensitivity and
specificity at the argmax and at two thresholds chosen on the shifted validation (``tuned``: the largest keeping
its sensitivity at ``--recall``; ``balanced``: the largest sensitivity + specificity), and the wall time of the
training.

Usage:
  python scripts/shifted_validation.py --data ../shared/data/chest_xray --work runs/shift --run T0
  python scripts/shifted_validation.py --data ../shared/data/chest_xray --work runs/shift --run T1 \\
      --aug erase_prob=0.5 --aug "scale=[0.2,0.2]" --set epochs=20
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SPLITS = ("validation", "validation_patient")


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"shifted_validation: '{pair}' is not key=value")
        out[key] = _value(value)
    return out


def shifted_datalist(bundle: str, data: str, out: str, val_fraction: float, seed: int, kind: str) -> dict:
    """The datalist of ``data`` with a shifted validation of ``kind`` (written once to ``out``; read back after)."""
    from medkit.bundle import load_metadata
    from medkit.data import build_chest_xray_datalist
    from medkit.io.atomic import write_json_atomic

    if not os.path.isfile(out):
        accepts = load_metadata(bundle).get("medkit", {}).get("accepts")
        datalist = build_chest_xray_datalist(data, val_fraction=val_fraction, seed=seed, accepts=accepts, split=kind)
        write_json_atomic(datalist, out)
    with open(out) as f:
        return json.load(f)


def prepare_bundle(bundle: str, target: str, aug: dict, size: int | None, pre: dict | None = None) -> None:
    """Copy ``bundle`` to ``target`` (configs, metadata; not the shipped weights) with the run's augmentation and
    preprocessing arguments."""
    from medkit.io.atomic import write_json_atomic

    if not os.path.isdir(target):
        shutil.copytree(bundle, target, ignore=shutil.ignore_patterns("models", "runs"))
    path = os.path.join(target, "configs", "metadata.json")
    with open(path) as f:
        meta = json.load(f)
    augmentation = {k: v for k, v in meta["medkit"]["augmentation"].items() if k in ("_target_", "keys")}
    augmentation.update(aug)
    meta["medkit"]["augmentation"] = augmentation
    meta["medkit"]["preprocessing"].update(pre or {})
    if size:
        meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = [int(size), int(size)]
    write_json_atomic(meta, path)


def _run(cmd: list[str], log: str) -> float:
    t0 = time.perf_counter()
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"shifted_validation: {' '.join(cmd[:3])} failed (exit status {proc.returncode}); see {log}")
    return time.perf_counter() - t0


def read_predictions(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(p(PNEUMONIA), truth)`` from an evaluation's predictions.csv."""
    probs, truth = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):  # image, label (the true class), prediction, prob_<class>..., loss
            probs.append(float(row["prob_PNEUMONIA"]))
            truth.append(1 if row["label"] == "PNEUMONIA" else 0)
    return np.asarray(probs), np.asarray(truth)


def figures(probs: np.ndarray, truth: np.ndarray, threshold: float) -> dict:
    from medkit.metrics.classification import roc_auc

    pred = (probs >= threshold).astype(int)
    pos, neg = truth == 1, truth == 0
    return {
        "n": int(len(truth)),
        "auc": round(float(roc_auc(probs, truth)), 4),
        "accuracy": round(float((pred == truth).mean()), 4),
        "sensitivity": round(float(pred[pos].mean()), 4),
        "specificity": round(float(1 - pred[neg].mean()), 4),
        "threshold": round(float(threshold), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=os.path.join(ROOT, "bundles", "pneumonia"))
    parser.add_argument("--data", required=True, help="the chest_xray folder")
    parser.add_argument("--work", required=True, help="folder of the runs")
    parser.add_argument("--run", required=True, help="name of this run (its folder under --work)")
    parser.add_argument("--aug", action="append", default=[], help="xray_augmentation argument key=value")
    parser.add_argument("--pre", action="append", default=[], help="xray_preprocessing argument key=value")
    parser.add_argument("--size", type=int, default=None, help="input side in pixels (default: the bundle's)")
    parser.add_argument("--set", action="append", default=[], help="train.json setting id=value")
    parser.add_argument(
        "--validation",
        choices=("series", "traits"),
        default="traits",
        help="the shifted validation: the last patients of each naming series, or those whose acquisition traits "
        "point to the other class (medkit.data.chest_xray.split_by_traits)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random patient split")
    parser.add_argument("--recall", type=float, default=0.98, help="sensitivity kept by the tuned threshold")
    args = parser.parse_args(argv)

    medkit = os.path.join(os.path.dirname(sys.executable), "medkit")
    run_dir = os.path.abspath(os.path.join(args.work, args.run))
    os.makedirs(run_dir, exist_ok=True)
    datalist = os.path.abspath(os.path.join(args.work, f"{args.validation}_datalist.json"))
    lists = shifted_datalist(args.bundle, args.data, datalist, args.val_fraction, args.seed, args.validation)
    bundle = os.path.join(run_dir, "bundle")
    model = os.path.join(run_dir, "models", "model.pt")
    log = os.path.join(run_dir, "log.txt")
    summary_path = os.path.join(run_dir, "summary.json")
    summary = json.load(open(summary_path)) if os.path.isfile(summary_path) else {}
    if "train_s" in summary:  # a trained run keeps the recipe it was trained with, whatever this call says
        recipe = (summary.get("aug", {}), summary.get("size"), summary.get("pre", {}))
    else:
        recipe = (_pairs(args.aug), args.size, _pairs(args.pre))
    prepare_bundle(args.bundle, bundle, *recipe)
    sets = [f"--set={s}" for s in args.set]
    if "train_s" not in summary:
        resume = ["--resume"] if os.path.isfile(os.path.join(run_dir, "models", "checkpoint_last.pt")) else []
        cmd = [medkit, "train", bundle, "--datalist", datalist, "--out", run_dir, *resume, *sets]
        summary.update(
            run=args.run,
            aug=_pairs(args.aug),
            pre=_pairs(args.pre),
            size=args.size,
            settings=_pairs(args.set),
            command=" ".join(cmd[1:]),
        )
        summary["train_s"] = round(summary.get("train_s", 0) + _run(cmd + (["--overwrite"] if not resume else []), log))
        json.dump(summary, open(summary_path, "w"), indent=2)
    preds = {}
    for split in SPLITS:
        out = os.path.join(run_dir, f"eval_{split}")
        csv_path = os.path.join(out, "predictions.csv")
        if not os.path.isfile(csv_path):
            cmd = [medkit, "evaluate", bundle, "--data", args.data, "--checkpoint", model, "--split", split]
            _run(cmd + ["--out", out, f"--set=datalist_file={datalist}"], log)
        preds[split] = read_predictions(csv_path)
    from medkit.metrics.classification import threshold_balanced, threshold_for_recall

    rules = {
        "argmax": 0.5,
        "tuned": threshold_for_recall(*preds["validation"], args.recall),
        "balanced": threshold_balanced(*preds["validation"]),
    }
    for split in SPLITS:
        summary[split] = {rule: figures(*preds[split], t) for rule, t in rules.items()}
    summary["images"] = {k: len(lists[k]) for k in ("training", *SPLITS)}
    json.dump(summary, open(summary_path, "w"), indent=2)
    for split in SPLITS:
        for rule in rules:
            f = summary[split][rule]
            print(
                f"| {args.run} | {split} | {rule} | {f['auc']} | {f['accuracy']} | {f['sensitivity']} | "
                f"{f['specificity']} | {f['threshold']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
