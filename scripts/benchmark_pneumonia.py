"""Speed and memory of the pneumonia bundle's pipelines on real chest X-rays.

Side by side, same network, same images, same augmentation, on the bundle's device (the GPU when there is one):
  * cached: the bundle's pipeline, CacheDataset (deterministic preprocessing cached once; on a GPU the cache holds
    device tensors, ``ToDeviced``, and augmentation runs there) + ThreadDataLoader;
  * cached_host (GPU only): the same cache in host memory, augmentation on the CPU, each batch copied to the GPU;
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
#: the pipelines compared (``cached_host`` only where there is a GPU: on the CPU it is ``cached``)
PIPELINES = ("cached", "cached_host", "plain")


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0


def run_pipeline(kind: str, data: str, n_images: int, batch_size: int, workers: int, epochs: int = 1) -> dict:
    """``epochs`` training epochs over ``n_images`` training images with one pipeline, on the bundle's device (the
    GPU when there is one):

    * ``cached``: the bundle's own, CacheDataset of ``train#preprocessing`` (on a GPU it ends in ``ToDeviced``, so
      the cache holds device tensors and augmentation runs there) + ThreadDataLoader;
    * ``cached_host``: the same cache kept in host memory, augmentation on the CPU, batches copied to the device;
    * ``plain``: Dataset + DataLoader(``workers`` processes) decoding every file every epoch, batches copied.

    On CUDA the forward pass runs under bfloat16 autocast (the bundle's trainer uses ``amp``) and every timing
    ends with a synchronisation."""
    import torch
    from monai.data import CacheDataset, DataLoader, Dataset, ThreadDataLoader
    from monai.transforms import Compose

    from medkit.bundle import create_workflow

    wf = create_workflow(BUNDLE, "train", {"dataset_dir": data, "cache_rate": 0.0, "overwrite": True})
    get = wf.parser.get_parsed_content
    device = torch.device(get("device"))
    cuda = device.type == "cuda"
    items = get("datalist")["training"][:n_images]
    host_transform = Compose(get("preprocessing") + get("train#augmentation"))
    network, loss_fn = get("network"), get("loss")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    if kind == "cached":
        dataset = CacheDataset(items, get("train#preprocessing"), cache_rate=1.0, num_workers=workers, progress=False)
        loader = ThreadDataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    elif kind == "cached_host":
        dataset = CacheDataset(items, host_transform, cache_rate=1.0, num_workers=workers, progress=False)
        loader = ThreadDataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    else:
        dataset = Dataset(items, host_transform)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=cuda)
    sync()
    setup_s = time.perf_counter() - t0
    network.train()
    epoch_times, data_times = [], []
    for _ in range(epochs):
        data_s = 0.0
        t_epoch = t_wait = time.perf_counter()
        for batch in loader:
            image = batch["image"].to(device, non_blocking=True)
            label = batch["label"].to(device, non_blocking=True).long()
            data_s += time.perf_counter() - t_wait
            optimizer.zero_grad()
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = loss_fn(network(image), label)
            loss.backward()
            optimizer.step()
            sync()
            t_wait = time.perf_counter()
        epoch_times.append(time.perf_counter() - t_epoch)
        data_times.append(data_s)
    last = epoch_times[-1]
    row = {
        "pipeline": kind,
        "device": str(device),
        "n_images": len(items),
        "setup_s": round(setup_s, 2),
        "epoch_s": round(last, 2),
        "epoch_data_s": round(data_times[-1], 2),
        "train_images_per_s": round(len(items) / last, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    if epochs > 1:  # the first epoch carries CUDA/cuDNN start-up; the figures above are the last epoch's
        row["epoch_s_each"] = [round(t, 2) for t in epoch_times]
    if cuda:
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return row


def run_infer(folder: str, out_dir: str) -> dict:
    """Time ``medkit infer`` over every image in ``folder`` as one command."""
    n = sum(1 for f in os.listdir(folder) if f.lower().endswith((".jpeg", ".jpg", ".png", ".dcm")))
    out = os.path.join(out_dir, "bench_infer")  # the command writes predictions.csv in it
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
    parser.add_argument("--epochs", type=int, default=1, help="epochs per pipeline (the last one is reported)")
    parser.add_argument("--out", default="benchmark_pneumonia.json")
    parser.add_argument("--pipeline", choices=PIPELINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pipeline:  # child process: one pipeline, JSON on stdout
        row = run_pipeline(args.pipeline, args.data, args.n_images, args.batch_size, args.workers, args.epochs)
        print(json.dumps(row))
        return 0
    import torch

    results: dict = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "pipelines": []}
    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name(0)
    # first, while RUSAGE_CHILDREN still measures this child alone
    folder = args.infer_folder or os.path.join(args.data, "train", "NORMAL")
    results["infer"] = run_infer(folder, os.path.dirname(os.path.abspath(args.out)))
    print(json.dumps(results["infer"]))
    for kind in PIPELINES if torch.cuda.is_available() else ("cached", "plain"):
        cmd = [sys.executable, __file__, "--data", args.data, "--n-images", str(args.n_images)]
        cmd += ["--batch-size", str(args.batch_size), "--workers", str(args.workers), "--epochs", str(args.epochs)]
        cmd += ["--pipeline", kind]
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
