"""``medkit demo --out DIR``: the whole pneumonia job on a synthetic look-alike data set, in about 10 s on 2 cores."""

from __future__ import annotations

import glob
import os

import click

from medkit.cli.common import out_option


@click.command("demo")
@out_option("Folder for data, model and reports.", default="medkit-demo")
@click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.pass_context
def command(ctx: click.Context, out_dir: str, epochs: int) -> None:
    """Write synthetic chest X-rays, then prepare, train, evaluate and infer with the pneumonia bundle."""
    from medkit.bundle import resolve_bundle
    from medkit.cli import cmd_evaluate, cmd_infer, cmd_prepare, cmd_train
    from medkit.data.synthetic import write_synthetic_chest_xray

    data = os.path.join(out_dir, "data")
    if glob.glob(os.path.join(data, "*", "*", "*")):
        raise click.ClickException(f"{data}: already holds a data set; choose another --out")
    bundle = resolve_bundle("pneumonia")
    click.echo(f"synthetic chest X-rays -> {write_synthetic_chest_xray(data, n_patients=24, n_test_patients=8)}")
    ctx.invoke(cmd_prepare.command, source="pneumonia", data_root=data, out_dir=out_dir)
    ctx.invoke(
        cmd_train.command,
        bundle=bundle,
        datalist=os.path.join(out_dir, cmd_prepare.DATALIST_NAME),
        epochs=epochs,
        out_dir=os.path.join(out_dir, "train"),
        overwrite=True,  # the demo's own folder: a rerun starts the demo again
        overrides=("batch_size=16",),
    )
    model = os.path.join(out_dir, "train", "models", "model.pt")
    ctx.invoke(
        cmd_evaluate.command,
        bundle=bundle,
        data_root=os.path.join(data, "test"),
        out_dir=os.path.join(out_dir, "eval"),
        checkpoint=model,
    )
    ctx.invoke(
        cmd_infer.command,
        bundle=bundle,
        inputs=(os.path.join(data, "test"),),
        out_dir=out_dir,
        checkpoint=model,
    )
