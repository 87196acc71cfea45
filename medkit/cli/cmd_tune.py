"""``medkit tune BUNDLE --data DIR --trials N``: search the bundle's training settings (Optuna, or Ray Tune)."""

from __future__ import annotations

import os
import time

import click

from medkit.cli.common import (
    bundle_argument,
    data_dir,
    data_option,
    out_option,
    override_option,
    parse_overrides,
    ray_option,
)


def _echo_trial(summary: dict) -> None:
    metric = next(k for k in summary if k not in ("trial", "state", "epochs", "params", "error"))
    value = summary[metric]
    shown = f"{metric} {value:.4f}" if isinstance(value, float) else summary["state"].lower()
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["params"].items())
    tail = f" ({summary['error']})" if summary.get("error") else ""
    click.echo(
        f"trial {summary['trial']}: {shown} after {summary['epochs']} epoch(s), "
        f"{summary['state'].lower()}; {params}{tail}"
    )


@click.command("tune")
@bundle_argument
@data_option()
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    required=True,
    help="Trials of the whole search (a resumed search runs the missing ones).",
)
@click.option(
    "--search",
    "space_file",
    default=None,
    metavar="FILE",
    help="Search space, YAML or JSON: setting ids and their ranges "
    "[default: the package's space for the bundle's kind].",
)
@click.option(
    "--metric", default=None, metavar="ID", help="Validation metric to score [default: the bundle's key metric]."
)
@out_option("Folder for study.db, trials/, the report and best.json [default: ./medkit-tune/<bundle>].")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Start no trial after S seconds.",
)
@click.option(
    "--subset",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Fraction of the patients of each side of the bundle's split to search on (stratified).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampler and of the subset.")
@ray_option("Run the search on Ray Tune", "tune-ray")
@override_option
def command(
    bundle: str, data_root, trials: int, space_file, metric, out_dir, timeout, subset, seed, ray_address, overrides
) -> None:
    """Search BUNDLE's training settings: each trial trains the bundle (train.json with the trial's settings and
    the --set ones) and is scored by its validation metric on held-out patients; Optuna's TPE with median pruning
    on the per-epoch metric (or, with --ray, Ray Tune with Optuna and ASHA). The study is kept in OUT/study.db, so
    the same command resumes a stopped search. Writes OUT/trials.csv, trials.md, best_trial.json, the plots and
    OUT/best.json, an overlay of the best settings: python -m monai.bundle run --config_file
    "['BUNDLE/configs/train.json','OUT/best.json']"."""
    from medkit.tune.study import tune_bundle

    out_dir = os.path.abspath(out_dir or os.path.join("medkit-tune", os.path.basename(bundle)))
    fixed = {"dataset_dir": data_dir(bundle, data_root), **parse_overrides(overrides)}
    start = time.time()
    best = tune_bundle(
        bundle,
        out_dir,
        trials,
        fixed,
        space_file=space_file,
        metric=metric,
        timeout=timeout,
        subset=subset,
        seed=seed,
        ray_address=ray_address,
        on_trial=_echo_trial,
    )
    counts = ", ".join(f"{n} {state.lower()}" for state, n in best["trials"].items() if n)
    score = f"{best['metric']} {best['best_value']:.4f}"
    click.echo(f"searched in {time.time() - start:.0f} s ({counts}); best: trial {best['best_trial']}, {score}")
    click.echo(f"overlay: {best['overlay']}")
    configs = f"['{os.path.join(bundle, 'configs', 'train.json')}','{best['overlay']}']"
    click.echo(f'retrain: python -m monai.bundle run --config_file "{configs}"')
