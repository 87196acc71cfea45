"""``medkit prepare SOURCE DATA_ROOT --out datalist.json``: a MONAI datalist from a published layout."""

from __future__ import annotations

import click

from medkit.cli.common import existing_dir

#: the datalist builders of medkit.data.BUILDERS (named here so that --help needs no heavy import)
SOURCES = ("covid", "lgg", "pneumonia")


@click.command("prepare")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("data_root")
@click.option("--out", "out", default="datalist.json", show_default=True, help="Datalist JSON to write.")
@click.option("--val-fraction", default=0.15, show_default=True, help="Fraction of patients held for validation.")
@click.option("--seed", default=0, show_default=True, help="Seed of the patient split.")
@click.option("--check/--no-check", default=True, show_default=True, help="Decode every image; leave out bad ones.")
@click.option(
    "--volumes", default=None, metavar="DIR", help="lgg: also write each patient's slices and masks as NIfTI volumes."
)
def command(source: str, data_root: str, out: str, val_fraction: float, seed: int, check: bool, volumes) -> None:
    """Scan DATA_ROOT (laid out as SOURCE publishes it) and write a patient-level split datalist."""
    from medkit.data import BUILDERS, write_json_atomic

    if volumes and source != "lgg":
        raise click.UsageError("--volumes applies to the lgg source (slices of one patient) only")

    data_root = existing_dir(data_root, "data")
    datalist = BUILDERS[source](data_root, val_fraction=val_fraction, seed=seed, check_images=check, progress=check)
    write_json_atomic(datalist, out)
    for split in ("training", "validation", "test"):
        items = datalist[split]
        counts = {name: sum(1 for i in items if i["label"] == int(k)) for k, name in datalist["labels"].items()}
        patients = len({i["patient"] for i in items})
        click.echo(f"{split:>10}: {len(items)} images of {patients} patients {counts}")
    for rec in datalist["skipped"]:
        click.echo(f"skipped: {rec['file']}: {rec['problem']}", err=True)
    click.echo(f"wrote {out}")
    if volumes:
        from medkit.data.lgg import write_case_volumes

        items = [i for split in ("training", "validation", "test") for i in datalist[split]]
        written = write_case_volumes(items, volumes)
        click.echo(f"wrote {len(written)} NIfTI volumes to {volumes}")
