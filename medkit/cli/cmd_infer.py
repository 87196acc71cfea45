"""``medkit infer BUNDLE INPUT... --out FILE``: one row per input; bad inputs reported, the rest processed."""

from __future__ import annotations

import os
import sys

import click

from medkit.cli.common import attach_progress, bundle_argument, override_option, parse_overrides


@click.command("infer")
@bundle_argument
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_file", default="predictions.csv", show_default=True, help="Output .csv or .json file.")
@click.option("--checkpoint", default=None, help="Weights to use (default: the bundle's models/model.pt).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help="Decision threshold (two classes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per batch.")
@override_option
def command(
    bundle: str, inputs: tuple[str, ...], out_file: str, checkpoint: str | None, threshold, batch_size, overrides
) -> None:
    """Classify INPUT files, folders or globs of PNG/JPEG/DICOM images with BUNDLE.

    Exits with status 1 when any input could not be read; its row carries the reason.
    """
    from medkit.bundle import create_workflow

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
    attach_progress(wf.parser.get_parsed_content("evaluator"), "infer")
    wf.run()
    writer = wf.parser.get_parsed_content("writer")
    n_rows, n_failed = len(writer.rows), writer.n_failed
    for row in writer.rows:
        if row["error"]:
            click.echo(f"failed: {row['error']}", err=True)
    click.echo(f"{n_rows - n_failed} of {n_rows} inputs predicted -> {writer.output_file}")
    if n_failed or not n_rows:
        click.echo(f"Error: {n_failed} input(s) could not be read" if n_rows else "Error: no inputs found", err=True)
        sys.exit(1)
