"""``medkit export BUNDLE [--format zip|torchscript|onnx] [--out DIR]``: a bundle zip for sharing (MONAI Label, other
machines), or its network as TorchScript or ONNX for deployment and for ``medkit infer --engine``."""

from __future__ import annotations

import os

import click

from medkit.cli.common import bundle_argument, out_option


@click.command("export")
@bundle_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["zip", "torchscript", "onnx"]),
    default="zip",
    show_default=True,
    help="zip: the bundle with a SHA-256 manifest; torchscript: models/model.ts; onnx: models/model.onnx.",
)
@out_option(
    "Folder to write into (zip: <bundle>-<version>.zip, default the current folder; torchscript/onnx: model.ts or "
    "model.onnx, default the bundle's models/, where --engine finds it).",
    default=None,
)
def command(bundle: str, fmt: str, out_dir: str | None) -> None:
    """Zip BUNDLE (configs, docs, models, a SHA-256 manifest of every file), or export its trained network.

    Any medkit command takes the zip in place of the folder. An exported network is checked against the checkpoint
    on inputs in the bundle's own format (its synthetic look-alike data through its preprocessing): the largest
    difference of output probabilities is printed and must stay within 1e-4.
    """
    from medkit.bundle import export_bundle, load_metadata
    from medkit.errors import MedkitError

    if fmt == "zip":
        version = load_metadata(bundle).get("version")
        if not version:
            raise MedkitError(f"{bundle}: configs/metadata.json has no version to name the zip after")
        path = export_bundle(bundle, os.path.join(out_dir or ".", f"{os.path.basename(bundle)}-{version}.zip"))
        click.echo(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MB)")
        return
    from medkit.engines.export import TOLERANCE, engine_agreement, export_engine, sample_inputs

    path = export_engine(bundle, fmt, out_dir)
    click.echo(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MB)")
    batch = sample_inputs(bundle)
    diff = engine_agreement(bundle, [fmt], batch, engine_dir=out_dir)[fmt]
    ok = diff <= TOLERANCE
    click.echo(
        f"{fmt} against the checkpoint on {len(batch)} inputs {tuple(batch.shape[1:])}: "
        f"max |probability difference| {diff:.2e} ({'within' if ok else 'OVER'} {TOLERANCE:g})"
    )
    if not ok:
        raise MedkitError(f"{path}: differs from models/model.pt by {diff:.2e} (more than {TOLERANCE:g})")
