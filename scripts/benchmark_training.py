"""Training speed of a bundle's own pipeline against a plain PyTorch loop: same network, images, batch and
augmentation, on this machine (the GPU when there is one).

Pipelines, each in its own process (so each gets its own peak memory), for ``--epochs`` epochs over the same
subset of the bundle's training data (``--n-items`` training and ``--n-val`` validation items, drawn with seed 0
from the bundle's datalist and passed to both as one datalist file):

* ``bundle``: the bundle's ``train.json`` as ``medkit train`` runs it (CacheDataset, ThreadDataLoader, Ignite
  trainer with its handlers and training metric, validation each epoch, checkpoints), with its defaults for this
  machine (``bf16_cpu``, ``channels_last``, ``batch_augmentation``) and any ``--set id=value``;
* ``plain``: the loop a user writes by hand: ``monai.data.Dataset`` of the bundle's preprocessing and per-sample
  augmentation decoding every file every epoch in a ``torch.utils.data.DataLoader`` with ``--workers`` processes,
  plain tensors, AdamW, the bundle's loss; float32 on the CPU, autocast on CUDA (as the bundle's ``amp``);
  no validation;
* ``plain_fast`` (where the bundle resolves ``bf16_cpu`` or ``channels_last`` on): the plain loop with the bundle's
  precision and memory layout, to separate what the numerics bring from what the pipeline brings.

Reported per pipeline: training samples per second (samples: what the network sees, so patches for the patch
bundles), the training part of an epoch (from the epoch's start to its last step, so the bundle's validation
and checkpoints are not in it; the bundle's whole epoch is reported beside it), the time spent waiting for data,
peak memory (main process and loader workers; GPU memory on CUDA). Figures are the median over epochs 2 to
``--epochs`` (the first carries start-up). Then ``bundle / plain``. Prints a Markdown row per pipeline, writes JSON.

Usage:
  python scripts/benchmark_training.py bundles/pneumonia --data ../shared/data/chest_xray --out bench_train.json
  python scripts/benchmark_training.py bundles/brain_mri_segmentation --data ../shared/data/lgg-mri-segmentation \\
      --n-items 320 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PIPELINES = ("bundle", "plain", "plain_fast")


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0


def _parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def make_subset(bundle: str, data: str, n_items: int, n_val: int, out: str, sets: dict) -> dict:
    """Write a datalist of ``n_items`` training and ``n_val`` validation items of the bundle's own datalist."""
    from monai.bundle import ConfigParser

    from medkit.io.atomic import write_json_atomic

    parser = ConfigParser()  # not a workflow: nothing is initialised, cached or checked, only the datalist is built
    parser.read_config(os.path.join(bundle, "configs", "train.json"))
    parser.update({"bundle_root": os.path.abspath(bundle), "dataset_dir": data, **sets})
    datalist = parser.get_parsed_content("datalist")
    rng = random.Random(0)
    subset = {}
    for split, n in (("training", n_items), ("validation", n_val)):
        items = list(datalist[split])
        rng.shuffle(items)
        subset[split] = items[:n]
    write_json_atomic(subset, out)
    return {split: len(items) for split, items in subset.items()}


def _median_after_first(values: list[float]) -> float:
    return statistics.median(values[1:] if len(values) > 1 else values)


def run_bundle(bundle: str, data: str, datalist: str, epochs: int, work: str, sets: dict) -> dict:
    import torch
    from ignite.engine import Events

    from medkit.bundle import create_workflow
    from medkit.bundle.fast import use_bf16, use_channels_last

    overrides = {
        "dataset_dir": data,
        "datalist_file": datalist,
        "epochs": epochs,
        "ckpt_dir": os.path.join(work, "models"),
        "output_dir": os.path.join(work, "runs"),
        "overwrite": True,
        "early_stop_patience": epochs + 1,
        **sets,
    }
    wf = create_workflow(bundle, "train", overrides)
    get = wf.parser.get_parsed_content
    trainer = get("train#trainer")
    device = torch.device(get("device"))
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    rec: dict = {"train": [], "epoch": [], "wait": [], "samples": []}
    state: dict = {}

    @trainer.on(Events.EPOCH_STARTED)
    def _start(engine) -> None:
        sync()
        state.update(t0=time.perf_counter(), wait=0.0, samples=0, last=time.perf_counter())

    @trainer.on(Events.GET_BATCH_STARTED)
    def _get(engine) -> None:
        state["g"] = time.perf_counter()

    @trainer.on(Events.GET_BATCH_COMPLETED)
    def _got(engine) -> None:
        state["wait"] += time.perf_counter() - state["g"]
        image = engine.state.batch["image"] if isinstance(engine.state.batch, dict) else engine.state.batch[0]
        state["samples"] += int(image.shape[0])

    @trainer.on(Events.ITERATION_COMPLETED)
    def _step(engine) -> None:
        sync()
        state["last"] = time.perf_counter()

    @trainer.on(Events.EPOCH_COMPLETED)
    def _end(engine) -> None:  # registered after the bundle's handlers: runs after validation and checkpoints
        rec["train"].append(state["last"] - state["t0"])
        rec["epoch"].append(time.perf_counter() - state["t0"])
        rec["wait"].append(state["wait"])
        rec["samples"].append(state["samples"])

    wf.run()
    train_s = _median_after_first(rec["train"])
    samples = int(_median_after_first(rec["samples"]))
    row = {
        "pipeline": "bundle",
        "settings": {
            "bf16_cpu": use_bf16(get("bf16_cpu"), device),
            "channels_last": use_channels_last(get("channels_last"), device, get("network_def")),
            "batch_augmentation": bool(get("batch_augmentation")),
            **sets,
        },
        "samples_per_epoch": samples,
        "train_s": round(train_s, 3),
        "epoch_with_validation_s": round(_median_after_first(rec["epoch"]), 3),
        "data_wait_s": round(_median_after_first(rec["wait"]), 3),
        "samples_per_s": round(samples / train_s, 2),
        "train_s_each": [round(t, 3) for t in rec["train"]],
    }
    return row


def run_plain(bundle: str, data: str, datalist: str, epochs: int, workers: int, fast: bool, sets: dict) -> dict:
    import torch
    from monai.data import Dataset, list_data_collate
    from monai.transforms import Compose

    from medkit.bundle import create_workflow
    from medkit.bundle.fast import memory_format, use_bf16
    from medkit.workflows.batch import _plain

    wf = create_workflow(bundle, "train", {"dataset_dir": data, "datalist_file": datalist, "overwrite": True, **sets})
    get = wf.parser.get_parsed_content
    device = torch.device(get("device"))
    cuda = device.type == "cuda"
    with open(datalist) as f:
        items = json.load(f)["training"]
    transform = Compose(get("preprocessing") + get("train#augmentation"))
    loader = torch.utils.data.DataLoader(
        Dataset(items, transform),
        batch_size=int(get("batch_size")),
        shuffle=True,
        num_workers=workers,
        collate_fn=list_data_collate,
        persistent_workers=workers > 0,
        pin_memory=cuda,
        drop_last=bool(get("train#dataloader").drop_last),
    )
    network_def = get("network_def")
    layout = memory_format(get("channels_last"), device, network_def) if fast else torch.preserve_format
    network = network_def.to(device, memory_format=layout)
    bf16 = fast and use_bf16(get("bf16_cpu"), device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=float(get("learning_rate")), weight_decay=float(get("weight_decay"))
    )
    loss_fn = get("loss")
    prepare = get("prepare_batch")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    network.train()
    rec: dict = {"train": [], "wait": [], "samples": []}
    for _ in range(epochs):
        wait, samples = 0.0, 0
        sync()
        t0 = t_wait = time.perf_counter()
        for batch in loader:
            inputs, targets = _plain(prepare(batch, device, cuda)[:2])
            wait += time.perf_counter() - t_wait
            samples += int(inputs.shape[0])
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                with torch.autocast("cuda"):
                    loss = loss_fn(network(inputs), targets)
            elif bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = network(inputs)
                loss = loss_fn(out.float(), targets)
            else:
                loss = loss_fn(network(inputs), targets)
            loss.backward()
            optimizer.step()
            sync()
            t_wait = time.perf_counter()
        rec["train"].append(time.perf_counter() - t0)
        rec["wait"].append(wait)
        rec["samples"].append(samples)
    del loader  # its worker processes end and are waited for, so their peak memory is counted
    train_s = _median_after_first(rec["train"])
    samples = int(_median_after_first(rec["samples"]))
    return {
        "pipeline": "plain_fast" if fast else "plain",
        "settings": {"bf16_cpu": bf16, "channels_last": layout == torch.channels_last, "workers": workers},
        "samples_per_epoch": samples,
        "train_s": round(train_s, 3),
        "data_wait_s": round(_median_after_first(rec["wait"]), 3),
        "samples_per_s": round(samples / train_s, 2),
        "train_s_each": [round(t, 3) for t in rec["train"]],
    }


def _child(args: argparse.Namespace) -> int:
    import torch

    sets = _parse_sets(args.set)
    if args.child == "bundle":
        row = run_bundle(args.bundle, args.data, args.datalist, args.epochs, args.work, sets)
    else:
        row = run_plain(
            args.bundle, args.data, args.datalist, args.epochs, args.workers, args.child == "plain_fast", sets
        )
    row["peak_rss_mb"] = round(_peak_mb(resource.RUSAGE_SELF), 1)
    row["peak_worker_rss_mb"] = round(_peak_mb(resource.RUSAGE_CHILDREN), 1)
    if torch.cuda.is_available():
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print("RESULT " + json.dumps(row), flush=True)
    return 0


def _machine() -> dict:
    import torch

    from medkit.bundle.fast import cpu_has_bf16

    info = {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_bf16": cpu_has_bf16(),
        "torch": torch.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder")
    parser.add_argument("--data", required=True, help="the bundle's data folder (as --data of medkit train)")
    parser.add_argument("--n-items", type=int, default=512, help="training items (images, slices, volumes)")
    parser.add_argument("--n-val", type=int, default=64, help="validation items (the bundle validates each epoch)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per pipeline; the first is not reported")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes of the plain loop")
    parser.add_argument("--pipelines", default=",".join(PIPELINES), help=f"comma-separated, of {PIPELINES}")
    parser.add_argument("--set", action="append", default=[], help="id=value for the bundle's train.json")
    parser.add_argument("--out", default=None, help="write the figures here as JSON")
    parser.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--datalist", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    sets = _parse_sets(args.set)
    rows, result = [], {"bundle": os.path.basename(os.path.normpath(args.bundle)), "machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as work:
        datalist = os.path.join(work, "datalist.json")
        result["items"] = make_subset(args.bundle, args.data, args.n_items, args.n_val, datalist, sets)
        for kind in [p for p in args.pipelines.split(",") if p]:
            if kind not in PIPELINES:
                parser.error(f"--pipelines: unknown pipeline '{kind}'")
            cmd = [sys.executable, os.path.abspath(__file__), args.bundle, "--data", args.data, "--child", kind]
            cmd += ["--datalist", datalist, "--work", os.path.join(work, kind), "--epochs", str(args.epochs)]
            cmd += ["--workers", str(args.workers)] + [f"--set={s}" for s in args.set]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"benchmark_training: the {kind} pipeline failed (exit status {proc.returncode})")
            row = json.loads(lines[-1][len("RESULT ") :])
            row["process_wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(f"{kind}: {row['samples_per_s']} samples/s", file=sys.stderr, flush=True)
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["pipelines"] = rows
    by = {r["pipeline"]: r for r in rows}
    if "bundle" in by and "plain" in by:
        result["bundle_over_plain"] = round(by["bundle"]["samples_per_s"] / by["plain"]["samples_per_s"], 2)
    if "bundle" in by and "plain_fast" in by:
        result["bundle_over_plain_fast"] = round(by["bundle"]["samples_per_s"] / by["plain_fast"]["samples_per_s"], 2)
    print("| pipeline | samples/epoch | samples/s | training part of epoch | data wait | peak RSS (workers) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        wait = f"{r['data_wait_s']} s ({100 * r['data_wait_s'] / r['train_s']:.0f}%)"
        print(
            f"| {r['pipeline']} | {r['samples_per_epoch']} | {r['samples_per_s']} | {r['train_s']} s | {wait} | "
            f"{r['peak_rss_mb']:.0f} MB ({r['peak_worker_rss_mb']:.0f} MB) |"
        )
    for key in ("bundle_over_plain", "bundle_over_plain_fast"):
        if key in result:
            print(f"{key}: {result[key]}")
    if args.out:
        from medkit.io.atomic import write_json_atomic

        write_json_atomic(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
