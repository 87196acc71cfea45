"""``medkit tune --ray [ADDRESS]``: the same search on Ray Tune: Optuna's TPE as the search algorithm
(``OptunaSearch``), the ASHA scheduler stopping weak trials on the per-epoch validation metric, one trial per
worker of the cluster. Each trial is ``medkit.tune.trial.run_trial``, as locally; the results become an Optuna
study so the report and ``best.json`` are written by the same code (``medkit.tune.report``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = ["RAY_TUNE_PIN", "import_ray_tune", "search_on_ray"]

#: the Ray release the ``tune-ray`` extra pins (setup.cfg), with Ray Tune's own dependencies
RAY_TUNE_PIN = "ray[tune]==2.60.0"
EXPERIMENT = "medkit-tune"
DONE = "done.json"


def import_ray_tune():
    """``(ray, ray.tune)``, or one line naming the extra to install."""
    from medkit.workflows.ray_inference import import_ray

    ray = import_ray()
    try:
        from ray import tune
    except ImportError:
        raise MedkitError(
            "medkit tune --ray needs Ray Tune, which is not installed: "
            f"pip install 'medkit[tune-ray]' (or '{RAY_TUNE_PIN}')"
        ) from None
    return ray, tune


def _trainable(bundle_dir: str, settings: dict, metric: str, out_dir: str, threads: int) -> Callable[[dict], None]:
    def train(config: dict) -> None:
        from ray import tune

        from medkit.io.atomic import write_json_atomic
        from medkit.tune.trial import run_trial

        trial_dir = os.path.join(out_dir, "trials", tune.get_context().get_trial_id())

        def report(epoch: int, value: float) -> bool:
            tune.report({metric: value, "epoch": epoch})  # ASHA stops the trial here when it falls behind
            return False

        scores = run_trial(bundle_dir, {**settings, **config}, trial_dir, metric, report, threads=threads)
        write_json_atomic({str(k): v for k, v in scores.items()}, os.path.join(trial_dir, DONE))

    return train


def _to_study(results: Any, params: list, metric: str, direction: str, out_dir: str, epochs: int):
    """The Ray results as an in-memory Optuna study: completed (trained to the end: every epoch, or the bundle's
    early stop), stopped early by ASHA (pruned) or failed trials, with their per-epoch values."""
    import optuna

    study = optuna.create_study(direction=direction)
    distributions = {p.name: p.distribution() for p in params}
    for result in sorted(results, key=lambda r: r.path or ""):
        frame = result.metrics_dataframe
        values = {}
        if frame is not None and metric in frame:
            values = {int(e): float(v) for e, v in zip(frame["epoch"], frame[metric]) if v == v}
        config = {k: v for k, v in (result.config or {}).items() if k in distributions}
        trial_id = (result.metrics or {}).get("trial_id", "")
        done = os.path.isfile(os.path.join(out_dir, "trials", str(trial_id), DONE))
        if result.error is not None or not values or len(config) < len(distributions):
            state, value = optuna.trial.TrialState.FAIL, None
        elif done or max(values) >= epochs:
            state = optuna.trial.TrialState.COMPLETE
            value = max(values.values()) if direction == "maximize" else min(values.values())
        else:
            state, value = optuna.trial.TrialState.PRUNED, None
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=config if len(config) == len(distributions) else {},
                distributions=distributions if len(config) == len(distributions) else {},
                intermediate_values=values,
                user_attrs={"ray_trial_id": trial_id},
            )
        )
    return study


def search_on_ray(
    bundle_dir: str,
    settings: Mapping[str, Any],
    params: list,
    metric: str,
    direction: str,
    out_dir: str,
    n_trials: int,
    address: str,
    seed: int,
    timeout: float | None,
    on_trial: Callable[[dict], None] | None = None,
    cpus_per_trial: int = 1,
):
    """Run the search on Ray Tune (``address``: ``"local"`` for a Ray instance of this machine, else a cluster
    address as ``ray.init`` takes it); a search stopped before its end resumes from ``OUT/ray``.

    Returns:
        the trials as an Optuna study.
    """
    import optuna
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    ray, tune = import_ray_tune()
    epochs = int(settings.get("epochs") or _bundle_epochs(bundle_dir))
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        trainable = tune.with_resources(
            _trainable(bundle_dir, dict(settings), metric, out_dir, cpus_per_trial), {"cpu": cpus_per_trial}
        )
        storage = os.path.join(out_dir, "ray")
        path = os.path.join(storage, EXPERIMENT)
        if tune.Tuner.can_restore(path):
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
        else:
            mode = "max" if direction == "maximize" else "min"
            searcher = OptunaSearch(
                space={p.name: p.distribution() for p in params},
                metric=metric,
                mode=mode,
                sampler=optuna.samplers.TPESampler(seed=seed),
            )
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    metric=metric,
                    mode=mode,
                    search_alg=searcher,
                    scheduler=ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=1, reduction_factor=2),
                    num_samples=n_trials,
                    time_budget_s=timeout,
                ),
                run_config=tune.RunConfig(name=EXPERIMENT, storage_path=storage, verbose=0),
            )
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    study = _to_study(results, params, metric, direction, out_dir, epochs)
    if on_trial:
        from medkit.tune.study import trial_summary

        for trial in study.trials:
            on_trial(trial_summary(trial, metric))
    return study


def _bundle_epochs(bundle_dir: str) -> int:
    import json

    with open(os.path.join(bundle_dir, "configs", "train.json")) as f:
        return int(json.load(f)["epochs"])
