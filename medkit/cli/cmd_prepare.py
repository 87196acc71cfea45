"""``medkit prepare SOURCE --data DIR --out DIR``: a MONAI datalist (``DIR/datalist.json``) from a published layout."""

from __future__ import annotations

import os

import click

from medkit.cli.common import data_option, out_option

#: the datalist builders of medkit.data.BUILDERS (named here so that --help needs no heavy import)
SOURCES = ("covid", "lgg", "pneumonia", "rsna")
#: look-alike generators: --data holds the real label table, --out is the folder the data set is written to
SYNTHETIC = ("rsna-synthetic",)
#: the datalist's name in --out
DATALIST_NAME = "datalist.json"


@click.command("prepare")
@click.argument("source", type=click.Choice(SOURCES + SYNTHETIC))
@data_option(required=True)
@out_option(
    "Folder for datalist.json (and volumes/ with --volumes) [default: the current folder]; rsna-synthetic: the "
    "folder the data set is written to (required)."
)
@click.option("--val-fraction", default=0.15, show_default=True, help="Fraction of patients held for validation.")
@click.option("--seed", default=0, show_default=True, help="Seed of the patient split.")
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Decode every image; leave out bad ones (headers are always checked: size limit, channels, broken links).",
)
@click.option(
    "--volumes", is_flag=True, help="lgg: also write each patient's slices and masks as NIfTI volumes to OUT/volumes/."
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
    out_dir: str | None,
    val_fraction: float,
    seed: int,
    check: bool,
    volumes: bool,
    n_folds,
    fold,
    n_patients,
    patient_ids,
    shape,
    segmentations,
) -> None:
    """Scan --data (laid out as SOURCE publishes it) and write a patient-level split datalist to OUT/datalist.json.

    rsna-synthetic instead writes a look-alike of the RSNA 2023 trauma CTs into the folder --out, in the
    competition's layout, with injuries drawn from the label table in --data (train.csv).
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

    if source == "rsna-synthetic":
        if out_dir is None:
            raise click.BadParameter("rsna-synthetic writes a data set: give the folder for it", param_hint="--out")
        _write_synthetic_rsna(data_root, out_dir, n_patients, patient_ids, shape, seed, segmentations)
        return
    out_dir = out_dir or os.path.abspath(".")
    out = os.path.join(out_dir, DATALIST_NAME)
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
        volumes_dir = os.path.join(out_dir, "volumes")
        written = write_case_volumes(items, volumes_dir)
        click.echo(f"wrote {len(written)} NIfTI volumes to {volumes_dir}")


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
        raise click.BadParameter(f"{data_root}: no train.csv (the RSNA 2023 label table) here", param_hint="--data")
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
