"""``medkit train BUNDLE --data DIR --out DIR``: run the bundle's training workflow."""

from __future__ import annotations

import os
import time

import click

from medkit.cli.common import (
    attach_progress,
    bundle_argument,
    data_dir,
    data_option,
    out_option,
    override_option,
    parse_overrides,
)


@click.command("train")
@bundle_argument
@data_option()
@click.option("--datalist", default=None, help="Datalist JSON from 'medkit prepare' (instead of --data).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Number of epochs (of every stage).")
@click.option(
    "--stage",
    type=click.IntRange(min=1),
    multiple=True,
    help="Run only this training stage of the recipe (metadata medkit.train_stages; repeatable) [default: all].",
)
@out_option("Folder for models/ and runs/ [default: ./medkit-runs/<bundle>].")
@click.option("--overwrite", is_flag=True, help="Replace a model.pt already in OUT/models (refused otherwise).")
@click.option(
    "--resume", is_flag=True, help="Continue a stopped training from OUT/models/checkpoint_last.pt (its last epoch)."
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=None,
    help="Train on N processes of this machine (torchrun, DistributedDataParallel; one per GPU, or gloo on the CPU).",
)
@click.option("--nnodes", type=click.IntRange(min=1), default=1, show_default=True, help="Machines training together.")
@click.option("--rdzv-endpoint", default=None, metavar="HOST:PORT", help="Where the nodes meet (c10d rendezvous).")
@override_option
def command(
    bundle: str,
    data_root: str | None,
    datalist: str | None,
    epochs: int | None,
    stage: tuple[int, ...],
    out_dir: str | None,
    overwrite: bool,
    resume: bool,
    nproc: int | None,
    nnodes: int,
    rdzv_endpoint: str | None,
    overrides,
) -> None:
    """Train BUNDLE by its recipe (every stage of metadata medkit.train_stages, each from the model of the one
    before); the best checkpoint (by the validation key metric) goes to OUT/models/model.pt, the state of the last
    epoch to OUT/models/checkpoint_last.pt (--resume continues from it). With --nproc N the recipe runs on N
    processes per node through torchrun and the bundle's configs/multi_gpu_train.json."""
    from medkit.workflows.stages import train_bundle

    out_dir = os.path.abspath(out_dir or os.path.join("medkit-runs", os.path.basename(bundle)))
    settings = {"ckpt_dir": os.path.join(out_dir, "models"), "output_dir": os.path.join(out_dir, "runs")}
    if datalist:
        settings["datalist_file"] = os.path.abspath(datalist)
    else:
        settings["dataset_dir"] = data_dir(bundle, data_root)
    if epochs:
        settings["epochs"] = epochs
    if overwrite:
        settings["overwrite"] = True
    settings.update(parse_overrides(overrides))
    start = time.time()
    if nproc or nnodes > 1 or rdzv_endpoint:
        model = _train_on_processes(bundle, settings, nproc or 1, nnodes, rdzv_endpoint, list(stage), resume)
        click.echo(f"trained in {time.time() - start:.0f} s; model: {model}")
        return
    model = train_bundle(
        bundle,
        settings,
        stages=list(stage) or None,
        resume=resume,
        on_workflow=lambda wf, k: attach_progress(wf.parser.get_parsed_content("train#trainer"), f"train {k}"),
    )
    click.echo(f"trained in {time.time() - start:.0f} s; model: {model}")


def _train_on_processes(
    bundle: str,
    settings: dict,
    nproc: int,
    nnodes: int,
    rdzv_endpoint: str | None,
    stages: list[int],
    resume: bool,
) -> str:
    """Run the recipe under torchrun; the overrides are checked here first, so a typo fails before any process."""
    import subprocess

    from medkit.bundle import checked_overrides, train_stages
    from medkit.errors import MedkitError
    from medkit.workflows.stages import MULTI_PROCESS_OVERLAY, torchrun_command

    for files in train_stages(bundle):
        checked_overrides(bundle, files + [MULTI_PROCESS_OVERLAY], settings)
    cmd = torchrun_command(bundle, settings, nproc, nnodes, rdzv_endpoint, stages, resume)
    status = subprocess.call(cmd)
    if status != 0:
        raise MedkitError(
            f"{bundle}: training on {nproc * nnodes} processes failed (torchrun exit status {status}; "
            "the processes' errors are above)"
        )
    return os.path.join(settings["ckpt_dir"], "model.pt")
