"""The workflow configs of every bundle, written from templates held once in the package.

Each bundle's ``configs/{train,evaluate,inference}.json`` is a plain MONAI config (it runs with
``python -m monai.bundle run`` from any folder, from a copy or a zip, and MONAI Label reads ``inference.json``
alone), but it is not written by hand: it is rendered from ``medkit/bundle/templates/<workflow>.json`` (the
blocks every bundle shares) with the bundle's template family (``medkit.template`` in ``metadata.json``:
``templates/<family>/<workflow>.json``, the blocks of one kind of task) merged on top. A change to how a kind of
task trains, evaluates or infers is made once, in a template, and ``python -m medkit.bundle.templates --write``
carries it into every bundle; ``--check`` (and the test suite) fails while a bundle's config differs from its
rendering. ``configs/logging.conf`` is the template's copy (``templates/logging.conf``: the log goes to stderr, so
stdout holds only a command's results).

What a bundle sets for itself are its *settings*: the top-level ids whose template value is a plain JSON value
(a number, a flag, a list of numbers, a string that is not an expression or reference) such as ``epochs``,
``learning_rate`` or ``patch_size``. Rendering keeps the bundle's own value of each setting; everything else must
be the template's. Overlays (``finetune.json``: a later training stage) may only change settings.

One overlay kind is the exception, by design: ``configs/multi_gpu_train.json`` (training on several processes
with ``torchrun``, as the model zoo ships it) replaces components (the device, the network wrapped in
``DistributedDataParallel``, the data samplers), not settings. It is the same for every bundle, so it is a copy of
``templates/multi_gpu_train.json`` like ``logging.conf``: checked byte for byte, never edited in a bundle; what
differs between bundles (``find_unused_parameters``) is a setting of ``train.json`` it reads.

Merging: dictionaries merge key by key, recursively; any other value of the family replaces the shared one.
In the written file the settings come first, then the rest in template order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = [
    "TEMPLATE_DIR",
    "WORKFLOW_FILES",
    "COPIED_FILES",
    "is_setting",
    "template",
    "render",
    "render_bundle",
    "train_settings",
    "check_bundle",
    "write_bundle",
    "format_config",
]

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
#: the rendered workflow configs of a bundle
WORKFLOW_FILES = ("train.json", "evaluate.json", "inference.json")
#: files every bundle holds as the template's copy, byte for byte (the log goes to stderr, results to stdout; the
#: overlay for training on several processes, which changes components, not settings)
COPIED_FILES = ("logging.conf", "multi_gpu_train.json")
_EXPRESSION_PREFIXES = ("$", "@", "%")
_LINE = 120


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(_EXPRESSION_PREFIXES)
    if isinstance(value, Mapping):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def is_setting(template_value: Any) -> bool:
    """Whether a top-level id with this template value is a bundle setting (a plain JSON value, no expression)."""
    return not isinstance(template_value, Mapping) and not _has_expression(template_value)


def _merge(base: Any, over: Any) -> Any:
    if not (isinstance(base, Mapping) and isinstance(over, Mapping)):
        return over
    keys = list(base)
    shared = [k for k in over if k in base]
    cursor = keys.index(shared[0]) if shared else len(keys)
    for key in over:  # a key of the family's own goes after the family key before it (before the first shared one)
        if key in base:
            cursor = keys.index(key) + 1
        else:
            keys.insert(cursor, key)
            cursor += 1
    return {
        k: _merge(base[k], over[k]) if k in base and k in over else (over[k] if k in over else base[k]) for k in keys
    }


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def template(family: str, workflow_file: str) -> dict:
    """The merged template of one workflow config (shared blocks + the family's).

    Raises:
        MedkitError: unknown family or workflow.
    """
    if workflow_file not in WORKFLOW_FILES:
        raise MedkitError(f"unknown workflow config '{workflow_file}', expected one of {list(WORKFLOW_FILES)}")
    family_file = os.path.join(TEMPLATE_DIR, family, workflow_file)
    if not os.path.isfile(family_file):
        families = sorted(d for d in os.listdir(TEMPLATE_DIR) if os.path.isdir(os.path.join(TEMPLATE_DIR, d)))
        raise MedkitError(f"unknown template family '{family}' (metadata medkit.template), expected one of {families}")
    return _merge(_read(os.path.join(TEMPLATE_DIR, workflow_file)), _read(family_file))


def render(family: str, workflow_file: str, settings: Mapping[str, Any] | None = None) -> dict:
    """The config a bundle of ``family`` gets for ``workflow_file``, with its own ``settings``.

    Raises:
        MedkitError: a setting the template does not declare as one.
    """
    merged = template(family, workflow_file)
    declared = [k for k, v in merged.items() if is_setting(v)]
    unknown = sorted(set(settings or {}) - set(declared))
    if unknown:
        raise MedkitError(
            f"{family}/{workflow_file}: {unknown} are not settings of the template (declared: {declared})"
        )
    out = {k: (settings or {}).get(k, merged[k]) for k in declared}
    out.update((k, v) for k, v in merged.items() if k not in out)
    return out


def _family(bundle_dir: str) -> str:
    from medkit.bundle import load_metadata

    family = load_metadata(bundle_dir).get("medkit", {}).get("template")
    if not family:
        raise MedkitError(f"{bundle_dir}: metadata.json has no medkit.template (the family of its workflow configs)")
    return family


def _settings_of(config: Mapping[str, Any], merged: Mapping[str, Any]) -> dict:
    return {k: config[k] for k, v in merged.items() if is_setting(v) and k in config}


def render_bundle(bundle_dir: str) -> dict[str, dict]:
    """Each workflow config of the bundle as the templates render it with the bundle's current settings."""
    family = _family(bundle_dir)
    rendered = {}
    for name in WORKFLOW_FILES:
        path = os.path.join(bundle_dir, "configs", name)
        current = _read(path) if os.path.isfile(path) else {}
        rendered[name] = render(family, name, _settings_of(current, template(family, name)))
    return rendered


def train_settings(bundle_dir: str) -> set[str]:
    """The settings of the bundle's ``train.json``: the ids an overlay (a training stage, ``medkit tune``'s
    ``best.json``) may change."""
    return {k for k, v in template(_family(bundle_dir), "train.json").items() if is_setting(v)}


def _differences(actual: Any, expected: Any, at: str = "") -> list[str]:
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        out = []
        for key in list(expected) + [k for k in actual if k not in expected]:
            where = f"{at}#{key}" if at else key
            if key not in actual:
                out.append(f"{where} is missing")
            elif key not in expected:
                out.append(f"{where} is not in the template")
            else:
                out.extend(_differences(actual[key], expected[key], where))
        return out
    return [] if actual == expected else [f"{at} differs from the template"]


def check_bundle(bundle_dir: str) -> list[str]:
    """Problems with the bundle's workflow configs: blocks that differ from the templates, overlays that change
    more than settings. An empty list means every config is current.
    """
    problems = []
    for name, expected in render_bundle(bundle_dir).items():
        path = os.path.join(bundle_dir, "configs", name)
        if not os.path.isfile(path):
            problems.append(f"{path}: missing")
            continue
        problems.extend(f"{path}: {d}" for d in _differences(_read(path), expected))
    for name, text in _copied_files().items():
        path = os.path.join(bundle_dir, "configs", name)
        if not os.path.isfile(path) or open(path).read() != text:
            problems.append(f"{path}: differs from the template's {name}")
    settings = train_settings(bundle_dir)
    for overlay in _overlays(bundle_dir):
        path = os.path.join(bundle_dir, "configs", overlay)
        extra = sorted(set(_read(path)) - settings)
        if extra:
            problems.append(f"{path}: an overlay may only change settings of train.json, not {extra}")
    return problems


def _copied_files() -> dict[str, str]:
    out = {}
    for name in COPIED_FILES:
        with open(os.path.join(TEMPLATE_DIR, name)) as f:
            out[name] = f.read()
    return out


def _overlays(bundle_dir: str) -> list[str]:
    from medkit.bundle import train_stages

    return sorted({name for stage in train_stages(bundle_dir) for name in stage if name != "train.json"})


def format_config(config: Any, indent: int = 0, prefix: int = 0) -> str:
    """JSON text in the bundles' layout: one top-level id a line, a block on one line when it fits in 120
    characters (``prefix``: the characters before it on its line)."""
    compact = json.dumps(config, ensure_ascii=False)
    if not isinstance(config, (dict, list)) or not config or (indent and indent + prefix + len(compact) <= _LINE):
        return compact
    inner = " " * (indent + 2)
    if isinstance(config, dict):
        items = []
        for key, value in config.items():
            name = f"{json.dumps(key, ensure_ascii=False)}: "
            items.append(f"{inner}{name}{format_config(value, indent + 2, len(name))}")
    else:
        items = [f"{inner}{format_config(v, indent + 2)}" for v in config]
    opening, closing = ("{", "}") if isinstance(config, dict) else ("[", "]")
    return opening + "\n" + ",\n".join(items) + "\n" + " " * indent + closing


def write_bundle(bundle_dir: str) -> list[str]:
    """Write the bundle's workflow configs from the templates; returns the files that changed."""
    from medkit.io.atomic import write_text_atomic

    changed = []
    texts = {name: format_config(config) + "\n" for name, config in render_bundle(bundle_dir).items()}
    for name, text in {**texts, **_copied_files()}.items():
        path = os.path.join(bundle_dir, "configs", name)
        if not os.path.isfile(path) or open(path).read() != text:
            write_text_atomic(text, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m medkit.bundle.templates [--write] [BUNDLE ...]``: check (or write) the bundles' configs."""
    from medkit.bundle import PACKAGE_DIR, resolve_bundle

    parser = argparse.ArgumentParser(prog="python -m medkit.bundle.templates", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="*", help="bundle folders (default: every bundle under ./bundles)")
    parser.add_argument("--write", action="store_true", help="rewrite the configs that differ from the templates")
    args = parser.parse_args(argv)
    root = os.path.join(os.path.dirname(PACKAGE_DIR), "bundles")
    names = args.bundles or sorted(
        d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "configs", "metadata.json"))
    )
    status = 0
    for name in names:
        bundle_dir = resolve_bundle(name)
        if args.write:
            for path in write_bundle(bundle_dir):
                print(f"wrote {path}")
        for problem in check_bundle(bundle_dir):
            print(problem, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
