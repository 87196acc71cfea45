"""``medkit tune``: a hyperparameter search over a bundle's settings, each trial the bundle's own training scored by
its validation metric on held-out patients.

Optuna (TPE sampler, median pruning on the per-epoch validation metric) runs the trials here, one after another,
with the study in SQLite under the output folder (``study.db``), so a search that was stopped resumes: finished
trials are kept, a trial the stop cut short is marked failed and its settings run again. ``ray_address`` runs the
same search on Ray Tune instead (``medkit.tune.ray_search``). Either way the output folder gets ``trials.csv``,
``trials.md``, ``best_trial.json``, the overlay ``best.json`` and the plots (``medkit.tune.report``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = ["OPTUNA_PIN", "import_optuna", "tune_bundle", "study_key", "trial_summary"]

logger = logging.getLogger(__name__)

#: the Optuna release the ``tune`` extra pins (setup.cfg)
OPTUNA_PIN = "optuna==5.0.0"
STUDY_NAME = "medkit-tune"


def import_optuna():
    """The ``optuna`` module, or one line naming the extra to install."""
    try:
        import optuna
    except ImportError:
        raise MedkitError(
            f"medkit tune needs Optuna, which is not installed: pip install 'medkit[tune]' (or {OPTUNA_PIN})"
        ) from None
    return optuna


def study_key(bundle_dir: str, metric: str, params: list, fixed: Mapping[str, Any], subset: float) -> dict:
    """What makes two runs the same search (kept in the study; a resumed run must match it)."""
    return {
        "bundle": os.path.basename(os.path.normpath(bundle_dir)),
        "metric": metric,
        "space": {p.name: [p.kind, p.low, p.high, p.log, p.step, list(p.choices)] for p in params},
        "fixed": {k: v for k, v in fixed.items() if k not in ("dataset_dir", "datalist_file")},
        "subset": subset,
    }


@contextlib.contextmanager
def _lock(out_dir: str) -> Iterator[None]:
    """Hold ``OUT/study.lock`` for the search: one search per folder, so a RUNNING trial found at the start was
    left by a run that stopped."""
    with open(os.path.join(out_dir, "study.lock"), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MedkitError(f"{out_dir}: another medkit tune is running on this folder") from None
        yield


def _open_study(optuna: Any, out_dir: str, direction: str, key: dict, seed: int, pruner: Any):
    storage = optuna.storages.RDBStorage(f"sqlite:///{os.path.join(out_dir, 'study.db')}")
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=2),
        direction=direction,
        load_if_exists=True,
    )
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", json.loads(json.dumps(key)))
    elif stored != json.loads(json.dumps(key)):
        changed = sorted(k for k in key if stored.get(k) != json.loads(json.dumps(key[k])))
        raise MedkitError(
            f"{os.path.join(out_dir, 'study.db')}: holds another search (its {', '.join(changed)} differ); "
            "use another --out or the same options"
        )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"repeats": trial.number})
        logger.warning("trial %d was cut short by a stop; its settings run again", trial.number)
    return study


def _finished(study: Any) -> int:
    """Trials that count towards ``--trials``: all but those a stop cut short."""
    return sum(t.state.is_finished() and not t.user_attrs.get("interrupted") for t in study.trials)


def tune_bundle(
    bundle_dir: str,
    out_dir: str,
    n_trials: int,
    fixed: Mapping[str, Any],
    space_file: str | None = None,
    metric: str | None = None,
    timeout: float | None = None,
    subset: float = 1.0,
    seed: int = 0,
    pruner: Any = None,
    ray_address: str | None = None,
    on_trial: Callable[[dict], None] | None = None,
) -> dict:
    """Search the bundle's settings and write the report and ``best.json`` into ``out_dir``.

    Args:
        bundle_dir: the bundle folder.
        out_dir: where the study, each trial's ``trials/<n>/`` (models, logs), the datalist and the report go.
        n_trials: trials of the whole search: a resumed search runs only those still missing.
        fixed: settings every trial shares (``dataset_dir``, ``--set`` ids).
        space_file: the search space (YAML or JSON); default: the package's space for the bundle's family.
        metric: the validation metric to score (default: the bundle's key metric).
        timeout: start no trial after this many seconds (a running trial finishes).
        subset: the fraction of the patients of each side of the bundle's split the search trains and validates on.
        seed: seed of the TPE sampler and of the subset.
        pruner: an Optuna pruner in place of the median pruner (tests).
        ray_address: run the trials on Ray Tune (``"local"``: a Ray instance of this machine).
        on_trial: called with a summary of each finished trial.

    Returns:
        the best trial's summary (``best_trial.json``).

    Raises:
        MedkitError: a bad space, metric or setting (before any trial), Optuna or Ray missing, no trial completed.
    """
    from medkit.tune.report import write_report
    from medkit.tune.space import load_space
    from medkit.tune.trial import tune_settings, write_datalist

    if not 0.0 < subset <= 1.0:
        raise MedkitError(f"--subset {subset}: expected a fraction in (0, 1]")
    settings, metric, direction = tune_settings(bundle_dir, fixed, metric)
    _, params = load_space(bundle_dir, space_file, fixed)
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.makedirs(out_dir, exist_ok=True)
    key = study_key(bundle_dir, metric, params, fixed, subset)
    if ray_address:
        from medkit.tune.ray_search import search_on_ray

        datalist = os.path.join(out_dir, "datalist.json")
        write_datalist(bundle_dir, settings, datalist, subset, seed)
        study = search_on_ray(
            bundle_dir,
            {**settings, "datalist_file": datalist},
            params,
            metric,
            direction,
            out_dir,
            n_trials,
            ray_address,
            seed,
            timeout,
            on_trial,
        )
        return write_report(study, bundle_dir, out_dir, metric, settings)
    with _lock(out_dir):
        study = _open_study(optuna, out_dir, direction, key, seed, pruner)
        datalist = os.path.join(out_dir, "datalist.json")
        if not os.path.isfile(datalist):  # kept on resume: every trial of the search sees the same patients
            write_datalist(bundle_dir, settings, datalist, subset, seed)
        objective = _objective(
            optuna, bundle_dir, {**settings, "datalist_file": datalist}, params, metric, direction, out_dir
        )
        remaining = n_trials - _finished(study)
        if remaining > 0:
            callbacks = [lambda s, t: on_trial(trial_summary(t, metric))] if on_trial else []
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=timeout,
                catch=(MedkitError,),
                callbacks=callbacks,
                gc_after_trial=True,
            )
        return write_report(study, bundle_dir, out_dir, metric, settings)


def trial_summary(trial: Any, metric: str) -> dict:
    return {
        "trial": trial.number,
        "state": trial.state.name,
        metric: trial.value,
        "epochs": len(trial.intermediate_values),
        "params": trial.params,
        "error": trial.user_attrs.get("error"),
    }


def _objective(optuna: Any, bundle_dir: str, settings: dict, params: list, metric: str, direction: str, out_dir: str):
    from medkit.errors import medkit_cause
    from medkit.tune.trial import TrialStopped, run_trial

    def objective(trial: Any) -> float:
        values = {p.name: p.suggest(trial) for p in params}
        trial_dir = os.path.join(out_dir, "trials", f"{trial.number:03d}")

        def report(epoch: int, value: float) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        try:
            scores = run_trial(bundle_dir, {**settings, **values}, trial_dir, metric, report)
        except TrialStopped as e:
            raise optuna.TrialPruned(str(e)) from None
        except Exception as e:
            cause = medkit_cause(e)
            trial.set_user_attr("error", str(cause or e).splitlines()[0] if str(cause or e) else type(e).__name__)
            if cause is not None:
                raise cause from None
            raise
        return max(scores.values()) if direction == "maximize" else min(scores.values())

    return objective
