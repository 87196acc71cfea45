"""Load, preprocess and infer real abdominal CTs with the abdominal_trauma bundle: time and peak memory per volume.

Each volume runs in a fresh process (so peak resident memory is that volume's): the CT is read (DICOM series or
NIfTI) and preprocessed once on its own (timed, with its original grid and value range), then ``medkit infer``
runs the bundle on it (wall time of the whole command, model loading included) and its submission row is kept.

Usage:
  python scripts/benchmark_ct.py --data ../shared/data/abdominal_ct --out bench_ct.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(os.path.dirname(HERE), "bundles", "abdominal_trauma")
#: the real CTs of ../shared/data/abdominal_ct (see its README)
VOLUMES = (
    "ircad_patient_01/PATIENT_DICOM",
    "totalsegmentator_example/example_ct_dicom",
    "totalsegmentator_example/example_ct.nii.gz",
)


def measure(path: str) -> dict:
    """Figures for one volume, in this process."""
    from click.testing import CliRunner
    from monai.transforms import Compose

    from medkit.bundle import meta_component
    from medkit.cli.main import cli
    from medkit.io.ct import load_ct

    t0 = time.perf_counter()
    array, _, meta = load_ct(path)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = Compose(meta_component(BUNDLE, "preprocessing"))({"image": path})
    prep_s = time.perf_counter() - t0
    figures = {
        "shape": list(array.shape),
        "spacing_mm": [round(float(s), 3) for s in meta["spacing"]],
        "hu_min_max": [round(float(array.min()), 1), round(float(array.max()), 1)],
        "problems": meta.get("problems", []),
        "read_s": round(read_s, 2),
        "read_and_preprocess_s": round(prep_s, 2),
        "network_input": list(out["image"].shape),
    }
    with tempfile.TemporaryDirectory() as tmp:
        table = os.path.join(tmp, "predictions.csv")  # what `medkit infer --out DIR` writes there
        t0 = time.perf_counter()
        result = CliRunner().invoke(cli, ["infer", BUNDLE, path, "--out", tmp], catch_exceptions=False)
        figures["infer_command_s"] = round(time.perf_counter() - t0, 2)
        if result.exit_code != 0:
            raise RuntimeError(result.output)
        with open(table) as f:
            figures["submission_row"] = next(csv.DictReader(f))
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the abdominal_ct folder of the shared data")
    parser.add_argument("--out", default="bench_ct.json")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one volume, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    import torch

    results = {"torch_threads": torch.get_num_threads(), "volumes": {}}
    for rel in VOLUMES:
        path = os.path.join(args.data, rel)
        proc = subprocess.run(
            [sys.executable, __file__, "--data", args.data, "--one", path], capture_output=True, text=True
        )
        if proc.returncode != 0:
            results["volumes"][rel] = {
                "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
            }
        else:
            results["volumes"][rel] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(rel, json.dumps(results["volumes"][rel]), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
