"""Helpers shared by the CLI verbs: bundle argument, overrides, progress bars."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import click

__all__ = [
    "bundle_argument",
    "unresolved_bundle_argument",
    "writable_bundle",
    "data_option",
    "data_dir",
    "out_option",
    "override_option",
    "ray_option",
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
#: BUNDLE as given, for a verb that may write into it and calls ``writable_bundle`` itself
unresolved_bundle_argument = click.argument("bundle")


def writable_bundle(bundle: str, write: bool, flag: str = "--write") -> str:
    """``resolve_bundle(bundle)``, but a zip is refused when the verb writes into the bundle.

    A zip is unpacked into a cache (``~/.cache/medkit``); writing there would change a copy no other command
    reads back as the zip. The check comes before the zip is unpacked, so the cache is left alone.

    Raises:
        MedkitError: ``write`` is set and ``bundle`` is a zip file.
    """
    from medkit.bundle import resolve_bundle
    from medkit.errors import MedkitError

    if write and bundle.lower().endswith(".zip") and os.path.isfile(bundle):
        raise MedkitError(f"{bundle}: cannot {flag} into a zipped bundle; unzip it and pass the folder")
    return resolve_bundle(bundle)


def _existing_data_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else existing_dir(value, "data", param)


def data_option(required: bool = False):
    """``--data DIR``: the data set folder, laid out as published; made absolute, checked to be a folder.

    Optional on verbs that take a bundle: ``data_dir`` then falls back to ``$MEDKIT_DATA/<medkit.data_folder>``,
    as the bundle configs do. Required where there is no bundle to name the folder (``prepare``).
    """
    help_text = "Data set folder, laid out as published." + (
        "" if required else " [default: $MEDKIT_DATA/<the data folder the bundle's metadata names>]"
    )
    return click.option(  # no default=None: click 8.3 would then not enforce required
        "--data",
        "data_root",
        metavar="DIR",
        required=required,
        callback=_existing_data_dir,
        help=help_text,
    )


def data_dir(bundle: str, data_root: str | None) -> str:
    """The data set folder a verb reads: ``--data`` if given, else ``$MEDKIT_DATA/<medkit.data_folder>``.

    Args:
        bundle: the bundle folder (its ``metadata.json`` names the data folder).
        data_root: the ``--data`` value (already absolute and checked), or ``None``.

    Raises:
        MedkitError: neither ``--data`` nor ``MEDKIT_DATA`` is given, the bundle names no data folder, or the
            folder under ``MEDKIT_DATA`` does not exist.
    """
    from medkit.bundle import load_metadata
    from medkit.errors import MedkitError

    if data_root:
        return data_root
    root = os.environ.get("MEDKIT_DATA")
    if not root:
        raise MedkitError("no data: give --data DIR or set MEDKIT_DATA")
    folder = load_metadata(bundle).get("medkit", {}).get("data_folder")
    if not folder:
        raise MedkitError(f"{bundle}: metadata.json names no medkit.data_folder under MEDKIT_DATA; give --data DIR")
    path = os.path.join(root, folder)
    if not os.path.isdir(path):
        raise MedkitError(f"{path}: data folder not found (MEDKIT_DATA/{folder}); give --data DIR")
    return os.path.abspath(path)


#: what ``--out`` refuses: names of files, which a verb writes inside the folder, not in place of it
_FILE_SUFFIXES = (".csv", ".json", ".zip")


def _out_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    exists_not_folder = os.path.lexists(value) and not os.path.isdir(value)  # a file, a device (/dev/null), a dead link
    if exists_not_folder or value.lower().endswith(_FILE_SUFFIXES):
        raise click.BadParameter(f"{value}: --out takes a folder (the files are written inside it)", ctx, param)
    existing = os.path.abspath(value)
    while not os.path.isdir(existing):  # the folder, or the nearest one above it that it would be made in
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{existing}: not writable, so nothing could be saved there", ctx, param)
    return os.path.abspath(value)


def out_option(help: str, default: str | None = None, required: bool = False):
    """``--out DIR``: the folder a verb writes into, made absolute; a file (or a ``.csv``/``.json``/``.zip`` name)
    is refused. ``help`` names what goes inside it."""
    given_default = {} if default is None else {"default": default, "show_default": True}
    return click.option(  # no default=None: click 8.3 would then not enforce required
        "--out", "out_dir", metavar="DIR", required=required, callback=_out_dir, help=help, **given_default
    )


override_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="ID=VALUE",
    help="Override a config id, e.g. --set batch_size=16 (VALUE is read as JSON, else as text). Repeatable.",
)


def ray_option(what: str, extra: str):
    """``--ray [ADDRESS]``: run on a Ray cluster (``"local"`` when given alone: a Ray instance of this machine).

    Args:
        what: what runs on the cluster, the start of the help text ("Spread the inputs over a Ray cluster").
        extra: the extra that installs what it needs.
    """
    return click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="local",
        default=None,
        metavar="[ADDRESS]",
        help=f"{what} (ADDRESS: ray://HOST:10001, HOST:6379 or auto; alone: a Ray instance of this machine; write "
        f"--ray=ADDRESS, or --ray last). Needs the {extra} extra.",
    )


def split_option(default: str, help: str):
    """``--split`` over the bundle's split (``all``, ``training``, ``validation``, ``validation_patient``, ``test``)."""
    from medkit.data import SPLITS

    return click.option(
        "--split",
        type=click.Choice(["all", *SPLITS[:-1]]),
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

    Without either option the bundle's own configs apply the classifier its metadata names
    (``medkit.classifier_bundle``), as ``monai.bundle run`` and MONAI Label do.

    Raises:
        click.UsageError: a classifier is asked of a bundle that is not a segmentation bundle.
    """
    from medkit.bundle import task_type

    if task_type(bundle_dir) != "segmentation":
        if classifier:
            raise click.UsageError(f"{bundle_dir}: --classifier applies to segmentation bundles only")
        return {}
    if no_classifier:
        return {"classifier_bundle": ""}
    return {"classifier_bundle": classifier} if classifier else {}


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


def existing_dir(path: str, what: str, param: click.Parameter | None = None) -> str:
    """``path`` made absolute; a one-line error (naming ``param``, the option, if given) if it is not a folder."""
    if not os.path.isdir(path):
        raise click.BadParameter(f"{path}: {what} folder not found", param=param)
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
