"""The two-stage segmentation pipeline of a bundle: its inferer behind a classification bundle's gate."""

from __future__ import annotations

import os
from typing import Any

from medkit.errors import MedkitError

__all__ = ["classifier_gate", "two_stage_inferer"]


def two_stage_inferer(
    inferer: Any,
    flip_tta: bool = False,
    classifier_bundle: str | None = None,
    bundle_root: str | None = None,
    device: Any = "cpu",
    threshold: float | None = None,
    stack_threshold: float | None = None,
    slice_window: int | None = None,
    engine: str = "torch",
):
    """The segmentation inferer every entry point runs: ``inferer`` (a sliding window), with flip test-time
    augmentation when ``flip_tta``, behind the gate of ``classifier_bundle`` (``classifier_gate``) when one is named.
    The gate runs in ``engine``, as the segmenter does.

    Returns:
        a ``medkit.inferers.GatedInferer`` (with no gate when ``classifier_bundle`` is empty).
    """
    from medkit.inferers import FlipTTAInferer, GatedInferer

    segment = FlipTTAInferer(inferer) if flip_tta else inferer
    gate = classifier_gate(
        classifier_bundle,
        device=device,
        threshold=threshold,
        beside=bundle_root,
        stack_threshold=stack_threshold,
        slice_window=slice_window,
        engine=engine,
    )
    return GatedInferer(segment, **gate)


def classifier_gate(
    bundle: str | None,
    device: Any = "cpu",
    threshold: float | None = None,
    beside: str | None = None,
    stack_threshold: float | None = None,
    slice_window: int | None = None,
    engine: str = "torch",
) -> dict:
    """The first stage of a two-stage pipeline: a classification bundle's trained network and decision threshold.

    Returns ``{}`` when ``bundle`` is empty (no gating), else the keyword arguments of
    ``medkit.inferers.GatedInferer``: ``gate`` (the network with ``models/model.pt`` loaded, in eval mode),
    ``threshold`` (``threshold`` if given, else the bundle's ``medkit.threshold``, else 0.5), ``gate_size``
    (the network's input size), ``positive_index`` (its last output channel), and ``slice_window`` and
    ``stack_threshold`` (the arguments if given, else the bundle's ``medkit.slice_window`` and
    ``medkit.stack_threshold``: slices of a stack are gated on the mean probability of that many neighbouring
    slices against that threshold).

    A bundle name is looked up first beside the bundle ``beside`` (the asking bundle's root, so copied pairs of
    bundles keep working), then as in ``resolve_bundle``.

    Raises:
        MedkitError: not a classification bundle, or it has no trained weights.
    """
    if not bundle:
        return {}
    from medkit.bundle import config_bundle_root, load_metadata, meta_component, resolve_bundle
    from medkit.engines import load_network
    from medkit.networks.weights import load_pretrained

    name = os.fspath(bundle)
    sibling = os.path.join(os.path.dirname(os.path.abspath(beside or config_bundle_root())), name)
    bundle_dir = resolve_bundle(sibling if os.path.isfile(os.path.join(sibling, "configs", "metadata.json")) else name)
    meta = load_metadata(bundle_dir)
    if meta.get("medkit", {}).get("task_type") != "classification":
        raise MedkitError(f"{bundle_dir}: not a classification bundle (metadata medkit.task_type)")
    model_file = os.path.join(bundle_dir, "models", "model.pt")
    if not os.path.isfile(model_file):
        raise MedkitError(f"{model_file}: the classifier bundle has no trained weights")
    if engine == "torch":
        network = load_pretrained(meta_component(bundle_dir, "network_def"), model_file, strict=True)
    else:
        network = load_network(engine, None, model_file, device)
    fmt = meta["network_data_format"]
    chosen = meta["medkit"].get("threshold", 0.5) if threshold is None else threshold
    stack = meta["medkit"].get("stack_threshold") if stack_threshold is None else stack_threshold
    return {
        "gate": network.to(device).eval(),
        "threshold": float(chosen),
        "gate_size": [int(s) for s in fmt["inputs"]["image"]["spatial_shape"]],
        "positive_index": int(fmt["outputs"]["pred"]["num_channels"]) - 1,
        "slice_window": int(meta["medkit"].get("slice_window", 1) if slice_window is None else slice_window),
        "stack_threshold": None if stack is None else float(stack),
    }
