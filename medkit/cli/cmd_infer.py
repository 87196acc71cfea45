"""``medkit infer BUNDLE INPUT... --out DIR``: one row per input; bad inputs reported, the rest processed.

Every bundle writes its table to ``DIR/predictions.csv``; segmentation bundles also write masks, overlays and
per-patient NIfTI volumes into DIR, running the two-stage pipeline when they name a classifier.
"""

from __future__ import annotations

import os
import sys

import click

from medkit.cli.common import (
    attach_progress,
    bundle_argument,
    classifier_options,
    out_option,
    override_option,
    parse_overrides,
    ray_option,
    threshold_option,
    threshold_settings,
    two_stage_settings,
)


def _is_segmentation(bundle: str) -> bool:
    from medkit.bundle import task_type

    return task_type(bundle) == "segmentation"


def _output_settings(out_dir: str) -> dict:
    """Config overrides that put a bundle's inference outputs in ``out_dir``: the table ``predictions.csv`` and, for
    segmentation bundles, the masks, overlays and volumes (every inference config writes under ``output_dir``)."""
    return {"output_dir": os.path.abspath(out_dir)}


def run_inference(
    bundle: str,
    inputs: tuple[str, ...],
    out_dir: str,
    checkpoint: str | None = None,
    threshold: float | None = None,
    batch_size: int | None = None,
    overrides: tuple[str, ...] = (),
    explain_dir: str | None = None,
    extra: dict | None = None,
    ray_address: str | None = None,
    ray_workers: int | None = None,
) -> None:
    """Run the bundle's inference workflow into ``out_dir`` (``predictions.csv`` there), print failures, exit 1
    if any input failed.

    With ``explain_dir``, a Grad-CAM overlay of the predicted class is saved there for every input.
    ``extra`` holds further config overrides (the two-stage settings, pixel spacing). With ``ray_address`` the
    inputs are spread over a Ray cluster (``medkit.workflows.ray_inference``; ``"local"``: this machine).
    """
    from medkit.bundle import create_workflow
    from medkit.errors import MedkitError
    from medkit.handlers import GradCAMSaver

    settings: dict = {"inputs": list(inputs), **_output_settings(out_dir), **(extra or {})}
    if checkpoint:
        settings["ckpt_path"] = os.path.abspath(checkpoint)
    settings.update(threshold_settings(threshold))
    if batch_size:
        settings["batch_size"] = batch_size
    settings.update(parse_overrides(overrides))
    if ray_address:
        from medkit.workflows.ray_inference import infer_on_ray

        if explain_dir:
            raise click.UsageError("--explain runs without --ray")
        _report(infer_on_ray(bundle, inputs, out_dir, settings, ray_address, ray_workers), None)
        return
    wf = create_workflow(bundle, "infer", settings)
    if not len(wf.parser.get_parsed_content("dataset")):
        more = f" and {len(inputs) - 3} more" if len(inputs) > 3 else ""
        shown = ", ".join(os.fspath(i) for i in inputs[:3]) + more
        raise MedkitError(f"{shown}: no image files found (nothing written)")
    evaluator = wf.parser.get_parsed_content("evaluator")
    attach_progress(evaluator, "infer")
    if explain_dir:
        meta = wf.parser.get_parsed_content("meta").get("medkit", {})
        if not meta.get("gradcam_layer"):
            raise MedkitError(f"{bundle}: metadata.json names no medkit.gradcam_layer, so it cannot explain")
        saver = GradCAMSaver(
            wf.parser.get_parsed_content("network"),
            meta["gradcam_layer"],
            explain_dir,
            wf.parser.get_parsed_content("class_names"),
            display_channel=meta.get("display_channel") or 0,
        )
        saver.attach(evaluator)
    evaluator.run()  # not wf.run(): its last step ends the process on failed inputs, reported here instead
    _report(wf.parser.get_parsed_content("writer"), explain_dir)


def _report(writer, explain_dir: str | None) -> None:
    """Print the failed inputs and the summary line; exit 1 if any input failed."""
    from medkit.handlers.report_writer import report_failures

    n_rows, n_failed = len(writer.rows), report_failures(writer)
    where = writer.output_file if not hasattr(writer, "output_dir") else f"{writer.output_dir} ({writer.output_file})"
    click.echo(f"{n_rows - n_failed} of {n_rows} inputs predicted -> {where}")
    if explain_dir:
        click.echo(f"Grad-CAM overlays -> {explain_dir}")
    if n_failed:
        click.echo(f"Error: {n_failed} input(s) could not be read", err=True)
        sys.exit(1)


@click.command("infer")
@bundle_argument
@click.argument("inputs", nargs=-1, required=True)
@out_option("Folder for predictions.csv (and a segmentation bundle's masks and overlays).", default="medkit-infer")
@click.option("--checkpoint", default=None, help="Weights to use (default: the bundle's models/model.pt).")
@threshold_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per batch.")
@click.option("--explain", "explain_dir", default=None, help="Also save Grad-CAM overlays in this folder.")
@click.option(
    "--pixel-spacing",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Pixel size in mm (areas in mm^2).",
)
@click.option("--no-overlays", is_flag=True, help="Segmentation: do not write overlay PNGs.")
@click.option(
    "--engine",
    type=click.Choice(["torch", "torchscript", "onnx"]),
    default=None,
    help="What runs the network: torch (the checkpoint), torchscript or onnx (models/model.ts or model.onnx, "
    "from medkit export); default: the bundle's inference config (engine).",
)
@ray_option("Spread the inputs over a Ray cluster", "ray")
@click.option(
    "--ray-workers", type=click.IntRange(min=1), default=None, help="Ray tasks [default: the cluster's CPUs]."
)
@classifier_options
@override_option
def command(
    bundle: str,
    inputs: tuple[str, ...],
    out_dir: str,
    checkpoint,
    threshold,
    batch_size,
    explain_dir,
    pixel_spacing,
    no_overlays,
    engine,
    ray_address,
    ray_workers,
    classifier,
    no_classifier,
    overrides,
) -> None:
    """Run BUNDLE on INPUT files, folders or globs of images.

    Classification bundles write one row per image to OUT/predictions.csv. Segmentation bundles write into OUT,
    per slice, a mask PNG, an overlay and a row with the tumour area (and the classifier's probability in the
    two-stage pipeline); a folder input also gets one NIfTI mask volume per patient folder. Exits with status 1
    when any input could not be read; its row carries the reason.
    """
    extra = two_stage_settings(bundle, classifier, no_classifier)
    if (pixel_spacing is not None or no_overlays) and not _is_segmentation(bundle):
        raise click.UsageError("--pixel-spacing and --no-overlays apply to segmentation bundles only")
    if pixel_spacing is not None:
        extra["pixel_spacing"] = pixel_spacing
    if no_overlays:
        extra["overlays"] = False
    if engine:
        if explain_dir and engine != "torch":
            raise click.UsageError("--explain needs the torch engine (Grad-CAM reads the network's gradients)")
        extra["engine"] = engine
    run_inference(
        bundle,
        inputs,
        out_dir,
        checkpoint,
        threshold,
        batch_size,
        overrides,
        explain_dir,
        extra,
        ray_address,
        ray_workers,
    )
