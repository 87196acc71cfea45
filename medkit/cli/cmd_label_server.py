"""``medkit label-server BUNDLE... --studies DIR [--host 127.0.0.1] [--port 8000] [--app-dir DIR]``: MONAI Label
serving the bundles under their own names, in the foreground (needs ``.venv-label``: ``bash scripts/setup.sh
--label``)."""

from __future__ import annotations

import importlib.util
import os
import sys

import click


def _check_environment() -> None:
    """MONAI Label and medkit's pydicom shim are importable here, else one line saying how to get them."""
    from medkit.errors import MedkitError

    build = "build its environment with `bash scripts/setup.sh --label` and run .venv-label/bin/medkit label-server"
    if importlib.util.find_spec("monailabel") is None:
        raise MedkitError(f"MONAI Label is not installed in {sys.prefix}: {build}")
    if "medkit.label.compat" not in sys.modules:
        raise MedkitError(f"{sys.prefix} lacks medkit's pydicom shim for MONAI Label (medkit.label.compat): {build}")


@click.command("label-server")
@click.argument("bundles", nargs=-1, required=True)
@click.option(
    "--studies",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of images to annotate (MONAI Label's datastore; labels go to DIR/labels).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--app-dir",
    default="medkit-label",
    show_default=True,
    help="The MONAI Label app folder: main.py and a copy of each bundle in model/<name>/ (a model trained from "
    "MONAI Label is written there and kept across restarts).",
)
def command(bundles: tuple[str, ...], studies: str, host: str, port: int, app_dir: str) -> None:
    """Serve BUNDLEs (folders, zips or names under bundles/) in MONAI Label, each under its folder name.

    /info lists each bundle with its type (from its metadata), labels and dimension; /infer/<bundle>?image=<id>
    runs the bundle's own inference pipeline (as medkit infer: classifiers give probabilities and the label at
    the bundle's threshold, the brain segmenter a mask after the classifier gate, the CT bundle per-target
    probabilities); /train/<bundle> trains a segmentation bundle on the studies' final labels. Runs until stopped
    (Ctrl-C).
    """
    from medkit.label.server import prepare_app, server_command

    _check_environment()
    done = prepare_app(bundles, app_dir)
    for name, what in done.items():
        click.echo(f"{name}: {what} -> {os.path.join(app_dir, 'model', name)}")
    cmd = server_command(app_dir, studies, list(done), host=host, port=port)
    click.echo(f"MONAI Label on http://{host}:{port} (studies {os.path.abspath(studies)})", err=True)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
