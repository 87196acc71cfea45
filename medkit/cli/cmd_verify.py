"""``medkit verify BUNDLE``: metadata, workflow properties, network input/output shapes, weights."""

from __future__ import annotations

import sys

import click

from medkit.cli.common import bundle_argument


@click.command("verify")
@bundle_argument
def command(bundle: str) -> None:
    """Check BUNDLE offline; exit status 1 when any check fails."""
    from medkit.bundle import verify_bundle

    results = verify_bundle(bundle)
    for check, ok, detail in results:
        click.echo(f"[{'ok' if ok else 'FAIL'}] {check}: {detail}")
    if not all(ok for _, ok, _ in results):
        sys.exit(1)
