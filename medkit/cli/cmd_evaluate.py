"""``medkit evaluate BUNDLE DATA_ROOT --out DIR``: metrics and plots over every labelled image."""

from __future__ import annotations

import os

import click

from medkit.cli.common import (
    attach_progress,
    bundle_argument,
    echo_metrics,
    existing_dir,
    override_option,
    parse_overrides,
)


@click.command("evaluate")
@bundle_argument
@click.argument("data_root")
@click.option("--out", "out_dir", required=True, help="Folder for metrics.json, predictions.csv and plots.")
@click.option(
    "--split",
    type=click.Choice(["all", "training", "validation", "test"]),
    default="all",
    show_default=True,
    help="Which images of DATA_ROOT: all, or one split of the bundle's patient-level split.",
)
@click.option("--checkpoint", default=None, help="Weights to evaluate (default: the bundle's models/model.pt).")
@override_option
def command(bundle: str, data_root: str, out_dir: str, split: str, checkpoint: str | None, overrides) -> None:
    """Evaluate BUNDLE on the labelled images under DATA_ROOT, laid out as the data set publishes it."""
    from medkit.bundle import create_workflow

    settings = {"dataset_dir": existing_dir(data_root, "data"), "output_dir": os.path.abspath(out_dir), "split": split}
    if checkpoint:
        settings["ckpt_path"] = os.path.abspath(checkpoint)
    settings.update(parse_overrides(overrides))
    wf = create_workflow(bundle, "evaluate", settings)
    attach_progress(wf.parser.get_parsed_content("evaluator"), "evaluate")
    wf.run()
    report = wf.parser.get_parsed_content("report").report
    echo_metrics(report, ["n_cases", "accuracy", "auc", "f1_macro", "sensitivity", "specificity"])
    click.echo(f"report written to {settings['output_dir']}")
