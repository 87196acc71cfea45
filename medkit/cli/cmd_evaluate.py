"""``medkit evaluate BUNDLE --data DIR --out DIR``: metrics and plots over every labelled image."""

from __future__ import annotations

import os

import click

from medkit.cli.common import (
    attach_progress,
    bundle_argument,
    classifier_options,
    data_dir,
    data_option,
    echo_metrics,
    out_option,
    override_option,
    parse_overrides,
    split_option,
    threshold_option,
    threshold_settings,
    two_stage_settings,
)

#: figures printed after an evaluation (those present in the report)
SHOWN = (
    "n_cases",
    "n_slices",
    "dice_patient_mean",
    "dice_slice_mean",
    "accuracy",
    "auc",
    "f1_macro",
    "sensitivity",
    "specificity",
    "weighted_log_loss",
    "prior_baseline_weighted_log_loss",
    "best_constant_baseline_weighted_log_loss",
    "auc_any_injury",
)


@click.command("evaluate")
@bundle_argument
@data_option()
@out_option("Folder for metrics.json, predictions.csv and plots.", required=True)
@split_option("all", "Which images of --data: all, or one split of the bundle's patient-level split.")
@click.option("--checkpoint", default=None, help="Weights to evaluate (default: the bundle's models/model.pt).")
@threshold_option
@classifier_options
@override_option
def command(
    bundle: str,
    data_root: str | None,
    out_dir: str,
    split: str,
    checkpoint: str | None,
    threshold: float | None,
    classifier: str | None,
    no_classifier: bool,
    overrides,
) -> None:
    """Evaluate BUNDLE on the labelled images under --data, laid out as the data set publishes it.

    A segmentation bundle that names a classifier runs as a two-stage pipeline (only slices the classifier
    calls positive are segmented) and reports both stages; --no-classifier evaluates the segmenter alone.
    """
    from medkit.bundle import create_workflow

    settings = {"dataset_dir": data_dir(bundle, data_root), "output_dir": out_dir, "split": split}
    if checkpoint:
        settings["ckpt_path"] = os.path.abspath(checkpoint)
    settings.update(threshold_settings(threshold))
    settings.update(two_stage_settings(bundle, classifier, no_classifier))
    settings.update(parse_overrides(overrides))
    wf = create_workflow(bundle, "evaluate", settings)
    attach_progress(wf.parser.get_parsed_content("evaluator"), "evaluate")
    wf.run()
    report = wf.parser.get_parsed_content("report").report
    echo_metrics(report, SHOWN)
    click.echo(f"report written to {settings['output_dir']}")
