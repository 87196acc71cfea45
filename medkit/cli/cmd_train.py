"""``medkit train BUNDLE --data DIR --out DIR``: run the bundle's training workflow."""

from __future__ import annotations

import os
import time

import click

from medkit.cli.common import (
    attach_progress,
    bundle_argument,
    data_dir,
    data_option,
    out_option,
    override_option,
    parse_overrides,
)


@click.command("train")
@bundle_argument
@data_option()
@click.option("--datalist", default=None, help="Datalist JSON from 'medkit prepare' (instead of --data).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Number of epochs (of every stage).")
@click.option(
    "--stage",
    type=click.IntRange(min=1),
    multiple=True,
    help="Run only this training stage of the recipe (metadata medkit.train_stages; repeatable) [default: all].",
)
@out_option("Folder for models/ and runs/ [default: ./medkit-runs/<bundle>].")
@click.option("--overwrite", is_flag=True, help="Replace a model.pt already in OUT/models (refused otherwise).")
@override_option
def command(
    bundle: str,
    data_root: str | None,
    datalist: str | None,
    epochs: int | None,
    stage: tuple[int, ...],
    out_dir: str | None,
    overwrite: bool,
    overrides,
) -> None:
    """Train BUNDLE by its recipe (every stage of metadata medkit.train_stages, each from the model of the one
    before); the best checkpoint (by the validation key metric) goes to OUT/models/model.pt."""
    from medkit.workflows.stages import train_bundle

    out_dir = os.path.abspath(out_dir or os.path.join("medkit-runs", os.path.basename(bundle)))
    settings = {"ckpt_dir": os.path.join(out_dir, "models"), "output_dir": os.path.join(out_dir, "runs")}
    if datalist:
        settings["datalist_file"] = os.path.abspath(datalist)
    else:
        settings["dataset_dir"] = data_dir(bundle, data_root)
    if epochs:
        settings["epochs"] = epochs
    if overwrite:
        settings["overwrite"] = True
    settings.update(parse_overrides(overrides))
    start = time.time()
    model = train_bundle(
        bundle,
        settings,
        stages=list(stage) or None,
        on_workflow=lambda wf, k: attach_progress(wf.parser.get_parsed_content("train#trainer"), f"train {k}"),
    )
    click.echo(f"trained in {time.time() - start:.0f} s; model: {model}")
