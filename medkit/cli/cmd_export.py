"""``medkit export BUNDLE --out DIR``: zip a bundle, as ``DIR/<bundle>-<version>.zip``, for sharing (MONAI Label,
other machines)."""

from __future__ import annotations

import os

import click

from medkit.cli.common import bundle_argument, out_option


@click.command("export")
@bundle_argument
@out_option("Folder for <bundle>-<version>.zip (the version from configs/metadata.json).", default=".")
def command(bundle: str, out_dir: str) -> None:
    """Zip BUNDLE's configs, docs and models; any medkit command takes the zip in place of the folder."""
    from medkit.bundle import export_bundle, load_metadata
    from medkit.errors import MedkitError

    version = load_metadata(bundle).get("version")
    if not version:
        raise MedkitError(f"{bundle}: configs/metadata.json has no version to name the zip after")
    path = export_bundle(bundle, os.path.join(out_dir, f"{os.path.basename(bundle)}-{version}.zip"))
    click.echo(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MB)")
