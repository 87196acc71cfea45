"""Where a 2D bundle's training step spends its time: each augmentation transform, the network, the bookkeeping.

Builds the bundle's training pipeline as train.json does (``preprocessing``, then ``to_device``, which on a GPU with
``gpu_cache`` on moves the cached tensors there, then ``train#augmentation``), caches ``--n`` training items and
times, per sample, each augmentation transform in turn (each one's output feeds the next). A crop with
``fg_indices_key`` (``RandCropByPosNegLabeld``) is timed a second time with its foreground/background indices
computed beforehand on the CPU (``FgBgToIndicesd``, MONAI's fast-training pattern), which is what a cached
pipeline could hold instead of finding them on every call. Then, on batches of train.json's ``batch_size`` of
the augmented samples: the network's forward, loss, backward and optimiser step (under the trainer's ``amp`` on
CUDA, the bundle's bfloat16 ``bf16_cpu`` autocast on the CPU), and the trainer's per-iteration bookkeeping
(``train#postprocessing`` on the decollated batch and the key metric's update). Every timing ends with a CUDA
synchronisation. Prints and writes JSON.

Usage:
  python scripts/benchmark_augmentation.py bundles/brain_mri_segmentation --data DATA_DIR --out bench_aug.json \
      [--set gpu_cache=false] [--set "patch_size=[128,128]"]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace


def profile(bundle: str, data: str, n: int, steps: int, overrides: dict) -> dict:
    import torch
    from monai.data import CacheDataset, decollate_batch, list_data_collate
    from monai.transforms import Compose, FgBgToIndicesd, RandCropByPosNegLabeld
    from monai.utils import set_determinism

    from medkit.bundle import create_workflow

    wf = create_workflow(bundle, "train", {"dataset_dir": data, "cache_rate": 0.0, "overwrite": True, **overrides})
    get = wf.parser.get_parsed_content
    device = torch.device(get("device"))
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    set_determinism(0)
    items = get("datalist")["training"][:n]
    to_device = get("to_device")
    cached = CacheDataset(items, Compose(get("preprocessing") + to_device), cache_rate=1.0, progress=False)
    samples = [dict(cached[i]) for i in range(len(cached))]
    row: dict = {"bundle": bundle, "device": str(device), "cache_on_device": bool(to_device), "n_items": len(items)}
    transforms = []
    for t in get("train#augmentation"):
        outputs = []
        sync()
        t0 = time.perf_counter()
        for s in samples:
            out = t(dict(s))
            outputs.extend(out if isinstance(out, list) else [out])
        sync()
        transforms.append(
            {"transform": type(t).__name__, "ms_per_sample": round((time.perf_counter() - t0) / len(samples) * 1e3, 3)}
        )
        if isinstance(t, RandCropByPosNegLabeld) and t.fg_indices_key is None:
            # the same crop with indices found once (as a cache would hold them), from a CPU copy of the label
            indices = FgBgToIndicesd(t.label_key, fg_postfix="_fg", bg_postfix="_bg")
            pre = [
                {**s, **{k: v for k, v in indices({t.label_key: s[t.label_key].cpu()}).items() if k != t.label_key}}
                for s in samples
            ]
            fast = RandCropByPosNegLabeld(
                list(t.keys),
                label_key=t.label_key,
                spatial_size=t.cropper.spatial_size,
                pos=t.cropper.pos_ratio,
                neg=1.0 - t.cropper.pos_ratio,
                num_samples=t.cropper.num_samples,
                fg_indices_key=f"{t.label_key}_fg",
                bg_indices_key=f"{t.label_key}_bg",
                allow_smaller=t.cropper.allow_smaller,
            )
            sync()
            t0 = time.perf_counter()
            for s in pre:
                fast(dict(s))
            sync()
            transforms.append(
                {
                    "transform": "RandCropByPosNegLabeld (indices precomputed)",
                    "ms_per_sample": round((time.perf_counter() - t0) / len(pre) * 1e3, 3),
                }
            )
        samples = outputs
    row["augmentation"] = transforms
    row["augmentation_ms_per_sample"] = round(
        sum(t["ms_per_sample"] for t in transforms if "precomputed" not in t["transform"]), 3
    )

    network, loss_fn, optimizer = get("network"), get("loss"), get("optimizer")
    postprocessing, metric = get("train#postprocessing"), next(iter(get("train#key_metric").values()))
    batch_size = int(get("batch_size"))
    inferer = get("train#inferer")
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    net_times, book_times = [], []
    metric.reset()
    network.train()
    for i in range(steps + 2):
        chunk = [samples[(i * batch_size + j) % len(samples)] for j in range(batch_size)]
        batch = list_data_collate(chunk)
        image, label = batch["image"].to(device), batch["label"].to(device)
        sync()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if cuda:  # as SupervisedTrainer with amp=True
            with torch.autocast("cuda"):
                pred = inferer(image, network)
                loss = loss_fn(pred, label)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            pred = inferer(image, network)
            loss = loss_fn(pred, label)
            loss.backward()
            optimizer.step()
        sync()
        t1 = time.perf_counter()
        decollated = [postprocessing(d) for d in decollate_batch({"pred": pred.detach(), "label": label})]
        metric.iteration_completed(SimpleNamespace(state=SimpleNamespace(output=decollated)))  # as the engine does
        sync()
        if i >= 2:
            net_times.append(t1 - t0)
            book_times.append(time.perf_counter() - t1)
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    row["batch_size"] = batch_size
    row["step_network_s"] = round(median(net_times), 4)
    row["step_bookkeeping_s"] = round(median(book_times), 4)
    row["step_augmentation_s"] = round(row["augmentation_ms_per_sample"] * batch_size / 1e3, 4)
    if cuda:
        row["gpu"] = torch.cuda.get_device_name(device)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder (a 2D bundle whose train.json has train#augmentation)")
    parser.add_argument("--data", required=True, help="the bundle's data folder (dataset_dir)")
    parser.add_argument("--n", type=int, default=64, help="training items cached and augmented")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (after two warm-up steps)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="ID=VALUE", help="train.json override (JSON value)"
    )
    parser.add_argument("--out", default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    from medkit.cli.common import parse_overrides

    row = profile(args.bundle, args.data, args.n, args.steps, parse_overrides(args.set))
    print(json.dumps(row, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(row, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
