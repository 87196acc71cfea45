"""Batch inference spread over a Ray cluster (``medkit infer ... --ray [ADDRESS]``; the optional ``ray`` extra).

The inputs are expanded as a local run expands them and dealt, in order, into one contiguous share per worker, in
whole batches of the local run (a network's arithmetic differs in the last digits with the batch it runs in); each
worker is a Ray task that builds the bundle's own inference workflow once (the model loaded once) and returns its
rows; the rows, put back in input order, are written by the bundle's own writer on the driver, so
``predictions.csv`` is the local run's. Inputs that cannot be read get their error row in the worker, as today.

Bundles whose rows depend on other inputs (a slice decided on its neighbours, masks stacked into patient volumes,
a patient's series averaged) are refused for now: their inputs would have to be dealt by patient.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from medkit.errors import MedkitError

__all__ = ["import_ray", "shares", "infer_on_ray", "RAY_PIN"]

#: the Ray release the extra pins (setup.cfg ``ray``)
RAY_PIN = "ray==2.60.0"


def import_ray():
    """The ``ray`` module.

    Raises:
        MedkitError: Ray is not installed (one line naming the extra).
    """
    try:
        import ray
    except ImportError:
        raise MedkitError(
            f"--ray needs Ray, which is not installed: pip install 'medkit[ray]' (or {RAY_PIN})"
        ) from None
    return ray


def shares(items: Sequence[Any], n: int, batch_size: int = 1) -> list[list[Any]]:
    """``items`` dealt into at most ``n`` contiguous, non-empty shares of whole batches (``batch_size`` items, the
    last one short), the numbers of batches differing by at most one."""
    batches = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    n = max(1, min(n, len(batches)))
    size, extra = divmod(len(batches), n)
    out, start = [], 0
    for k in range(n):
        end = start + size + (k < extra)
        out.append([item for batch in batches[start:end] for item in batch])
        start = end
    return [s for s in out if s]


def _run_share(bundle: str, settings: Mapping[str, Any], paths: list[str], threads: int) -> list[dict]:
    """One worker: the bundle's inference workflow on ``paths`` (outputs in a scratch folder) on ``threads`` CPU
    threads, its rows."""
    import torch

    from medkit.bundle import create_workflow

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="medkit-ray-") as scratch:
        wf = create_workflow(bundle, "infer", {**settings, "inputs": paths, "output_dir": scratch})
        wf.parser.get_parsed_content("evaluator").run()
        return list(wf.parser.get_parsed_content("writer").rows)


def _check_supported(bundle: str, writer: Any) -> None:
    from medkit.handlers import PredictionWriter

    if type(writer) is not PredictionWriter or writer.smooths:
        raise MedkitError(
            f"{bundle}: --ray runs bundles whose rows are independent per image (the X-ray classifiers); this one "
            "decides an input with others (slice neighbourhoods, patient volumes or series), so run it without --ray"
        )


def infer_on_ray(
    bundle: str,
    inputs: Sequence[str],
    out_dir: str,
    settings: Mapping[str, Any] | None = None,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
):
    """Run the bundle's inference on a Ray cluster and write ``<out_dir>/predictions.csv`` with its own writer.

    Args:
        bundle: the bundle folder (every node must see it and the inputs at the same paths, a shared file system).
        inputs: files, folders or globs, as ``medkit infer`` takes them.
        out_dir: where the table goes (on the driver).
        settings: further inference config overrides (checkpoint, threshold, batch size...).
        address: the cluster (``ray://host:10001``, ``host:6379`` or ``auto``); ``None`` or ``"local"``: a Ray
            instance of this machine.
        workers: how many shares (Ray tasks); default: the cluster's CPUs divided by ``cpus_per_worker``.
        cpus_per_worker: CPUs Ray reserves for each task; it runs the network on as many threads. The rows equal a
            local run's on the same number of threads to the last digit (measured); on another number of threads a
            probability may differ in its sixth decimal (the CPU kernels split their sums by thread).

    Returns:
        the writer, holding the rows (``rows``; ``n_failed``).

    Raises:
        MedkitError: Ray missing, a bundle Ray cannot split, no image among the inputs.
    """
    from medkit.bundle import create_workflow

    ray = import_ray()
    settings = dict(settings or {})
    local = create_workflow(bundle, "infer", {**settings, "inputs": list(inputs), "output_dir": out_dir})
    writer = local.parser.get_parsed_content("writer")
    _check_supported(bundle, writer)
    items = local.parser.get_parsed_content("dataset").data
    if not items:
        raise MedkitError(f"{', '.join(map(str, inputs[:3]))}: no image files found (nothing written)")
    paths = [item["image"] for item in items]
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=None if address in (None, "local") else address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        task = ray.remote(num_cpus=cpus_per_worker)(_run_share)
        batch = int(local.parser.get_parsed_content("batch_size"))
        threads = max(1, int(cpus_per_worker))
        parts = ray.get([task.remote(os.path.abspath(bundle), settings, s, threads) for s in shares(paths, n, batch)])
    finally:
        if started:
            ray.shutdown()
    writer.rows[:] = [row for part in parts for row in part]
    writer.write()
    return writer
