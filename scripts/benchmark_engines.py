"""Images (or volumes) per second of each engine (PyTorch eager, TorchScript, ONNX Runtime) on the same real inputs,
for every bundle, in one run; the start-up time of the whole ``medkit infer`` command and its peak memory.

Each bundle is copied into a scratch folder and exported there (``medkit export --format torchscript|onnx``, so the
shipped bundle is untouched). Per bundle and engine it measures, in this process:
  - ``network``: the network alone on the preprocessed inputs, in batches of the bundle's ``batch_size`` (for the
    segmenter: 256-pixel windows in batches of ``sw_batch_size``), after one warm-up batch;
  - ``loop``: the plain loop, decode and preprocessing (the bundle's own transforms, timed once) plus the network;
  - ``max_prob_diff``: the largest difference of output probabilities from the PyTorch network on those inputs;
and, in fresh processes: ``medkit infer --engine E`` on one input (the start-up: imports, bundle and network
loading) and on all inputs; ``infer`` is the rate with that start-up taken away, ``peak_mb`` the command's peak
resident memory. The JSON holds every figure and the machine's load average; a Markdown table is printed.

Inputs (from ``--data``, the folder holding the data sets as published): the first ``--n`` Kermany training X-rays
(JPEG, NORMAL and PNEUMONIA alternately), COVID radiography PNGs, LGG FLAIR slices (TIFF, whole patients), and the
real abdominal CT (``abdominal_ct/totalsegmentator_example/example_ct.nii.gz``) for the trauma bundle.

Usage:
  python scripts/benchmark_engines.py --data ../shared/data --out bench_engines.json [--bundles pneumonia] [--n 512]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLES = os.path.join(os.path.dirname(HERE), "bundles")
ENGINES = ("torch", "torchscript", "onnx")
ALL = ("pneumonia", "covid", "brain_mri_classification", "brain_mri_segmentation", "abdominal_trauma")


def real_inputs(name: str, data: str, n: int) -> list[str]:
    """The first ``n`` real inputs of a bundle's data set (files; whole patient folders for the brain bundles)."""
    if name == "pneumonia":
        normal = sorted(glob.glob(os.path.join(data, "chest_xray", "train", "NORMAL", "*.jpeg")))
        pneumonia = sorted(glob.glob(os.path.join(data, "chest_xray", "train", "PNEUMONIA", "*.jpeg")))
        files = [f for pair in zip(normal, pneumonia) for f in pair]
    elif name == "covid":
        root = os.path.join(data, "COVID-19_Radiography_Dataset")
        classes = [
            sorted(glob.glob(os.path.join(root, c, "**", "*.png"), recursive=True)) for c in sorted(os.listdir(root))
        ]
        files = [f for group in zip(*[c for c in classes if c]) for f in group]
    elif name.startswith("brain"):  # whole patients (stacks), until there are n slices
        files = []
        for case in sorted(glob.glob(os.path.join(data, "lgg-mri-segmentation", "kaggle_3m", "TCGA_*"))):
            if len(files) >= n:
                break
            files += sorted(f for f in glob.glob(os.path.join(case, "*.tif")) if not f.endswith("_mask.tif"))
        return files
    else:
        files = [os.path.join(data, "abdominal_ct", "totalsegmentator_example", "example_ct.nii.gz")] * n
    if not files:
        raise SystemExit(f"no inputs for {name} under {data}")
    return files[:n]


def _peak_mb(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; its wall time, peak resident memory (MB) and output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, output


def whole_command(bundle: str, files: list[str], engine: str, scratch: str) -> dict:
    """``medkit infer`` on one input and on all of them, each in a fresh process."""
    medkit = [os.path.join(os.path.dirname(sys.executable), "medkit")]
    # the brain bundles read whole patient folders (stacks); the others the files themselves
    inputs = sorted({os.path.dirname(f) for f in files}) if "brain" in bundle else files
    one = [files[0]]
    runs = {}
    for label, chosen in (("one", one), ("all", inputs)):
        out = os.path.join(scratch, f"out-{engine}-{label}")
        wall, peak, _ = _peak_mb([*medkit, "infer", bundle, *chosen, "--out", out, "--engine", engine])
        runs[label] = (wall, peak)
    n = len(files)
    start_up, total = runs["one"][0], runs["all"][0]
    return {
        "start_up_s": round(start_up, 2),
        "command_s": round(total, 2),
        # None where the whole run was not measurably longer than the one-input run (start-up noise)
        "infer_per_s": round((n - 1) / (total - start_up), 2) if total > start_up * 1.05 else None,
        "peak_mb": round(max(runs["all"][1], runs["one"][1])),
    }


def in_process(bundle: str, files: list[str]) -> dict:
    """Decode + preprocessing once, then each engine's network on the same batches."""
    import torch

    from medkit.bundle import create_workflow, load_metadata
    from medkit.engines import load_network
    from medkit.engines.export import probabilities

    wf = create_workflow(bundle, "infer", {"inputs": files}, ignore_unknown=True)
    dataset = wf.parser.get_parsed_content("dataset")
    start = time.perf_counter()
    items = [dataset[i] for i in range(len(dataset))]
    preprocess_s = time.perf_counter() - start
    images = [torch.as_tensor(it["image"]).float() for it in items if not it.get("error")]
    segmenter = load_metadata(bundle)["medkit"].get("task_type") == "segmentation"
    if segmenter:  # the sliding window's batches: 256-pixel windows, sw_batch_size at a time
        size = [int(s) for s in wf.parser.get_parsed_content("patch_size")]
        images = [torch.nn.functional.interpolate(im[None], size=size, mode="bilinear")[0] for im in images]
        batch_size = int(wf.parser.get_parsed_content("sw_batch_size"))
    else:
        batch_size = int(wf.parser.get_parsed_content("batch_size"))
    batches = [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    ckpt = wf.parser.get_parsed_content("ckpt_path")
    out = {"n": len(images), "preprocess_s": round(preprocess_s, 2), "engines": {}}
    meta, reference = load_metadata(bundle), None
    for engine in ENGINES:
        net = load_network(engine, wf.parser.get_parsed_content("network_def"), ckpt)
        if engine == "torch":
            net.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        net.eval()
        with torch.no_grad():
            net(batches[0])  # warm-up (TorchScript's profiling executor optimises on the first calls)
            start = time.perf_counter()
            outputs = [net(batch) for batch in batches]
            network_s = time.perf_counter() - start
        probs = probabilities(meta, torch.cat(outputs))
        reference = probs if reference is None else reference
        out["engines"][engine] = {
            "network_per_s": round(len(images) / network_s, 2),
            "loop_per_s": round(len(images) / (network_s + preprocess_s), 2),
            "max_prob_diff": float((probs - reference).abs().max()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("MEDKIT_DATA"), help="folder holding the data sets")
    parser.add_argument("--bundles", nargs="+", default=list(ALL), choices=ALL)
    parser.add_argument("--n", type=int, default=512, help="inputs per 2D classifier")
    parser.add_argument("--n-slices", type=int, default=40, help="slices for the brain bundles")
    parser.add_argument("--n-volumes", type=int, default=2, help="CT volumes for the trauma bundle")
    parser.add_argument("--out", default="bench_engines.json")
    args = parser.parse_args()
    if not args.data:
        raise SystemExit("--data (or MEDKIT_DATA) is required")
    from medkit.engines.export import export_engine

    results = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "bundles": {}}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        for name in args.bundles:  # the segmenter's gate is its sibling: copy both brain bundles together
            for needed in [name] + (["brain_mri_classification"] if name == "brain_mri_segmentation" else []):
                if not os.path.isdir(os.path.join(scratch, needed)):
                    shutil.copytree(os.path.join(BUNDLES, needed), os.path.join(scratch, needed))
                    for engine in ENGINES[1:]:
                        export_engine(os.path.join(scratch, needed), engine)
        for name in args.bundles:
            n = args.n_volumes if name == "abdominal_trauma" else args.n_slices if "brain" in name else args.n
            files = real_inputs(name, args.data, n)
            bundle = os.path.join(scratch, name)
            figures = in_process(bundle, files)
            for engine in ENGINES:
                figures["engines"][engine].update(whole_command(bundle, files, engine, scratch))
            results["bundles"][name] = figures
            print(json.dumps({name: figures}), flush=True)
    results["load_average_end"] = os.getloadavg()
    print(f"load average at start {results['load_average_start']}, at end {results['load_average_end']}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(
        "| bundle | inputs | engine | network /s | decode + preprocess + network /s "
        "| medkit infer /s (start-up excluded) | start-up s | peak MB | max prob. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, figures in results["bundles"].items():
        for engine, e in figures["engines"].items():
            print(
                f"| {name} | {figures['n']} | {engine} | {e['network_per_s']} | {e['loop_per_s']} | "
                f"{e['infer_per_s']} | {e['start_up_s']} | {e['peak_mb']} | {e['max_prob_diff']:.1e} |"
            )


if __name__ == "__main__":
    main()
