"""``medkit explain BUNDLE IMAGE... --out DIR``: Grad-CAM overlays of the predicted class, and the predictions."""

from __future__ import annotations

import click

from medkit.cli.common import bundle_argument, out_option, override_option


@click.command("explain")
@bundle_argument
@click.argument("images", nargs=-1, required=True)
@out_option("Folder for <image>_<class>_gradcam.png and predictions.csv.", required=True)
@click.option("--checkpoint", default=None, help="Weights to use (default: the bundle's models/model.pt).")
@override_option
def command(bundle: str, images: tuple[str, ...], out_dir: str, checkpoint: str | None, overrides) -> None:
    """Save a Grad-CAM heat map over each IMAGE (files, folders or globs) for the class BUNDLE predicts."""
    from medkit.cli.cmd_infer import run_inference

    run_inference(bundle, images, out_dir, checkpoint, overrides=overrides, explain_dir=out_dir)
