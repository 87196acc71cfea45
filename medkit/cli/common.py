"""Helpers shared by the CLI verbs: bundle argument, overrides, progress bars."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import click

__all__ = [
    "bundle_argument",
    "override_option",
    "classifier_options",
    "split_option",
    "two_stage_settings",
    "parse_overrides",
    "attach_progress",
    "echo_metrics",
]


def _resolve(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from medkit.bundle import resolve_bundle

    return resolve_bundle(value)


bundle_argument = click.argument("bundle", callback=_resolve)
override_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="ID=VALUE",
    help="Override a config id, e.g. --set batch_size=16 (VALUE is read as JSON, else as text). Repeatable.",
)


def split_option(default: str, help: str):
    """``--split`` over the bundle's patient-level split (``all``, ``training``, ``validation``, ``test``)."""
    return click.option(
        "--split",
        type=click.Choice(["all", "training", "validation", "test"]),
        default=default,
        show_default=True,
        help=help,
    )


def classifier_options(func):
    """``--classifier BUNDLE`` / ``--no-classifier`` for segmentation bundles that run as a two-stage pipeline."""
    func = click.option("--no-classifier", is_flag=True, help="Segment every slice (no classification stage).")(func)
    return click.option(
        "--classifier",
        default=None,
        metavar="BUNDLE",
        help="Classification bundle of the first stage (default: the one the segmentation bundle names).",
    )(func)


def two_stage_settings(bundle_dir: str, classifier: str | None, no_classifier: bool) -> dict:
    """Config overrides that turn a segmentation bundle's classifier stage on or off.

    The default classifier is the one named in the bundle's metadata (``medkit.classifier_bundle``).

    Raises:
        click.UsageError: a classifier is asked of a bundle that is not a segmentation bundle.
    """
    from medkit.bundle import load_metadata, task_type

    if task_type(bundle_dir) != "segmentation":
        if classifier:
            raise click.UsageError(f"{bundle_dir}: --classifier applies to segmentation bundles only")
        return {}
    if no_classifier:
        return {"classifier_bundle": ""}
    chosen = classifier or load_metadata(bundle_dir)["medkit"].get("classifier_bundle", "")
    return {"classifier_bundle": chosen} if chosen else {}


def threshold_option(func):
    """``--threshold``: the classifier's decision threshold, given to ``threshold_settings``."""
    return click.option(
        "--threshold",
        type=click.FloatRange(0, 1),
        default=None,
        help="Decision threshold of the classifier (two classes), for a slice's own probability and for the mean "
        "over its neighbours where the bundle averages a slice window.",
    )(func)


def threshold_settings(threshold: float | None) -> dict:
    """Config overrides for one decision threshold given on the command line: it replaces the bundle's threshold
    and its stack threshold (the threshold of the mean over a slice window) alike."""
    return {} if threshold is None else {"threshold": threshold, "stack_threshold": threshold}


def parse_overrides(pairs: Iterable[str]) -> dict:
    """``["a=1", "b#c=x"]`` -> ``{"a": 1, "b#c": "x"}``; values are JSON when they parse, else text."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"'{pair}' is not ID=VALUE", param_hint="--set")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def existing_dir(path: str, what: str) -> str:
    """``path`` made absolute; a one-line error if it is not a folder."""
    if not os.path.isdir(path):
        raise click.BadParameter(f"{path}: {what} folder not found")
    return os.path.abspath(path)


def attach_progress(engine, desc: str) -> None:
    """A tqdm progress bar over an Ignite engine's iterations, on a terminal only: where stderr is a file or a
    pipe (logs, CI) it stays silent, as the engine's own log lines report each epoch."""
    from ignite.handlers import ProgressBar

    ProgressBar(desc=desc, persist=True, disable=None).attach(engine)  # tqdm: disable=None means "unless a TTY"


def echo_metrics(report: dict, keys: Iterable[str]) -> None:
    """Print ``key: value`` lines for the chosen report figures."""
    for key in keys:
        value = report.get(key)
        if key in report:
            click.echo(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
