"""Hyperparameter search over a bundle's settings (``medkit tune``): Optuna here, Ray Tune on a cluster.

``space.py`` reads and checks the search space, ``trial.py`` runs one trial (the bundle's own training, its
validation metric reported each epoch by an Ignite handler), ``study.py`` drives the Optuna study (SQLite,
resumable), ``ray_search.py`` the same search on Ray Tune, ``report.py`` writes the table, the plots and the
``best.json`` overlay. Optuna and Ray are optional (the ``tune`` and ``tune-ray`` extras) and imported lazily.
"""

from __future__ import annotations

__all__ = ["tune_bundle"]


def tune_bundle(*args, **kwargs):
    """``medkit.tune.study.tune_bundle`` (imported on first use)."""
    from medkit.tune.study import tune_bundle as run

    return run(*args, **kwargs)
