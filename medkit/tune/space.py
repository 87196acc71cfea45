"""The search space of ``medkit tune``: bundle settings and their ranges, read from YAML or JSON and checked
against the bundle before any trial.

A space file maps setting ids of the bundle's ``train.json`` to a range::

    learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}   # float, log-uniform (or linear: log false)
    weight_decay: {type: float, low: 0.0, high: 0.01, step: 0.001}        # float on a grid
    patches_per_volume: {type: int, low: 1, high: 4}                     # int (step, log allowed)
    loss_kind: {type: categorical, choices: [cross_entropy, focal]}      # one of a list of JSON values

Only settings (top-level plain values, ``medkit.bundle.templates.train_settings``) may be searched, because the
best values are written as an overlay (``best.json``) and an overlay may only change settings. Each package
template family has a default space (``medkit/tune/spaces/<family>.yaml``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medkit.errors import MedkitError

__all__ = ["Param", "SPACES_DIR", "default_space_file", "read_space", "check_space", "load_space"]

SPACES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spaces")
_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}


@dataclass(frozen=True)
class Param:
    """One searched setting: its id, kind (``float``, ``int``, ``categorical``) and range."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = field(default_factory=tuple)

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial suggests for this setting."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))

    def distribution(self):
        """The Optuna distribution of this range (Optuna's TPE and Ray Tune's ``OptunaSearch`` both take it)."""
        import optuna

        if self.kind == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.CategoricalDistribution(list(self.choices))


def default_space_file(family: str) -> str:
    """The package's default space for a template family (``classification``, ``segmentation``, ``trauma``).

    Raises:
        MedkitError: the family has no default space.
    """
    path = os.path.join(SPACES_DIR, f"{family}.yaml")
    if not os.path.isfile(path):
        raise MedkitError(f"no default search space for template family '{family}': give --search FILE")
    return path


def read_space(path: str) -> dict[str, Any]:
    """The raw mapping of a space file (``.yaml``/``.yml`` or ``.json``).

    Raises:
        MedkitError: the file is missing, unreadable or not a mapping; YAML without PyYAML.
    """
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise MedkitError(f"{path}: cannot read the search space ({e.strerror})") from None
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise MedkitError(f"{path}: reading YAML needs PyYAML: pip install 'medkit[tune]'") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise MedkitError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise MedkitError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, Mapping) or not raw:
        raise MedkitError(f"{path}: a search space is a non-empty mapping of setting ids to ranges")
    return dict(raw)


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MedkitError(f"{where}: {key} must be a finite number, got {value!r}")
    return value


def _param(name: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, Mapping) or spec.get("type") not in _KEYS:
        raise MedkitError(f"{where}: give a mapping with type float, int or categorical, got {spec!r}")
    kind = spec["type"]
    extra = sorted(set(spec) - _KEYS[kind] - {"type"})
    if extra:
        raise MedkitError(f"{where}: unknown keys {extra} for a {kind} range (allowed: {sorted(_KEYS[kind])})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MedkitError(f"{where}: empty range (choices must be a non-empty list)")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise MedkitError(f"{where}: choices must be numbers, flags, text or null")
        if len({json.dumps(c, sort_keys=True) for c in choices}) < len(choices):
            raise MedkitError(f"{where}: choices repeat a value")
        return Param(name, kind, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise MedkitError(f"{where}: a {kind} range needs low and high")
    low, high = _number(where, "low", spec["low"]), _number(where, "high", spec["high"])
    log, step = bool(spec.get("log", False)), spec.get("step")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
        raise MedkitError(f"{where}: an int range needs whole low and high, got {low}, {high}")
    if low > high or (kind == "float" and low == high):
        raise MedkitError(f"{where}: empty range (low {low} is not below high {high})")
    if log and low <= 0:
        raise MedkitError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (_number(where, "step", step) <= 0 or log):
        raise MedkitError(f"{where}: step must be > 0 and cannot go with log")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def check_space(bundle_dir: str, raw: Mapping[str, Any], where: str, fixed: Mapping[str, Any] = ()) -> list[Param]:
    """The parameters of a raw space, checked against the bundle: each id is a setting of its ``train.json``
    (so ``best.json`` is an overlay that only changes settings), not fixed by ``--set``, and each range is
    non-empty, well formed and inside the setting's allowed values (``medkit.bundle.properties.RANGES``).

    Raises:
        MedkitError: the first problem, as one line naming the file and the id.
    """
    from medkit.bundle import checked_overrides
    from medkit.bundle.properties import check_ranges
    from medkit.bundle.templates import train_settings

    settings = train_settings(bundle_dir)
    params = []
    for name, spec in raw.items():
        here = f"{where}: {name}"
        checked_overrides(bundle_dir, ["train.json"], {name: None})  # an unknown id: one line with a hint
        if name not in settings:
            raise MedkitError(f"{here}: not a setting of train.json (best.json may only change settings)")
        if name in fixed:
            raise MedkitError(f"{here}: both searched and fixed by --set")
        param = _param(name, spec, here)
        values = list(param.choices) if param.kind == "categorical" else [param.low, param.high]
        for value in values:
            try:
                check_ranges({name: value})
            except MedkitError as e:
                raise MedkitError(f"{where}: {e}") from None
        params.append(param)
    return params


def load_space(bundle_dir: str, path: str | None = None, fixed: Mapping[str, Any] = ()) -> tuple[str, list[Param]]:
    """The space file (``path``, else the default of the bundle's template family) and its checked parameters."""
    from medkit.bundle import load_metadata

    if path is None:
        path = default_space_file(load_metadata(bundle_dir).get("medkit", {}).get("template", ""))
    return path, check_space(bundle_dir, read_space(path), path, fixed)
