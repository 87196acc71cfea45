"""Speed and memory of the pneumonia bundle's pipelines on real chest X-rays.

Side by side, same network, same images, same augmentation:
  * cached: the bundle's pipeline, CacheDataset (deterministic preprocessing cached once) + ThreadDataLoader;
  * plain: Dataset + DataLoader decoding and resizing every file every epoch, as notebooks do.
For each: time to build the cache, one training epoch's wall time, the part of it spent waiting for data,
training images/s and the process's peak resident memory (each pipeline runs in its own process).
Then ``medkit infer`` on a folder: images/s over the whole command and its peak memory.

Usage:
  python scripts/benchmark_pneumonia.py --data ../shared/data/chest_xray --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(os.path.dirname(HERE), "bundles", "pneumonia")


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0


def run_pipeline(kind: str, data: str, n_images: int, batch_size: int, workers: int) -> dict:
    """One training epoch over ``n_images`` training images with the ``cached`` or ``plain`` pipeline."""
    import torch
    from monai.data import CacheDataset, DataLoader, Dataset, ThreadDataLoader
    from monai.transforms import Compose

    from medkit.bundle import create_workflow

    wf = create_workflow(BUNDLE, "train", {"dataset_dir": data, "cache_rate": 0.0})
    get = wf.parser.get_parsed_content
    items = get("datalist")["training"][:n_images]
    transform = Compose(get("preprocessing") + get("train#augmentation"))
    network, loss_fn = get("network"), get("loss")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    if kind == "cached":
        dataset = CacheDataset(items, transform, cache_rate=1.0, num_workers=workers, progress=False)
        loader = ThreadDataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    else:
        dataset = Dataset(items, transform)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    setup_s = time.perf_counter() - t0
    network.train()
    data_s = 0.0
    t_epoch = time.perf_counter()
    t_wait = time.perf_counter()
    for batch in loader:
        data_s += time.perf_counter() - t_wait
        optimizer.zero_grad()
        loss = loss_fn(network(batch["image"]), batch["label"].long())
        loss.backward()
        optimizer.step()
        t_wait = time.perf_counter()
    epoch_s = time.perf_counter() - t_epoch
    return {
        "pipeline": kind,
        "n_images": len(items),
        "setup_s": round(setup_s, 2),
        "epoch_s": round(epoch_s, 2),
        "epoch_data_s": round(data_s, 2),
        "train_images_per_s": round(len(items) / epoch_s, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def run_infer(folder: str, out_dir: str) -> dict:
    """Time ``medkit infer`` over every image in ``folder`` as one command."""
    n = sum(1 for f in os.listdir(folder) if f.lower().endswith((".jpeg", ".jpg", ".png", ".dcm")))
    out = os.path.join(out_dir, "bench_predictions.csv")
    medkit = os.path.join(os.path.dirname(sys.executable), "medkit")
    t0 = time.perf_counter()
    proc = subprocess.run([medkit, "infer", BUNDLE, folder, "--out", out], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return {
        "command": f"medkit infer bundles/pneumonia {folder} --out {out}",
        "n_images": n,
        "wall_s": round(wall, 2),
        "images_per_s": round(n / wall, 2),
        "peak_rss_mb": round(_peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="chest_xray folder as published")
    parser.add_argument("--n-images", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="cache workers / plain DataLoader workers")
    parser.add_argument("--infer-folder", default=None, help="folder for the medkit infer timing")
    parser.add_argument("--out", default="benchmark_pneumonia.json")
    parser.add_argument("--pipeline", choices=["cached", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pipeline:  # child process: one pipeline, JSON on stdout
        print(json.dumps(run_pipeline(args.pipeline, args.data, args.n_images, args.batch_size, args.workers)))
        return 0
    import torch

    results: dict = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "pipelines": []}
    # first, while RUSAGE_CHILDREN still measures this child alone
    folder = args.infer_folder or os.path.join(args.data, "train", "NORMAL")
    results["infer"] = run_infer(folder, os.path.dirname(os.path.abspath(args.out)))
    print(json.dumps(results["infer"]))
    for kind in ("cached", "plain"):
        cmd = [sys.executable, __file__, "--data", args.data, "--n-images", str(args.n_images)]
        cmd += ["--batch-size", str(args.batch_size), "--workers", str(args.workers), "--pipeline", kind]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        results["pipelines"].append(row)
        print(json.dumps(row))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
