"""``medkit infer BUNDLE INPUT... --out FILE``: one row per input; bad inputs reported, the rest processed."""

from __future__ import annotations

import os
import sys

import click

from medkit.cli.common import attach_progress, bundle_argument, override_option, parse_overrides


def run_inference(
    bundle: str,
    inputs: tuple[str, ...],
    out_file: str,
    checkpoint: str | None = None,
    threshold: float | None = None,
    batch_size: int | None = None,
    overrides: tuple[str, ...] = (),
    explain_dir: str | None = None,
) -> None:
    """Run the bundle's inference workflow, print failures, exit 1 if any input failed.

    With ``explain_dir``, a Grad-CAM overlay of the predicted class is saved there for every input.
    """
    from medkit.bundle import create_workflow
    from medkit.errors import MedkitError
    from medkit.handlers import GradCAMSaver

    if not out_file.lower().endswith((".csv", ".json")):
        raise click.BadParameter(f"{out_file}: must end in .csv or .json", param_hint="--out")
    settings: dict = {"inputs": list(inputs), "output_file": os.path.abspath(out_file)}
    if checkpoint:
        settings["ckpt_path"] = os.path.abspath(checkpoint)
    if threshold is not None:
        settings["threshold"] = threshold
    if batch_size:
        settings["batch_size"] = batch_size
    settings.update(parse_overrides(overrides))
    wf = create_workflow(bundle, "infer", settings)
    evaluator = wf.parser.get_parsed_content("evaluator")
    attach_progress(evaluator, "infer")
    if explain_dir:
        layer = wf.parser.get("_meta_", {}).get("medkit", {}).get("gradcam_layer")
        if not layer:
            raise MedkitError(f"{bundle}: metadata.json names no medkit.gradcam_layer, so it cannot explain")
        saver = GradCAMSaver(
            wf.parser.get_parsed_content("network"), layer, explain_dir, wf.parser.get_parsed_content("class_names")
        )
        saver.attach(evaluator)
    wf.run()
    writer = wf.parser.get_parsed_content("writer")
    n_rows, n_failed = len(writer.rows), writer.n_failed
    for row in writer.rows:
        if row["error"]:
            click.echo(f"failed: {row['error']}", err=True)
    click.echo(f"{n_rows - n_failed} of {n_rows} inputs predicted -> {writer.output_file}")
    if explain_dir:
        click.echo(f"Grad-CAM overlays -> {explain_dir}")
    if n_failed or not n_rows:
        click.echo(f"Error: {n_failed} input(s) could not be read" if n_rows else "Error: no inputs found", err=True)
        sys.exit(1)


@click.command("infer")
@bundle_argument
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_file", default="predictions.csv", show_default=True, help="Output .csv or .json file.")
@click.option("--checkpoint", default=None, help="Weights to use (default: the bundle's models/model.pt).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help="Decision threshold (two classes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per batch.")
@click.option("--explain", "explain_dir", default=None, help="Also save Grad-CAM overlays in this folder.")
@override_option
def command(
    bundle: str, inputs: tuple[str, ...], out_file: str, checkpoint, threshold, batch_size, explain_dir, overrides
) -> None:
    """Classify INPUT files, folders or globs of PNG/JPEG/DICOM images with BUNDLE.

    Exits with status 1 when any input could not be read; its row carries the reason.
    """
    run_inference(bundle, inputs, out_file, checkpoint, threshold, batch_size, overrides, explain_dir)
