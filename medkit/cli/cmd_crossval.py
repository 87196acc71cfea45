"""``medkit crossval BUNDLE --data DIR --folds K --out DIR``: patient-level k-fold cross-validation of a recipe."""

from __future__ import annotations

import json

import click

from medkit.cli.common import bundle_argument, data_dir, data_option, out_option, override_option, parse_overrides

#: summary figures echoed at the end (those the bundle's kind of task has)
SHOWN = ("dice_patient_mean", "dice_slice_mean", "two_stage", "auc", "threshold", "accuracy", "sensitivity", "stack")


@click.command("crossval")
@bundle_argument
@data_option()
@click.option("--folds", type=click.IntRange(min=2), default=3, show_default=True, help="Number of folds.")
@out_option("Folder for each fold's models and reports, summary.json and study.json.", required=True)
@click.option(
    "--fold",
    type=click.IntRange(min=-1),
    default=None,
    help="Run this fold only, in this process (-1: the final model on every patient).",
)
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True, help="Folds run side by side.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs of every training stage.")
@click.option(
    "--pretrained-from",
    default=None,
    metavar="CV_DIR",
    help="Start each fold from its model in this earlier cross-validation (same folds).",
)
@click.option("--gate", default=None, metavar="CV_DIR", help="Segmenter: a classifier cross-validation (two-stage).")
@click.option("--study", is_flag=True, help="Segmenter: measure flip TTA, gating, hole filling, largest 3D component.")
@click.option("--all", "final", is_flag=True, help="Then train the final model on every patient (OUT/all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold assignment.")
@override_option
def command(
    bundle: str,
    data_root: str | None,
    folds: int,
    out_dir: str,
    fold: int | None,
    parallel: int,
    epochs: int | None,
    pretrained_from: str | None,
    gate: str | None,
    study: bool,
    final: bool,
    seed: int,
    overrides,
) -> None:
    """Score BUNDLE's training recipe on every patient once: each fold trains on the others (every stage of the
    recipe, each fold in a process of its own) and is evaluated held out; the held-out folds are pooled into
    OUT/summary.json. Finished folds (OUT/fold_K/result.json) are kept, so a stopped run resumes."""
    from medkit.workflows.crossval import CrossvalSettings, crossval, run_fold

    settings = CrossvalSettings(
        bundle=bundle,
        data=data_dir(bundle, data_root),
        out=out_dir,
        folds=folds,
        seed=seed,
        epochs=epochs,
        overrides=parse_overrides(overrides),
        pretrained_from=pretrained_from,
        gate=gate,
    )
    if fold is not None:
        click.echo(json.dumps(run_fold(settings, fold)))
        return
    done = crossval(settings, parallel=parallel, final=final, study=study)
    summary, studied = done["summary"], done["study"]
    click.echo(json.dumps({k: summary[k] for k in SHOWN if k in summary}, indent=2))
    for name, r in (studied or {}).items():
        if name != "gate":
            click.echo(
                f"{name:>15}: per-patient Dice {r['dice_patient_mean']:.4f} (median {r['dice_patient_median']:.4f}), "
                f"slice detection {r['slice_detection']}"
            )
