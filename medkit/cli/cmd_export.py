"""``medkit export BUNDLE --out bundle.zip``: zip a bundle for sharing (MONAI Label, other machines)."""

from __future__ import annotations

import os

import click

from medkit.cli.common import bundle_argument


@click.command("export")
@bundle_argument
@click.option("--out", "out_zip", default=None, help="Zip to write (default: ./<bundle>.zip).")
def command(bundle: str, out_zip: str | None) -> None:
    """Zip BUNDLE's configs, docs and models; any medkit command takes the zip in place of the folder."""
    from medkit.bundle import export_bundle

    path = export_bundle(bundle, out_zip or f"{os.path.basename(bundle)}.zip")
    click.echo(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MB)")
