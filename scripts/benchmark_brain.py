"""Inference time and memory of the brain MRI pipeline per patient, one-stage and two-stage, on real LGG cases.

For each patient folder of the chosen split (the bundle's patient-level split of the kaggle_3m set), runs
``medkit infer`` on the folder in a fresh process, once with the classifier stage (the default) and once with
``--no-classifier``, and records wall time of the whole command (start-up and model loading included), the time
of the inference loop alone, the number of slices segmented and the process's peak resident memory. ``--set
ID=VALUE`` passes bundle config overrides to ``medkit infer`` (e.g. ``--set flip_tta=false``).

Usage:
  python scripts/benchmark_brain.py --data ../shared/data/lgg-mri-segmentation --split test --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SEGMENTER = os.path.join(os.path.dirname(HERE), "bundles", "brain_mri_segmentation")


def infer_patient(folder: str, two_stage: bool, overrides: list[str]) -> dict:
    """One ``medkit infer`` run on a patient folder, in this process, timed; returns the figures."""
    from click.testing import CliRunner

    from medkit.cli.main import cli

    with tempfile.TemporaryDirectory() as out:
        args = ["infer", SEGMENTER, folder, "--out", out] + ([] if two_stage else ["--no-classifier"])
        args += [a for pair in overrides for a in ("--set", pair)]
        t0 = time.perf_counter()
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        wall = time.perf_counter() - t0
        if result.exit_code != 0:
            raise RuntimeError(result.output)
        with open(os.path.join(out, "predictions.csv")) as f:
            rows = f.read().strip().splitlines()[1:]
    segmented = sum(1 for r in rows if ",True," in r)
    return {"slices": len(rows), "segmented": segmented, "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the lgg-mri-segmentation (or kaggle_3m) folder")
    parser.add_argument("--split", default="test", choices=["training", "validation", "test"])
    parser.add_argument("--out", default="bench_brain.json")
    parser.add_argument("--set", action="append", default=[], metavar="ID=VALUE", help="bundle config override")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one patient, print JSON
    parser.add_argument("--mode", default="two", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        figures = infer_patient(args.one, args.mode == "two", args.set)
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
        print(json.dumps(figures))
        return

    from medkit.bundle import load_metadata
    from medkit.data import make_datalist

    data_cfg = load_metadata(SEGMENTER)["medkit"]["data"]
    datalist = make_datalist(dataset_dir=args.data, **{k: v for k, v in data_cfg.items() if k != "mask_as_label"})
    folders = sorted({os.path.dirname(i["image"]) for i in datalist[args.split]})
    results = {"split": args.split, "overrides": args.set, "patients": {}}
    for folder in folders:
        case = os.path.basename(folder)
        results["patients"][case] = {}
        for mode in ("two", "one"):
            cmd = [sys.executable, __file__, "--data", args.data, "--one", folder, "--mode", mode]
            cmd += [a for pair in args.set for a in ("--set", pair)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            results["patients"][case][f"{mode}_stage"] = figures
            print(case, mode, figures, flush=True)
    for mode in ("two_stage", "one_stage"):
        runs = [p[mode] for p in results["patients"].values()]
        results[mode] = {
            "mean_wall_s_per_patient": round(sum(r["wall_s"] for r in runs) / len(runs), 2),
            "mean_slices": round(sum(r["slices"] for r in runs) / len(runs), 1),
            "mean_segmented": round(sum(r["segmented"] for r in runs) / len(runs), 1),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: results[k] for k in ("two_stage", "one_stage")}, indent=2))


if __name__ == "__main__":
    main()
