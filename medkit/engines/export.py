"""Exporting a bundle's trained network to TorchScript and ONNX through MONAI's exporters, and measuring how closely
an exported engine agrees with the checkpoint."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from medkit.engines import ENGINE_FILES, SOURCE_KEY, check_engine, load_exported, require
from medkit.errors import MedkitError

__all__ = ["TOLERANCE", "export_engine", "sample_inputs", "probabilities", "engine_agreement"]

logger = logging.getLogger(__name__)

#: the largest absolute difference of output probabilities an exported engine may show against the checkpoint
TOLERANCE = 1e-4


def _dynamic_axes(meta: Mapping[str, Any]) -> dict[str, dict[int, str]]:
    """Batch axis dynamic everywhere; the spatial axes too for segmenters (a sliding window or a whole image)."""
    fmt = meta["network_data_format"]
    n_spatial = len(fmt["inputs"]["image"]["spatial_shape"])
    axes = {0: "batch"}
    if fmt["outputs"]["pred"].get("type") == "image":
        axes.update({2 + i: f"spatial{i}" for i in range(n_spatial)})
    return {"image": dict(axes), "pred": dict(axes)}


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Keep a logger to warnings for a while (MONAI's exporters log their arguments to stdout, which holds a
    command's results)."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def export_engine(bundle_dir: str, engine: str, out_dir: str | None = None, checkpoint: str | None = None) -> str:
    """Write the bundle's network with ``checkpoint``'s weights (default ``models/model.pt``) as
    ``out_dir/model.ts`` (MONAI's ``ckpt_export``: traced, with ``metadata.json`` and ``inference.json`` stored
    inside, as the model zoo and MONAI Label read them) or ``out_dir/model.onnx`` (MONAI's ``onnx_export`` with the
    TorchScript-based exporter: inputs ``image``, outputs ``pred``, a dynamic batch axis and, for segmenters, dynamic
    spatial axes; the metadata, inference config and source checksum in its ``metadata_props``; checked with
    ``onnx.checker``). ``out_dir`` defaults to the checkpoint's folder, where the engines look for it.

    Returns:
        the path written (atomically).

    Raises:
        MedkitError: not an exported engine, no checkpoint, the engine's package missing.
    """
    from monai.bundle import ckpt_export, onnx_export

    from medkit.bundle import load_metadata
    from medkit.io.atomic import atomic_path
    from medkit.networks.weights import sha256_of

    if check_engine(engine) not in ENGINE_FILES:
        raise MedkitError(f"'{engine}' is not an exported engine, expected one of {sorted(ENGINE_FILES)}")
    ckpt = os.path.abspath(checkpoint or os.path.join(bundle_dir, "models", "model.pt"))
    if not os.path.isfile(ckpt):
        raise MedkitError(f"{ckpt}: no trained weights to export")
    meta_file = os.path.join(bundle_dir, "configs", "metadata.json")
    config_file = os.path.join(bundle_dir, "configs", "inference.json")
    meta = load_metadata(bundle_dir)
    image = meta["network_data_format"]["inputs"]["image"]
    shape = [1, int(image["num_channels"]), *(int(s) for s in image["spatial_shape"])]
    source = sha256_of(ckpt)
    out = os.path.join(out_dir or os.path.dirname(ckpt), ENGINE_FILES[engine])
    common = {
        "net_id": "network_def",
        "ckpt_file": ckpt,
        "meta_file": meta_file,
        "config_file": config_file,
        "use_trace": True,
        "input_shape": shape,
        "bundle_root": bundle_dir,
    }
    with atomic_path(out) as tmp, _quiet("monai.bundle.scripts"):
        if engine == "torchscript":
            # no check_trace: it reruns the graph under TorchScript's profiling executor (20 s here);
            # engine_agreement checks the exported network instead
            converter = {"check_trace": False}
            ckpt_export(filepath=tmp, converter_kwargs=converter, **common, **{f"_meta_#{SOURCE_KEY}": source})
        else:
            onnx = require("onnx")
            converter = {
                "input_names": ["image"],
                "output_names": ["pred"],
                "dynamic_axes": _dynamic_axes(meta),
                "dynamo": False,
            }
            onnx_export(filepath=tmp, converter_kwargs=converter, **common)
            model = onnx.load(tmp)
            with open(config_file) as f:
                props = {"metadata.json": json.dumps(meta), "inference.json": f.read(), SOURCE_KEY: source}
            for key, value in props.items():
                entry = model.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.checker.check_model(model, full_check=True)
            onnx.save(model, tmp)
    return os.path.abspath(out)


def sample_inputs(bundle_dir: str, n: int = 4, inputs: Sequence[str] | None = None):
    """``n`` network inputs in the bundle's real input format: image files (``inputs``, else the bundle's synthetic
    look-alike data set written to a scratch folder: JPEG X-rays, PNGs, 3-channel TIFF slices, DICOM CT series) read
    and preprocessed by its own inference pipeline, stacked into one batch.

    Raises:
        MedkitError: none of the inputs could be read.
    """
    import torch

    from medkit.bundle import create_workflow, load_metadata
    from medkit.data.synthetic import SYNTHETIC

    with tempfile.TemporaryDirectory(prefix="medkit-sample-") as scratch:
        if not inputs:
            source = load_metadata(bundle_dir).get("medkit", {}).get("data", {}).get("source", "")
            if source not in SYNTHETIC:
                raise MedkitError(f"{bundle_dir}: no synthetic data for source '{source}'; give inputs")
            inputs = [SYNTHETIC[source](os.path.join(scratch, "data"))]
        wf = create_workflow(bundle_dir, "infer", {"inputs": list(inputs), "output_dir": scratch}, ignore_unknown=True)
        dataset = wf.parser.get_parsed_content("dataset")
        items = []
        for i in range(len(dataset)):
            item = dataset[i]
            if not item.get("error"):
                items.append(torch.as_tensor(item["image"]).float())
            if len(items) == n:
                break
    if not items:
        raise MedkitError(f"{bundle_dir}: none of the sample inputs could be read")
    return torch.stack(items)


def probabilities(meta: Mapping[str, Any], logits):
    """The network's outputs as probabilities: a softmax per head for multi-head networks (``network_def.heads``),
    a sigmoid for one output channel, else a softmax over the channels."""
    import torch

    heads = meta.get("medkit", {}).get("network_def", {}).get("heads")
    if isinstance(heads, Mapping):
        parts = torch.split(logits, [int(k) for k in heads.values()], dim=1)
        return torch.cat([p.softmax(dim=1) for p in parts], dim=1)
    return logits.sigmoid() if logits.shape[1] == 1 else logits.softmax(dim=1)


def engine_agreement(bundle_dir: str, engines: Sequence[str], batch, engine_dir: str | None = None) -> dict:
    """The largest absolute difference of output probabilities between the checkpoint (``models/model.pt``) run by
    PyTorch and each of ``engines`` (their files in ``engine_dir``, default ``models/``) on ``batch``
    (``sample_inputs``).

    Returns:
        ``{engine: max_abs_difference}``.

    Raises:
        MedkitError: an engine's file is missing or stale, its package missing.
    """
    import torch

    from medkit.bundle import load_metadata, meta_component
    from medkit.networks.weights import load_pretrained

    meta = load_metadata(bundle_dir)
    ckpt = os.path.join(bundle_dir, "models", "model.pt")
    reference = load_pretrained(meta_component(bundle_dir, "network_def"), ckpt, strict=True).eval()
    with torch.no_grad():
        expected = probabilities(meta, reference(batch))
        out = {}
        for engine in engines:
            net = load_exported(os.path.join(engine_dir or os.path.dirname(ckpt), ENGINE_FILES[engine]), ckpt)
            out[engine] = float((probabilities(meta, net(batch)) - expected).abs().max())
    return out
