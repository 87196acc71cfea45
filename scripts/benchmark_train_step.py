"""Training-step speed of a bundle's network on this machine: full precision vs bfloat16 autocast.

Builds the bundle's network (``medkit.network_def`` of its metadata) and times forward, loss, backward and an
AdamW step on random inputs of the bundle's training shape (``batch_size`` of train.json, the input channels and
patch/spatial shape of metadata.json), in float32 and under ``medkit.inferers.AutocastInferer`` (what the
bundle's ``bf16_cpu`` switch turns on); channels-last memory layout optionally. Prints and writes JSON.

Usage:
  python scripts/benchmark_train_step.py bundles/brain_mri_segmentation --steps 10 --out bench_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def training_shape(bundle: str, batch_size: int | None) -> tuple[int, ...]:
    from medkit.bundle import load_metadata

    meta = load_metadata(bundle)
    image = meta["network_data_format"]["inputs"]["image"]
    if batch_size is None:
        with open(os.path.join(bundle, "configs", "train.json")) as f:
            batch_size = int(json.load(f).get("batch_size", 1))
    return (batch_size, int(image["num_channels"]), *[int(s) for s in image["spatial_shape"]])


def time_steps(network: torch.nn.Module, x: torch.Tensor, steps: int, bf16: bool) -> float:
    """Median seconds of one training step (two warm-up steps first)."""
    from medkit.inferers import AutocastInferer

    inferer = AutocastInferer(enabled=bf16)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    network.train()
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        out = inferer(x, network)
        out = out[0] if isinstance(out, (list, tuple)) else out
        out.float().square().mean().backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--batch-size", type=int, default=None, help="default: train.json's batch_size")
    parser.add_argument("--channels-last", action="store_true", help="also time channels-last layout")
    parser.add_argument("--out", default=None, help="write the figures here as JSON")
    args = parser.parse_args()

    from medkit.bundle import meta_component

    shape = training_shape(args.bundle, args.batch_size)
    torch.manual_seed(0)
    x = torch.rand(shape)
    settings = [("float32", False, False), ("bfloat16", True, False)]
    if args.channels_last and x.ndim == 4:
        settings += [("float32 channels-last", False, True), ("bfloat16 channels-last", True, True)]
    figures = {"bundle": os.path.basename(os.path.abspath(args.bundle)), "input": list(shape)}
    figures["threads"] = torch.get_num_threads()
    for name, bf16, channels_last in settings:
        network = meta_component(args.bundle, "network_def")
        xi = x
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
            xi = x.contiguous(memory_format=torch.channels_last)
        figures[name] = round(time_steps(network, xi, args.steps, bf16), 4)
        print(f"{name}: {figures[name]:.3f} s per step", flush=True)
    figures["bf16_speedup"] = round(figures["float32"] / figures["bfloat16"], 2)
    print(json.dumps(figures))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
