"""``medkit prepare SOURCE DATA_ROOT --out datalist.json``: a MONAI datalist from a published layout."""

from __future__ import annotations

import os

import click

from medkit.cli.common import existing_dir

#: the datalist builders of medkit.data.BUILDERS (named here so that --help needs no heavy import)
SOURCES = ("covid", "lgg", "pneumonia", "rsna")
#: look-alike generators: DATA_ROOT holds the real label table, --out is the folder to write
SYNTHETIC = ("rsna-synthetic",)


@click.command("prepare")
@click.argument("source", type=click.Choice(SOURCES + SYNTHETIC))
@click.argument("data_root")
@click.option("--out", "out", default="datalist.json", show_default=True, help="Datalist JSON to write.")
@click.option("--val-fraction", default=0.15, show_default=True, help="Fraction of patients held for validation.")
@click.option("--seed", default=0, show_default=True, help="Seed of the patient split.")
@click.option("--check/--no-check", default=True, show_default=True, help="Decode every image; leave out bad ones.")
@click.option(
    "--volumes", default=None, metavar="DIR", help="lgg: also write each patient's slices and masks as NIfTI volumes."
)
@click.option(
    "--folds",
    "n_folds",
    type=click.IntRange(min=2),
    default=None,
    help="lgg: cross-validation: deal the patients into this many folds; --fold is the test side.",
)
@click.option("--fold", type=click.IntRange(min=0), default=0, show_default=True, help="lgg: which fold is tested.")
@click.option("--patients", "n_patients", type=click.IntRange(min=1), default=None, help="rsna-synthetic: how many.")
@click.option(
    "--patient-ids",
    "patient_ids",
    default=None,
    metavar="FILE",
    help="rsna-synthetic: write these patients of train.csv (one id per line) instead of --patients.",
)
@click.option(
    "--shape",
    type=(int, int, int),
    default=(96, 96, 64),
    show_default=True,
    help="rsna-synthetic: voxels per volume (x, y, slices).",
)
@click.option(
    "--segmentations/--no-segmentations",
    default=True,
    show_default=True,
    help="rsna-synthetic: also write organ and injury masks (segmentations/<series_id>.nii.gz) for training.",
)
def command(
    source: str,
    data_root: str,
    out: str,
    val_fraction: float,
    seed: int,
    check: bool,
    volumes,
    n_folds,
    fold,
    n_patients,
    patient_ids,
    shape,
    segmentations,
) -> None:
    """Scan DATA_ROOT (laid out as SOURCE publishes it) and write a patient-level split datalist.

    rsna-synthetic instead writes a look-alike of the RSNA 2023 trauma CTs into the folder --out, in the
    competition's layout, with injuries drawn from the label table DATA_ROOT/train.csv.
    """
    from medkit.data import BUILDERS, write_json_atomic

    if volumes and source != "lgg":
        raise click.UsageError("--volumes applies to the lgg source (slices of one patient) only")
    if n_folds and source != "lgg":
        raise click.UsageError("--folds applies to the lgg source only")
    if n_folds and fold >= n_folds:
        raise click.UsageError(f"--fold must be below --folds ({n_folds}), got {fold}")
    if (n_patients or patient_ids) and source not in SYNTHETIC:
        raise click.UsageError("--patients and --patient-ids apply to rsna-synthetic only")

    data_root = existing_dir(data_root, "data")
    if source == "rsna-synthetic":
        _write_synthetic_rsna(data_root, out, n_patients, patient_ids, shape, seed, segmentations)
        return
    folds = {"n_folds": n_folds, "fold": fold} if n_folds else {}
    datalist = BUILDERS[source](
        data_root, val_fraction=val_fraction, seed=seed, check_images=check, progress=check, **folds
    )
    write_json_atomic(datalist, out)
    for split in ("training", "validation", "test"):
        items = datalist[split]
        patients = len({i["patient"] for i in items})
        if "labels" in datalist:
            counts = {name: sum(1 for i in items if i["label"] == int(k)) for k, name in datalist["labels"].items()}
            click.echo(f"{split:>10}: {len(items)} images of {patients} patients {counts}")
        else:
            injured = {t: sum(1 for i in items if i["label"][k]) for k, t in enumerate(datalist["targets"])}
            click.echo(f"{split:>10}: {len(items)} series of {patients} patients, injured {injured}")
    for rec in datalist["skipped"]:
        click.echo(f"skipped: {rec['file']}: {rec['problem']}", err=True)
    click.echo(f"wrote {out}")
    if volumes:
        from medkit.data.lgg import write_case_volumes

        items = [i for split in ("training", "validation", "test") for i in datalist[split]]
        written = write_case_volumes(items, volumes)
        click.echo(f"wrote {len(written)} NIfTI volumes to {volumes}")


def _write_synthetic_rsna(
    data_root: str,
    out: str,
    n_patients: int | None,
    ids_file: str | None,
    shape: tuple,
    seed: int,
    segmentations: bool = True,
) -> None:
    from medkit.data.synthetic_ct import write_synthetic_rsna

    labels = os.path.join(data_root, "train.csv")
    if not os.path.isfile(labels):
        raise click.BadParameter(f"{data_root}: no train.csv (the RSNA 2023 label table) here", param_hint="DATA_ROOT")
    if out.lower().endswith(".json"):
        raise click.BadParameter(f"{out}: rsna-synthetic writes a folder, give a folder path", param_hint="--out")
    ids = None
    if ids_file:
        try:
            with open(ids_file) as f:
                ids = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise click.BadParameter(f"{ids_file}: {e.strerror}", param_hint="--patient-ids") from None
    summary = write_synthetic_rsna(
        out, labels, patient_ids=ids, n_patients=n_patients, shape=tuple(shape), seed=seed, segmentations=segmentations
    )
    click.echo(f"wrote {summary['n_series']} series of {summary['n_patients']} patients to {out}")
