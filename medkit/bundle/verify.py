"""Offline checks of a bundle: metadata, training stages, the ids the commands need, workflow properties, network
shapes and weights."""

from __future__ import annotations

import json
import os
import tempfile

from medkit.bundle.archive import check_manifest
from medkit.errors import MedkitError

__all__ = ["MAX_MODEL_BYTES", "verify_bundle"]


MAX_MODEL_BYTES = 25 * 1024 * 1024


def verify_bundle(bundle_dir: str) -> list[tuple[str, bool, str]]:
    """Check a bundle: metadata against medkit's offline schema, workflow properties, network I/O, weights.

    Returns:
        ``(check, passed, detail)`` for each check; nothing is raised for a failed check.
    """
    import torch
    from monai.bundle import ConfigWorkflow, verify_metadata

    from medkit.bundle import SCHEMA_PATH, WORKFLOW_FILES, WORKFLOW_TYPES, load_metadata, train_stages
    from medkit.bundle.properties import missing_ids
    from medkit.data.synthetic import SYNTHETIC

    results: list[tuple[str, bool, str]] = []
    meta_file = os.path.join(bundle_dir, "configs", "metadata.json")
    meta = load_metadata(bundle_dir)
    source = meta.get("medkit", {}).get("data", {}).get("source", "")
    try:
        stages = train_stages(bundle_dir)
        results.append(("training stages", True, "; ".join(" + ".join(stage) for stage in stages)))
    except MedkitError as e:
        results.append(("training stages", False, str(e)))
    scratch = tempfile.TemporaryDirectory(prefix="medkit-verify-")
    # check_properties instantiates the workflows, so they get a tiny synthetic data set and a scratch output
    overrides = {"ckpt_dir": scratch.name, "output_dir": scratch.name, "output_file": f"{scratch.name}/p.csv"}
    if source in SYNTHETIC:
        overrides["dataset_dir"] = SYNTHETIC[source](os.path.join(scratch.name, "data"))
    try:
        verify_metadata(meta_file=meta_file, filepath=SCHEMA_PATH)
        results.append(("metadata", True, "matches the schema"))
    except Exception as e:
        results.append(("metadata", False, str(e).splitlines()[0]))
    for workflow, filename in WORKFLOW_FILES.items():
        config_file = os.path.join(bundle_dir, "configs", filename)
        if not os.path.isfile(config_file):
            results.append((f"{workflow} properties", False, f"{config_file} is missing"))
            continue
        with open(config_file) as f:
            missing_cli = missing_ids(json.load(f), filename, meta)
        results.append(
            (f"{workflow} medkit ids", not missing_cli, f"missing: {missing_cli}" if missing_cli else "complete")
        )
        try:
            wf = ConfigWorkflow(
                config_file=config_file,
                workflow_type=WORKFLOW_TYPES[workflow],
                logging_file=False,
                **{"bundle_root": bundle_dir, **overrides},
            )
            wf.initialize()
            missing = wf.check_properties()
            results.append((f"{workflow} properties", not missing, f"missing: {missing}" if missing else "complete"))
        except Exception as e:
            results.append((f"{workflow} properties", False, str(e).splitlines()[0]))
    try:
        wf = ConfigWorkflow(
            config_file=os.path.join(bundle_dir, "configs", WORKFLOW_FILES["infer"]),
            workflow_type="infer",
            logging_file=False,
            bundle_root=bundle_dir,
        )
        net = wf.parser.get_parsed_content("network_def")
        fmt = load_metadata(bundle_dir)["network_data_format"]
        image, pred = fmt["inputs"]["image"], fmt["outputs"]["pred"]
        x = torch.zeros(2, image["num_channels"], *[int(s) for s in image["spatial_shape"]])
        with torch.no_grad():
            y = net.eval()(x)
        expected = (2, pred["num_channels"])
        ok = tuple(y.shape[:2]) == expected
        results.append(("network shapes", ok, f"input {tuple(x.shape)} -> output {tuple(y.shape)}"))
        results.append(_check_channel_def(pred, int(y.shape[1])))
        model_file = os.path.join(bundle_dir, "models", "model.pt")
        if os.path.isfile(model_file):
            size = os.path.getsize(model_file)
            state = torch.load(model_file, map_location="cpu", weights_only=True)
            net.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
            ok = size <= MAX_MODEL_BYTES
            results.append(("weights", ok, f"models/model.pt loads, {size / 2**20:.1f} MB (limit 25 MB)"))
        else:
            results.append(("weights", True, "no models/model.pt shipped"))
    except Exception as e:
        results.append(("network shapes", False, str(e).splitlines()[0]))
    try:
        results.extend(_check_engines(bundle_dir, overrides.get("dataset_dir")))
    finally:
        scratch.cleanup()
    results.append(("manifest", *check_manifest(bundle_dir)))
    return results


def _check_channel_def(pred: dict, n_out: int) -> tuple[str, bool, str]:
    """The label map (``channel_def``) against the network's output channels: one name per channel, or for a
    one-channel (sigmoid) segmenter a background and one label."""
    names = pred.get("channel_def") or {}
    sigmoid = pred.get("type") == "image" and n_out == 1
    expected = 2 if sigmoid else n_out
    ok = len(names) == expected and sorted(names) == [str(i) for i in range(expected)]
    what = "background + 1 label (one sigmoid channel)" if sigmoid else f"{n_out} output channels"
    return "channel_def", ok, f"{len(names)} names {list(names.values())} for {what}"


def _check_engines(bundle_dir: str, data_dir: str | None) -> list[tuple[str, bool, str]]:
    """Each exported network in ``models/`` (``model.ts``, ``model.onnx``) against ``models/model.pt``: made from it
    and agreeing within ``medkit.engines.export.TOLERANCE`` on inputs of the bundle's own format."""
    from medkit.engines import ENGINE_FILES
    from medkit.engines.export import TOLERANCE, engine_agreement, sample_inputs

    present = [e for e, f in ENGINE_FILES.items() if os.path.isfile(os.path.join(bundle_dir, "models", f))]
    if not present:
        return [("exported engines", True, "none in models/ (medkit export --format torchscript|onnx)")]
    if not os.path.isfile(os.path.join(bundle_dir, "models", "model.pt")):
        return [("exported engines", True, f"{present} shipped without models/model.pt to compare with")]
    out = []
    try:
        batch = sample_inputs(bundle_dir, inputs=[data_dir] if data_dir else None)
    except MedkitError as e:
        return [("exported engines", False, str(e))]
    for engine in present:
        try:
            diff = engine_agreement(bundle_dir, [engine], batch)[engine]
            detail = f"max |probability difference| {diff:.1e} on {len(batch)} inputs (tolerance {TOLERANCE:g})"
            out.append((f"{engine} engine", diff <= TOLERANCE, detail))
        except MedkitError as e:
            out.append((f"{engine} engine", False, str(e)))
    return out
