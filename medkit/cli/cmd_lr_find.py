"""``medkit lr-find BUNDLE --data DIR --out DIR``: learning-rate range test on the bundle's training pipeline."""

from __future__ import annotations

import os

import click

from medkit.cli.common import bundle_argument, data_dir, data_option, out_option, override_option, parse_overrides


@click.command("lr-find")
@bundle_argument
@data_option()
@click.option("--num-iter", type=click.IntRange(min=5), default=100, show_default=True, help="Batches to run.")
@click.option("--start-lr", type=float, default=1e-6, show_default=True)
@click.option("--end-lr", type=float, default=1.0, show_default=True)
@out_option("Folder for lr_find.png and lr_find.json.", default="lr_find")
@override_option
def command(bundle: str, data_root, num_iter: int, start_lr: float, end_lr: float, out_dir: str, overrides) -> None:
    """Raise the learning rate exponentially over NUM_ITER batches and suggest one."""
    from medkit.workflows.lr_find import lr_range_test

    settings = {"dataset_dir": data_dir(bundle, data_root), **parse_overrides(overrides)}
    result = lr_range_test(bundle, settings, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, out_dir=out_dir)
    lrs, losses = result["lrs"], result["losses"]
    best = min(range(len(losses)), key=losses.__getitem__)
    click.echo(f"steepest loss descent at lr={result['suggested_lr']:.2e}; lowest loss at lr={lrs[best]:.2e}")
    click.echo(f"plot: {os.path.join(out_dir, 'lr_find.png')}; set it with --set learning_rate=VALUE")
