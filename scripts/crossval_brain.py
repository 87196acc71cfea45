"""Patient-level k-fold cross-validation of the brain MRI segmentation recipe on the LGG slices.

Four validation patients cannot rank training recipes (the bundle docs show them ranking runs opposite to the
test patients), so this scores a recipe on every patient once: the patients are dealt into ``--folds`` folds
(stratified by the share of tumour slices, ``medkit.data.splits.kfold_patients``), and for each fold the
segmentation bundle's train.json trains on the other folds for a fixed ``--epochs`` (no checkpoint choice: the
only validation runs after the last epoch, on the held-out fold, and its weights are the fold's model), then the
bundle's evaluate.json scores the held-out fold with the segmenter alone. The held-out slices of all folds are
pooled into one report (``medkit.metrics.segmentation_report``): mean per-patient 3D Dice over all patients,
slice Dice, slice detection.

``--study`` then measures options that need no training on the folds' held-out predictions (written to
``study.json``): flip test-time augmentation (the mean logit over the slice and its three flips), filling the holes
of each slice's mask (the set's masks are solid) and keeping only the largest 3D connected component of each
patient's stacked mask (a lower-grade glioma is one lesion; false positives along bright cortex are small islands
elsewhere in the volume), alone and together.

``--bundle bundles/brain_mri_classification --pretrained-from CV_DIR`` cross-validates the slice classifier the
same way, each fold fine-tuned from that fold's segmenter of an earlier run (the folds are the same): the pooled
held-out probabilities give its AUC, the threshold reaching the bundle's ``target_recall`` on them, and the
slice figures there; with the bundle's ``medkit.slice_window`` above 1, the same for each slice scored by the mean
probability of that many neighbouring slices of its patient (``stack``, its ``stack_threshold``).
``--gate CLASSIFIER_CV_DIR`` on a segmenter run adds the two-stage figures: held-out slices below the gate's
threshold get an empty mask, decided as ``GatedInferer`` decides (on the mean of the slice window, when set).

``--all`` then trains the final model the same way on every patient (``all/models/model.pt``; nothing is held
out, so it has no figures of its own: the pooled held-out figures are its estimate).

Each fold runs in its own process (``--fold K`` runs one and is what the main process calls), ``--parallel N`` of
them side by side (each logging to ``<out>/fold_K.log``; on a GPU the folds share it); finished folds
(``fold_K/result.json``) are kept, so a stopped run resumes. ``--set ID=VALUE`` overrides bundle config ids for
training and evaluation alike (e.g. ``--set _meta_#medkit#preprocessing#neighbours=1``).

Usage:
  python scripts/crossval_brain.py --data ../shared/data/lgg-mri-segmentation --out cv/seg --folds 3 --epochs 30
  python scripts/crossval_brain.py --data ../shared/data/lgg-mri-segmentation --out cv/cls --epochs 6 \
      --bundle bundles/brain_mri_classification --pretrained-from cv/seg
  python scripts/crossval_brain.py --data ../shared/data/lgg-mri-segmentation --out cv/seg --gate cv/cls
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
SEGMENTER = os.path.join(os.path.dirname(HERE), "bundles", "brain_mri_segmentation")
#: figures of the pooled report kept for each study variant
REPORTED = ("dice_patient_mean", "dice_slice_mean", "dice_global", "slice_detection")


def parse_set(pairs: list[str]) -> dict:
    """``["a=1", "b#c=x"]`` -> ``{"a": 1, "b#c": "x"}`` (values read as JSON when they parse)."""
    from medkit.cli.common import parse_overrides

    return parse_overrides(pairs)


def fold_datalist(bundle: str, data: str, folds: int, fold: int, seed: int) -> dict:
    """The bundle's datalist settings with fold ``fold`` of ``folds`` as the test side (and as validation, for the
    one end-of-training check), every other patient in training; fold ``-1``: every patient in training. Both
    brain bundles deal the same folds."""
    from medkit.bundle import load_metadata
    from medkit.data import make_datalist

    cfg = dict(load_metadata(bundle)["medkit"]["data"])
    if fold < 0:  # the final model: every patient in training (the end-of-training check is then a training figure)
        cfg.update(val_fraction=0.0, test_fraction=0.0)
        datalist = make_datalist(dataset_dir=data, **cfg)
        datalist["validation"] = list(datalist["training"])
        return datalist
    cfg.update(n_folds=folds, fold=fold, seed=seed, val_fraction=0.0)
    datalist = make_datalist(dataset_dir=data, **cfg)
    datalist["validation"] = list(datalist["test"])
    return datalist


def run_fold(args: argparse.Namespace) -> dict:
    """Train and evaluate one fold in this process; writes ``fold_K/result.json``."""
    from medkit.bundle import create_workflow, task_type
    from medkit.io.atomic import write_json_atomic

    name = fold_name(args.fold)
    fold_dir = os.path.join(os.path.abspath(args.out), name)
    os.makedirs(fold_dir, exist_ok=True)
    datalist = fold_datalist(args.bundle, args.data, args.folds, args.fold, args.seed)
    datalist_file = os.path.join(fold_dir, "datalist.json")
    write_json_atomic(datalist, datalist_file)
    overrides = parse_set(args.set)
    common = {"dataset_dir": os.path.abspath(args.data), "datalist_file": datalist_file, **overrides}
    pretrained = {}
    if args.pretrained_from:  # this fold's model of an earlier cross-validation (same folds)
        pretrained = {"pretrained": os.path.join(os.path.abspath(args.pretrained_from), name, "models", "model.pt")}
    segmentation = task_type(args.bundle) == "segmentation"
    t0 = time.perf_counter()
    train = create_workflow(
        args.bundle,
        "train",
        {
            **common,
            **pretrained,
            "epochs": args.epochs,
            "val_interval": args.epochs,
            "early_stop_patience": 10**6,
            "output_dir": os.path.join(fold_dir, "runs"),
            "ckpt_dir": os.path.join(fold_dir, "models"),
        },
    )
    train.run()
    train_s = time.perf_counter() - t0
    checkpoint = os.path.join(fold_dir, "models", "model.pt")
    result = {
        "fold": args.fold,
        "test_patients": sorted({i["patient"] for i in datalist["test"]}),
        "training_patients": len({i["patient"] for i in datalist["training"]}),
        "epochs": args.epochs,
        "train_s": round(train_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "overrides": {**overrides, **pretrained},
    }
    if args.fold < 0:  # nothing held out to evaluate on
        write_json_atomic(result, os.path.join(fold_dir, "result.json"))
        return result
    settings = {**common, "split": "test", "ckpt_path": checkpoint, "output_dir": os.path.join(fold_dir, "eval")}
    evaluate = create_workflow(
        args.bundle, "evaluate", {**settings, **({"classifier_bundle": ""} if segmentation else {})}
    )
    evaluate.run()
    report = evaluate.parser.get_parsed_content("report").report
    result.update({k: report[k] for k in ("dice_patient_mean", "per_case")} if segmentation else {"auc": report["auc"]})
    write_json_atomic(result, os.path.join(fold_dir, "result.json"))
    return result


def _rows(out: str, folds: int, name: str) -> list[dict]:
    """The rows of every fold's ``eval/<name>`` table, each with its ``fold``."""
    rows = []
    for k in range(folds):
        with open(os.path.join(out, f"fold_{k}", "eval", name), newline="") as f:
            rows += [{**r, "fold": k} for r in csv.DictReader(f)]
    return rows


def _held_out_items(out: str, folds: int) -> dict[str, dict]:
    """Image path -> its data-list item (case, slice number...) over the held-out sides of all folds."""
    items = {}
    for k in range(folds):
        with open(os.path.join(out, f"fold_{k}", "datalist.json")) as f:
            items.update({i["image"]: i for i in json.load(f)["test"]})
    return items


def pooled_classification(out: str, folds: int, recall: float, slice_window: int = 1) -> dict:
    """AUC of the held-out slices of all folds (their ``eval/predictions.csv``), the threshold reaching ``recall``
    of the tumour slices on them, and the slice figures at it (``medkit.metrics.classification_report``). With
    ``slice_window`` > 1, the same under ``"stack"`` for each slice scored by the mean probability of that many
    neighbouring slices of its patient (``medkit.metrics.classification.stack_scores``): ``stack_threshold``.
    ``nested_threshold``: the figures when each fold's slices are decided at the threshold picked on the other
    folds alone (the threshold then sees none of the slices it decides)."""
    import numpy as np

    from medkit.metrics.classification import classification_report, stack_means, threshold_for_recall

    rows = _rows(out, folds, "predictions.csv")
    names = ["no_tumour", "tumour"]
    p = np.asarray([float(r["prob_tumour"]) for r in rows])
    labels = np.asarray([names.index(r["label"]) for r in rows])
    keys = ("accuracy", "auc", "sensitivity", "specificity", "confusion_matrix")

    fold = np.asarray([r["fold"] for r in rows])

    def figures(scores: np.ndarray, truth: np.ndarray, fold: np.ndarray) -> dict:
        threshold = threshold_for_recall(scores, truth, recall)
        report = classification_report(np.stack([1 - scores, scores], axis=1), truth, names, threshold)
        # the threshold's own optimism: each fold decided at the threshold its other folds reach the recall at
        chosen = {k: threshold_for_recall(scores[fold != k], truth[fold != k], recall) for k in set(fold.tolist())}
        other = np.array([chosen[k] for k in fold.tolist()])
        nested = classification_report(np.stack([1 - scores, scores], axis=1), truth, names, other)
        return {
            "n_slices": len(scores),
            "threshold": threshold,
            **{k: report[k] for k in keys},
            "nested_threshold": {k: nested[k] for k in ("accuracy", "sensitivity", "specificity")},
        }

    summary = {"target_recall": recall, **figures(p, labels, fold)}
    if slice_window > 1:
        items = _held_out_items(out, folds)
        cases = [items[r["image"]]["case"] for r in rows]
        slices = [items[r["image"]]["slice"] for r in rows]
        scores, stacked = stack_means(p, cases, slices, slice_window)
        stack = figures(scores[stacked], labels[stacked], fold[stacked])
        stack["stack_threshold"] = stack.pop("threshold")
        summary["stack"] = {"slice_window": slice_window, **stack}
        summary.update(stack_threshold=stack["stack_threshold"], slice_window=slice_window)
    return summary


def held_out_gate(gate: str, folds: int) -> tuple[dict[str, tuple[float, float]], dict]:
    """A classifier cross-validation's held-out decision per slice path, ``(score, threshold)`` as
    ``GatedInferer`` decides (a slice's probability, or with the summary's ``slice_window`` the mean of its
    neighbourhood against ``stack_threshold``), and the gate's settings from its summary."""
    from medkit.metrics.classification import stack_scores

    with open(os.path.join(gate, "summary.json")) as f:
        summary = json.load(f)
    settings = {k: summary.get(k) for k in ("threshold", "stack_threshold", "slice_window") if summary.get(k)}
    rows = _rows(gate, folds, "predictions.csv")
    items = _held_out_items(gate, folds)
    scores, thresholds, _ = stack_scores(
        [float(r["prob_tumour"]) for r in rows],
        [items[r["image"]]["case"] for r in rows],
        [items[r["image"]]["slice"] for r in rows],
        settings["threshold"],
        int(settings.get("slice_window", 1)),
        settings.get("stack_threshold"),
    )
    return {r["image"]: (float(s), float(t)) for r, s, t in zip(rows, scores, thresholds)}, settings


def pooled_segmentation(out: str, folds: int, gate: str | None = None) -> dict:
    """``segmentation_report`` over the held-out slices of all folds (their ``eval/per_slice.csv``); with ``gate``
    (a classifier cross-validation over the same folds), the two-stage figures too: slices whose held-out tumour
    probability is below the threshold chosen there get an empty mask."""
    from medkit.metrics.segmentation import segmentation_report

    records = []
    for row in _rows(out, folds, "per_slice.csv"):
        counts = {c: int(row[c]) for c in ("intersection", "pred_pixels", "true_pixels")}
        records.append({"case": row["case"], "image": row["image"], **counts})
    report = segmentation_report(records)
    if gate:
        decision, settings = held_out_gate(gate, folds)
        kept = [decision[r["image"]][0] >= decision[r["image"]][1] for r in records]
        gated = [r if keep else {**r, "intersection": 0, "pred_pixels": 0} for r, keep in zip(records, kept)]
        two_stage = segmentation_report(gated)
        report["two_stage"] = {k: two_stage[k] for k in (*REPORTED, "per_case")}
        report["two_stage"]["gate"] = {"classifier_cv": os.path.abspath(gate), **settings}
    return report


def fold_probabilities(bundle: str, out: str, fold: int, overrides: dict) -> dict[str, dict]:
    """Per held-out case of ``fold``, slices in order: ``{"plain", "tta"}`` probabilities (slices, rows, columns)
    of the fold's model (``tta``: from the mean logit over the slice and its up-down, left-right and both flips) and
    ``"truth"``."""
    import numpy as np
    import torch

    from medkit.bundle import create_workflow

    fold_dir = os.path.join(out, f"fold_{fold}")
    settings = {
        **overrides,
        "datalist_file": os.path.join(fold_dir, "datalist.json"),
        "split": "test",
        "classifier_bundle": "",
        "output_dir": os.path.join(fold_dir, "study"),
    }
    wf = create_workflow(bundle, "evaluate", settings)
    network = wf.parser.get_parsed_content("network")
    state = torch.load(os.path.join(fold_dir, "models", "model.pt"), map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state))
    network.eval()
    inferer = wf.parser.get_parsed_content("sliding_window")
    device = next(network.parameters()).device  # the bundle's device: the GPU when there is one
    slices: dict[str, list] = {}
    with torch.no_grad():
        for item in wf.parser.get_parsed_content("dataset"):
            x = torch.as_tensor(item["image"])[None].to(device)
            logits = []
            for dims in ((), (2,), (3,), (2, 3)):
                z = inferer(x.flip(dims) if dims else x, network).float()
                logits.append((z.flip(dims) if dims else z)[0, 0])
            plain = torch.sigmoid(logits[0]).cpu().numpy()
            tta = torch.sigmoid(torch.stack(logits).mean(0)).cpu().numpy()
            truth = np.asarray(item["label"])[0] > 0.5
            row = (int(item["slice"]), plain, tta, truth, str(item["image_path"]))
            slices.setdefault(str(item["case"]), []).append(row)
    cases = {}
    for case, rows in slices.items():
        rows.sort(key=lambda r: r[0])
        cases[case] = {name: np.stack([r[i] for r in rows]) for i, name in ((1, "plain"), (2, "tta"), (3, "truth"))}
        cases[case]["paths"] = [r[4] for r in rows]
    return cases


def study(args: argparse.Namespace) -> dict:
    """Per-patient Dice and slice detection of the pooled held-out folds under each combination of the options:
    ``tta``, ``gated`` (with ``--gate``: slices the held-out classifier puts below its threshold get an empty mask,
    as ``GatedInferer`` does), ``fill_holes`` (each slice's mask with its enclosed background filled) and
    ``largest_3d`` (applied last, as the writers do: with ``gated`` a component's pixels count by their slice's
    classifier probability; ``..._unweighted``: the same with pixels counted alike); ``plain`` is none of them."""
    import itertools

    import numpy as np
    from monai.transforms import FillHoles

    from medkit.metrics.segmentation import segmentation_report, slice_record
    from medkit.transforms.segmentation import HOLE_CONNECTIVITY, largest_component

    out = os.path.abspath(args.out)
    fill = FillHoles(connectivity=HOLE_CONNECTIVITY)  # as fill_holes=True does; writes its input
    decision, settings = held_out_gate(args.gate, args.folds) if args.gate else ({}, {})
    options = [(False, True), (False, True) if args.gate else (False,), (False, True), (False, True)]
    records: dict[str, list] = defaultdict(list)
    for k in range(args.folds):
        for case, c in fold_probabilities(args.bundle, out, k, parse_set(args.set)).items():
            masks = {}  # per (tta, filled): the binarised masks, filled per slice by the bundle's own transform
            for tta in (False, True):
                masks[tta, False] = c["tta" if tta else "plain"] >= 0.5
                masks[tta, True] = np.stack([np.asarray(fill(s[None].copy())[0]) for s in masks[tta, False]])
            if args.gate:  # the held-out classifier's score of each slice and whether it passes the gate
                scores = np.array([decision[p][0] for p in c["paths"]])
                passed = scores >= np.array([decision[p][1] for p in c["paths"]])
            for tta, gated, largest, filled in itertools.product(*options):
                mask = masks[tta, filled]
                weights = scores if gated else None
                if gated:
                    mask = mask & passed[:, None, None]
                variants = {"": mask}
                if largest:  # as the writers do: two-stage weighs each slice's pixels by its classifier probability
                    variants = {"": largest_component(mask, weights)}
                    if gated:  # and the same component chosen by pixel count alone (releases up to 0.4.0)
                        variants["_unweighted"] = largest_component(mask)
                named = (("tta", tta), ("gated", gated), ("largest_3d", largest), ("fill_holes", filled))
                name = "+".join(n for n, on in named if on)
                for suffix, m in variants.items():
                    records[(name or "plain") + suffix] += [
                        slice_record(m[i], c["truth"][i], case) for i in range(len(m))
                    ]
        print(f"fold {k} studied", flush=True)
    result = {}
    for name, recs in records.items():
        r = segmentation_report(recs)
        result[name] = {key: r[key] for key in REPORTED}
        result[name]["dice_patient_median"] = float(np.median(list(r["per_case"].values())))
        result[name]["per_case"] = {case: round(v, 4) for case, v in r["per_case"].items()}
    if args.gate:
        result["gate"] = {"classifier_cv": os.path.abspath(args.gate), **settings}
    return result


def summarise(args: argparse.Namespace, results: list[dict]) -> dict:
    """The pooled held-out figures of all folds, per fold what it tested and its cost."""
    from medkit.bundle import load_metadata, task_type

    out = os.path.abspath(args.out)
    summary = {"bundle": os.path.basename(os.path.abspath(args.bundle)), "folds": args.folds, "epochs": args.epochs}
    summary.update(seed=args.seed, overrides=parse_set(args.set), pretrained_from=args.pretrained_from)
    per_fold = ("fold", "test_patients", "train_s", "peak_rss_mb")
    if task_type(args.bundle) == "segmentation":
        pooled = pooled_segmentation(out, args.folds, args.gate)
        summary["n_patients"] = pooled["n_cases"]
        summary.update({k: pooled[k] for k in (*REPORTED, "per_case", *(["two_stage"] if args.gate else []))})
        per_fold += ("dice_patient_mean",)
    else:
        meta = load_metadata(args.bundle)["medkit"]
        recall = float(meta.get("target_recall", 0.95))
        summary.update(pooled_classification(out, args.folds, recall, int(meta.get("slice_window", 1))))
        per_fold += ("auc",)
    summary["per_fold"] = [{k: r[k] for k in per_fold} for r in results]
    summary["train_s_total"] = round(sum(r["train_s"] for r in results), 1)
    final = _result_file(out, -1)
    if os.path.isfile(final):
        with open(final) as f:
            done = json.load(f)
        keys = ("training_patients", "epochs", "train_s", "peak_rss_mb")
        model = os.path.join(out, fold_name(-1), "models", "model.pt")
        summary["final_model"] = {"path": model, **{k: done[k] for k in keys}}
    return summary


def cmd_for(args: argparse.Namespace, out: str, fold: int) -> list[str]:
    """The command line that runs one fold (``-1``: the final model) in a process of its own."""
    cmd = [sys.executable, os.path.abspath(__file__), "--data", args.data, "--out", out, "--fold", str(fold)]
    cmd += ["--bundle", args.bundle, "--folds", str(args.folds), "--epochs", str(args.epochs)]
    cmd += ["--seed", str(args.seed), *[a for pair in args.set for a in ("--set", pair)]]
    return cmd + (["--pretrained-from", args.pretrained_from] if args.pretrained_from else [])


def fold_name(fold: int) -> str:
    """The folder (and log) name of a fold: ``fold_K``, or ``all`` for the final model (``-1``)."""
    return "all" if fold < 0 else f"fold_{fold}"


def _result_file(out: str, fold: int) -> str:
    return os.path.join(out, fold_name(fold), "result.json")


def run_folds(args: argparse.Namespace, out: str, folds: list[int]) -> None:
    """Run each of ``folds`` (``-1``: the final model) in a process of its own, ``args.parallel`` at a time. One at a
    time, a fold's output goes to this console; side by side, each to ``<out>/<fold>.log``. Raises
    ``RuntimeError`` naming the folds that failed, after the others have finished."""
    side_by_side = args.parallel > 1
    os.makedirs(out, exist_ok=True)
    pending, running, failed = list(folds), {}, []
    while pending or running:
        while pending and len(running) < max(1, args.parallel):
            k = pending.pop(0)
            log = open(os.path.join(out, f"{fold_name(k)}.log"), "w") if side_by_side else None
            proc = subprocess.Popen(cmd_for(args, out, k), stdout=log, stderr=subprocess.STDOUT if log else None)
            running[k] = (proc, log)
        time.sleep(0.5)
        for k, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[k]
            if log:
                log.close()
            if proc.returncode != 0:
                failed.append(k)
            status = "done" if proc.returncode == 0 else "failed" + (f" (see {log.name})" if log else "")
            print(f"{fold_name(k)} {status}", flush=True)
    if failed:
        raise RuntimeError(f"{out}: {', '.join(fold_name(k) for k in failed)} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the lgg-mri-segmentation (or kaggle_3m) folder")
    parser.add_argument("--out", required=True, help="folder for the folds' models, reports and summary.json")
    parser.add_argument("--bundle", default=SEGMENTER, help="the brain bundle to cross-validate (default: segmenter)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--set", action="append", default=[], metavar="ID=VALUE", help="bundle config override")
    parser.add_argument(
        "--pretrained-from", default=None, metavar="CV_DIR", help="start each fold from its model there"
    )
    parser.add_argument(
        "--gate", default=None, metavar="CV_DIR", help="segmenter: a classifier CV for two-stage figures"
    )
    parser.add_argument("--fold", type=int, default=None, help="run this fold only, in this process (-1: --all)")
    parser.add_argument("--all", action="store_true", help="then train the final model on every patient (all/)")
    parser.add_argument("--study", action="store_true", help="segmenter: measure TTA / largest component after")
    parser.add_argument(
        "--parallel", type=int, default=1, metavar="N", help="run N folds (and --all) side by side (e.g. on a GPU)"
    )
    args = parser.parse_args()
    args.bundle = os.path.abspath(args.bundle)
    if args.fold is not None:
        print(json.dumps(run_fold(args)))
        return

    from medkit.io.atomic import write_json_atomic

    out = os.path.abspath(args.out)
    todo = [k for k in (*range(args.folds), *([-1] if args.all else [])) if not os.path.isfile(_result_file(out, k))]
    run_folds(args, out, todo)
    results = []
    for k in range(args.folds):
        with open(_result_file(out, k)) as f:
            results.append(json.load(f))
    summary = summarise(args, results)
    write_json_atomic(summary, os.path.join(out, "summary.json"))
    shown = (
        "dice_patient_mean",
        "dice_slice_mean",
        "two_stage",
        "auc",
        "threshold",
        "accuracy",
        "sensitivity",
        "stack",
    )
    print(json.dumps({k: summary[k] for k in shown if k in summary}, indent=2))
    if args.study:
        studied = study(args)
        write_json_atomic(studied, os.path.join(out, "study.json"))
        for name, r in studied.items():
            if name == "gate":
                continue
            print(
                f"{name:>15}: per-patient Dice {r['dice_patient_mean']:.4f} (median {r['dice_patient_median']:.4f}), "
                f"slice detection {r['slice_detection']}"
            )


if __name__ == "__main__":
    main()
