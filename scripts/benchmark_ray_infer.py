"""Images per second of ``medkit infer --ray`` on a local Ray instance with 1 and 2 workers, against a local run.

Takes the first N images of a folder (as ``medkit infer`` expands it), runs the bundle's inference locally (in this
process, on as many threads as one Ray worker gets) and through ``medkit.workflows.ray_inference.infer_on_ray``
with each worker count on a Ray instance of ``--cpus`` CPUs started once (its start-up is not counted; each call's
task start and model load are). Checks that every table equals the local one. Prints and writes JSON.

Usage:
  python scripts/benchmark_ray_infer.py bundles/pneumonia DATA/chest_xray/test --limit 200 --workers 1 2 \
      --out bench_ray.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _images(folder: str, limit: int) -> list[str]:
    from medkit.data.inference import inference_datalist

    return [item["image"] for item in inference_datalist([folder], skip_masks=True)][:limit]


def _local(bundle: str, images: list[str], out: str, batch_size: int, threads: int) -> float:
    import torch

    from medkit.bundle import create_workflow

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        wf = create_workflow(bundle, "infer", {"inputs": images, "output_dir": out, "batch_size": batch_size})
        wf.parser.get_parsed_content("evaluator").run()
        wf.parser.get_parsed_content("writer").write()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("folder", help="a folder of images the bundle takes")
    parser.add_argument("--limit", type=int, default=200, help="images to use")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)

    import ray

    from medkit.bundle import resolve_bundle
    from medkit.workflows.ray_inference import infer_on_ray

    bundle = resolve_bundle(args.bundle)
    images = _images(args.folder, args.limit)
    if not images:
        parser.error(f"{args.folder}: no images")
    result: dict = {"bundle": args.bundle, "images": len(images), "batch_size": args.batch_size, "cpus": args.cpus}
    with tempfile.TemporaryDirectory() as tmp:
        local_dir = os.path.join(tmp, "local")
        seconds = _local(bundle, images, local_dir, args.batch_size, threads=1)
        result["local_1_thread"] = {"seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 2)}
        print(f"local, 1 thread: {len(images) / seconds:.1f} images/s ({seconds:.1f} s)")
        expected = open(os.path.join(local_dir, "predictions.csv")).read()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for n in args.workers:
                out = os.path.join(tmp, f"ray{n}")
                start = time.perf_counter()
                infer_on_ray(bundle, images, out, {"batch_size": args.batch_size}, workers=n)
                seconds = time.perf_counter() - start
                same = open(os.path.join(out, "predictions.csv")).read() == expected
                result[f"ray_{n}_workers"] = {
                    "seconds": round(seconds, 2),
                    "images_per_s": round(len(images) / seconds, 2),
                    "table_equals_local": same,
                }
                print(f"ray, {n} worker(s): {len(images) / seconds:.1f} images/s ({seconds:.1f} s), same table: {same}")
        finally:
            ray.shutdown()
    if args.out:
        from medkit.io.atomic import write_json_atomic

        write_json_atomic(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
