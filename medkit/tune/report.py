"""What a ``medkit tune`` search writes from its Optuna study: the table of trials (CSV and Markdown), the best
trial, the best settings as an overlay (``best.json``) and Optuna's optimisation-history and parameter-importance
plots (PNG, matplotlib). The Ray Tune backend turns its results into an Optuna study first, so both write the
same files."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = ["BEST_OVERLAY", "trial_rows", "write_report", "write_overlay"]

logger = logging.getLogger(__name__)

#: the overlay of the best trial's settings, written into --out
BEST_OVERLAY = "best.json"


def trial_rows(study: Any, metric: str) -> tuple[list[dict], list[str]]:
    """One row per trial (number, state, value, epochs validated, each parameter) and the column names."""
    names = sorted({name for t in study.trials for name in t.params})
    columns = ["trial", "state", metric, "epochs", *names]
    rows = []
    for t in study.trials:
        row = {"trial": t.number, "state": t.state.name, metric: t.value, "epochs": len(t.intermediate_values)}
        row.update({name: t.params.get(name) for name in names})
        rows.append(row)
    return rows, columns


def _markdown(rows: list[dict], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_overlay(bundle_dir: str, params: Mapping[str, Any], path: str) -> str:
    """Write the best settings as a config overlay, after checking once more that it only changes settings.

    Raises:
        MedkitError: a parameter that is not a setting of the bundle's ``train.json``.
    """
    from medkit.bundle.templates import train_settings
    from medkit.io.atomic import write_json_atomic

    extra = sorted(set(params) - train_settings(bundle_dir))
    if extra:
        raise MedkitError(f"{path}: an overlay may only change settings of train.json, not {extra}")
    return write_json_atomic(dict(sorted(params.items())), path)


def _plots(study: Any, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.exceptions import ExperimentalWarning

    written = []
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    plots = [("optimization_history.png", ovm.plot_optimization_history)]
    if len(complete) >= 2 and study.trials[0].params:
        plots.append(("param_importances.png", ovm.plot_param_importances))
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            try:
                ax = plot(study)
            except (RuntimeError, ValueError) as e:  # e.g. importances of parameters that never varied
                logger.warning("%s not drawn: %s", name, e)
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        tmp = path + ".tmp.png"
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
        plt.close(fig)
        written.append(path)
    return written


def write_report(study: Any, bundle_dir: str, out_dir: str, metric: str, fixed: Mapping[str, Any]) -> dict:
    """Write ``trials.csv``, ``trials.md``, ``best_trial.json``, ``best.json`` and the plots into ``out_dir``.

    Returns:
        the best trial's summary (``best_trial.json``), with the files written.

    Raises:
        MedkitError: no trial completed.
    """
    from medkit.io.atomic import write_json_atomic, write_table_atomic, write_text_atomic

    rows, columns = trial_rows(study, metric)
    write_table_atomic(rows, columns, os.path.join(out_dir, "trials.csv"))
    write_text_atomic(_markdown(rows, columns), os.path.join(out_dir, "trials.md"))
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        raise MedkitError(f"{out_dir}: no trial completed, so there is no best overlay (see trials.csv)")
    best = study.best_trial
    values = best.intermediate_values
    pick = max if study.direction.name == "MAXIMIZE" else min
    overlay = write_overlay(bundle_dir, best.params, os.path.join(out_dir, BEST_OVERLAY))
    summary = {
        "bundle": bundle_dir,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "best_trial": best.number,
        "best_value": best.value,
        "best_epoch": pick(values, key=values.get) if values else None,
        "params": best.params,
        "fixed": {k: v for k, v in fixed.items() if k not in ("dataset_dir", "datalist_file")},
        "trials": {state: sum(t.state.name == state for t in study.trials) for state in ("COMPLETE", "PRUNED", "FAIL")},
        "overlay": overlay,
    }
    summary["plots"] = _plots(study, out_dir)
    write_json_atomic(summary, os.path.join(out_dir, "best_trial.json"))
    return summary
