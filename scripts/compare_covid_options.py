"""Measured comparison of the COVID bundle's options: histogram equalization and imbalance handling.

Each variant trains the bundle from scratch with the same seed, data split and schedule (short runs,
``--epochs``), keeps its best checkpoint by validation AUC, and is evaluated on the validation split
(accuracy, macro one-vs-rest AUC, macro F1). Variants:
  equalized + cross-entropy with class weights (the bundle's default),
  not equalized + cross-entropy with class weights,
  equalized + focal loss (gamma 2) without class weights,
  equalized + plain cross-entropy (no imbalance handling).

Usage:
  python scripts/compare_covid_options.py --data ../shared/data/COVID-19_Radiography_Dataset --epochs 4 --out cmp
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(os.path.dirname(HERE), "bundles", "covid")

VARIANTS = {
    "equalized_ce_weighted": {},
    "plain_ce_weighted": {"_meta_#medkit#preprocessing#equalize": False},
    "equalized_focal": {"loss_kind": "focal", "class_weighting": False},
    "equalized_ce_unweighted": {"class_weighting": False},
}


def run_variant(name: str, data: str, epochs: int, out_dir: str) -> dict:
    from medkit.bundle import create_workflow

    run_dir = os.path.join(out_dir, name)
    settings = {"dataset_dir": data, "epochs": epochs, "ckpt_dir": run_dir, "output_dir": os.path.join(run_dir, "runs")}
    settings.update(VARIANTS[name])
    start = time.time()
    wf = create_workflow(BUNDLE, "train", settings)
    wf.run()
    train_s = time.time() - start
    evaluate = {k: v for k, v in VARIANTS[name].items() if k.startswith("_meta_")}
    evaluate.update(dataset_dir=data, split="validation", ckpt_path=os.path.join(run_dir, "model.pt"), n_worst=0)
    evaluate["output_dir"] = os.path.join(run_dir, "eval")
    ev = create_workflow(BUNDLE, "evaluate", evaluate)
    ev.run()
    report = ev.parser.get_parsed_content("report").report
    return {
        "variant": name,
        "overrides": VARIANTS[name],
        "epochs": epochs,
        "train_s": round(train_s, 1),
        "n_cases": report["n_cases"],
        "accuracy": round(report["accuracy"], 4),
        "auc_macro": round(report["auc"], 4),
        "f1_macro": round(report["f1_macro"], 4),
        "recall": {k: round(v["recall"], 4) for k, v in report["per_class"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="COVID-19_Radiography_Dataset folder as published")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="covid_comparison")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.variants:
        rows.append(run_variant(name, os.path.abspath(args.data), args.epochs, args.out))
        print(json.dumps(rows[-1]), flush=True)
        with open(os.path.join(args.out, "comparison.json"), "w") as f:
            json.dump(rows, f, indent=2)
    print("| variant | accuracy | macro AUC | macro F1 | train s |\n|---|---|---|---|---|")
    for r in rows:
        figures = f"{r['accuracy']:.4f} | {r['auc_macro']:.4f} | {r['f1_macro']:.4f} | {r['train_s']:.0f}"
        print(f"| {r['variant']} | {figures} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
