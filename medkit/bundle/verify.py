"""Offline checks of a bundle: metadata, training stages, the ids the commands need, workflow properties, network
shapes and weights."""

from __future__ import annotations

import json
import os
import tempfile

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
    finally:
        scratch.cleanup()
    return results
