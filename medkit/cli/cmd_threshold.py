"""``medkit threshold BUNDLE --data DIR --recall 0.95``: the decision threshold that reaches a target recall, or
(``--balanced``) the one with the largest sensitivity + specificity."""

from __future__ import annotations

import json
import math
import os
import tempfile

import click

from medkit.cli.common import (
    attach_progress,
    data_dir,
    data_option,
    override_option,
    parse_overrides,
    split_option,
    unresolved_bundle_argument,
    writable_bundle,
)


@click.command("threshold")
@unresolved_bundle_argument
@data_option()
@click.option(
    "--recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Target recall of the positive class [the bundle's medkit.target_recall, else 0.95].",
)
@click.option(
    "--balanced",
    is_flag=True,
    help="Instead of a recall target, take the threshold with the largest sensitivity + specificity (Youden's J): "
    "for a validation unlike the training data (a shifted split), where the training prior does not hold.",
)
@split_option("validation", "Which images of the bundle's patient-level split to tune on (never the one you report).")
@click.option(
    "--write",
    is_flag=True,
    help="Store the threshold in the bundle's metadata.json (medkit.threshold, and medkit.stack_threshold); "
    "BUNDLE must be a folder, not a zip.",
)
@override_option
def command(
    bundle: str, data_root: str | None, recall: float | None, balanced: bool, split: str, write: bool, overrides
) -> None:
    """Pick the decision threshold of a two-class BUNDLE for a target recall of its positive class on --data.

    The highest threshold whose recall on the chosen split is at least the target is taken (it keeps the most
    specificity); missing a tumour costs more than a false alarm, so recall is what is fixed. With --balanced, the
    threshold with the largest sensitivity + specificity is taken instead. A bundle with a medkit.slice_window
    above 1 also gets a stack threshold, for slices of a patient's stack decided on the mean probability of that
    many neighbouring slices, picked the same way on those means.
    """
    import numpy as np

    from medkit.bundle import create_workflow, load_metadata, task_type
    from medkit.errors import MedkitError
    from medkit.io.atomic import write_json_atomic
    from medkit.metrics.classification import (
        classification_report,
        stack_means,
        threshold_balanced,
        threshold_for_recall,
    )

    if balanced and recall is not None:
        raise click.UsageError("--balanced and --recall choose the threshold in two different ways; give one")
    bundle = writable_bundle(bundle, write)  # a zip is refused before it is unpacked
    if task_type(bundle) != "classification":
        raise MedkitError(f"{bundle}: not a classification bundle; thresholds are tuned on classifiers")
    target = recall if recall is not None else float(load_metadata(bundle)["medkit"].get("target_recall", 0.95))

    def choose(scores, truth) -> float:
        return floor6(threshold_balanced(scores, truth) if balanced else threshold_for_recall(scores, truth, target))

    rule = "largest sensitivity + specificity" if balanced else f"target recall {target}"
    dataset_dir = data_dir(bundle, data_root)
    with tempfile.TemporaryDirectory(prefix="medkit-threshold-") as scratch:
        settings = {"dataset_dir": dataset_dir, "output_dir": scratch, "split": split, "n_worst": 0}
        settings.update(parse_overrides(overrides))
        wf = create_workflow(bundle, "evaluate", settings)
        attach_progress(wf.parser.get_parsed_content("evaluator"), "threshold")
        wf.run()
        report_writer = wf.parser.get_parsed_content("report")
    if len(report_writer.class_names) != 2:
        raise MedkitError(f"{bundle}: a threshold needs two classes, the bundle has {len(report_writer.class_names)}")
    probs = np.stack(report_writer.probs)
    labels = np.asarray(report_writer.labels)
    chosen = {"threshold": choose(probs[:, 1], labels)}
    report = classification_report(probs, labels, report_writer.class_names, chosen["threshold"])
    click.echo(f"threshold {chosen['threshold']} on {split} ({report['n_cases']} images): {figures(report, rule)}")
    window = report_writer.slice_window
    if window > 1:  # slices of a stack are decided on the mean of their neighbourhood: its own threshold
        cases, slices = report_writer.cases, report_writer.slices
        scores, stacked = stack_means(probs[:, 1], cases, slices, window)
        if stacked.any() and labels[stacked].any():
            chosen["stack_threshold"] = choose(scores[stacked], labels[stacked])
            p = scores[stacked]
            report = classification_report(
                np.stack([1 - p, p], 1), labels[stacked], report_writer.class_names, chosen["stack_threshold"]
            )
            click.echo(
                f"stack threshold {chosen['stack_threshold']} on the mean of {window} slices "
                f"({report['n_cases']} slices of stacks): {figures(report, rule)}"
            )
    if write:
        meta_file = os.path.join(bundle, "configs", "metadata.json")
        with open(meta_file) as f:
            on_disk = json.load(f)
        on_disk.setdefault("medkit", {}).update(chosen)
        write_json_atomic(on_disk, meta_file)
        click.echo(f"written to {meta_file}")


def floor6(value: float) -> float:
    """``value`` with 6 decimals, rounded down: rounding up could pass the lowest positive that must stay positive."""
    return math.floor(value * 1e6) / 1e6


def figures(report: dict, rule: str) -> str:
    return (
        f"recall {report['sensitivity']:.4f}, specificity {report['specificity']:.4f}, "
        f"accuracy {report['accuracy']:.4f} ({rule})"
    )
