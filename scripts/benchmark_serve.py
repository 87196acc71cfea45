"""Load test of ``medkit serve``: a bounded burst of uploads over 127.0.0.1, every answer checked.

Sends ``--requests`` POST /api/predict/<bundle> uploads of one image, ``--concurrency`` at a time, to a running
server (``--url``) or to one it starts (``--start``: ``medkit serve BUNDLE --port <free port>``), and checks each
answer against the first one (status 200, same label and probabilities). Prints and writes (``--out``) requests per
second and the 50th/99th percentile latency; exits 1 when any answer was wrong or missing.

Example::

    .venv/bin/python scripts/benchmark_serve.py --start --bundle pneumonia --image chest.jpeg --requests 200 \\
        --concurrency 16 --out serve_load.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from medkit.serve.client import free_port, post_file, running_server


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = min(max(1, math.ceil(q / 100 * len(ordered))), len(ordered))
    return ordered[rank - 1]


def burst(url: str, name: str, data: bytes, requests: int, concurrency: int) -> dict:
    """Send ``requests`` uploads, ``concurrency`` at a time; check each answer against a first one sent alone.

    Returns:
        ``{"requests", "concurrency", "ok", "wrong", "seconds", "requests_per_s", "p50_ms", "p99_ms", "label"}``.
    """
    status, reference = post_file(url, name, data)
    if status != 200:
        raise RuntimeError(f"{url}: the first answer is {status}: {reference.get('error', reference)}")
    expected = [(i["label"], i["probabilities"]) for i in reference["items"]]

    def one(_: int) -> tuple[float, bool]:
        start = time.perf_counter()
        code, answer = post_file(url, name, data)
        took = time.perf_counter() - start
        good = code == 200 and [(i["label"], i["probabilities"]) for i in answer.get("items", [])] == expected
        return took, good

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - start
    latencies = [t for t, _ in results]
    ok = sum(1 for _, good in results if good)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "ok": ok,
        "wrong": requests - ok,
        "seconds": round(seconds, 2),
        "requests_per_s": round(requests / seconds, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "label": expected[0][0] if expected else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="bundle to send the uploads to")
    parser.add_argument("--image", required=True, help="the file every request uploads")
    parser.add_argument("--url", default=None, help="a running server (default: start one, see --start)")
    parser.add_argument("--start", action="store_true", help="start medkit serve BUNDLE on a free loopback port")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not args.url and not args.start:
        parser.error("give --url of a running server or --start")
    with open(args.image, "rb") as f:
        data = f.read()
    with contextlib.ExitStack() as stack:
        base = args.url or stack.enter_context(running_server([args.bundle], free_port()))
        figures = burst(
            f"{base}/api/predict/{args.bundle}", os.path.basename(args.image), data, args.requests, args.concurrency
        )
    figures.update(bundle=args.bundle, image=os.path.basename(args.image), cpus=os.cpu_count())
    print(json.dumps(figures, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)
    return 0 if figures["wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
