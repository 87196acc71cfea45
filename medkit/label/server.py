"""Prepare a MONAI Label app folder for medkit bundles and start MONAI Label's server on it.

``prepare_app`` writes ``<app>/main.py`` (it imports ``medkit.label.app.MedkitLabelApp``) and puts each bundle in
``<app>/model/<name>/``, where MONAI Label finds bundles; ``server_command`` is MONAI Label's own
``start_server`` on that folder. Only ``server_command``'s process needs MONAI Label.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from medkit.errors import MedkitError

__all__ = ["prepare_app", "server_command", "MAIN_PY"]

MAIN_PY = '''"""MONAI Label app of medkit bundles, written by `medkit label-server` (see medkit/label/app.py)."""

from medkit.label.app import MedkitLabelApp  # noqa: F401  (MONAI Label looks for the MONAILabelApp here)
'''

_IGNORE = shutil.ignore_patterns("runs", "eval", "__pycache__", "*.pyc")


def _copy_bundle(src: str, dst: str) -> str:
    """Copy a bundle into the app: configs and docs always (a newer medkit's configs), ``models/`` only when the
    app has none yet, so a model trained from MONAI Label survives a restart. Returns what was done."""
    kept = os.path.isfile(os.path.join(dst, "models", "model.pt"))
    os.makedirs(dst, exist_ok=True)
    for entry in os.listdir(src):
        source, target = os.path.join(src, entry), os.path.join(dst, entry)
        if entry in ("runs", "eval", "__pycache__") or (entry == "models" and kept):
            continue
        if os.path.isdir(source):
            if os.path.isdir(target):
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=_IGNORE)
        else:
            shutil.copy2(source, target)
    return "configs updated, its models/ kept" if kept else "copied"


def prepare_app(bundles: Sequence[str], app_dir: str) -> dict[str, str]:
    """Make ``app_dir`` a MONAI Label app serving ``bundles`` (folders, zips or names under ``bundles/``).

    A segmentation bundle's gating classifier (``medkit.classifier_bundle``) is put beside it too, as its configs
    look for it there; it is served only when named.

    Returns:
        served name (the bundle's folder name) to what was done with its copy.

    Raises:
        MedkitError: not a bundle, two bundles of one name, a bundle without trained weights, a gating classifier
            that cannot be found.
    """
    from medkit.bundle import load_metadata, resolve_bundle

    sources: dict[str, str] = {}
    for bundle in bundles:
        path = resolve_bundle(bundle)
        name = os.path.basename(path.rstrip(os.sep))
        if name in sources and sources[name] != path:
            raise MedkitError(f"{bundle}: a second bundle named '{name}' ({sources[name]}); serve one of them")
        if not os.path.isfile(os.path.join(path, "models", "model.pt")):
            raise MedkitError(
                f"{os.path.join(path, 'models', 'model.pt')}: missing; MONAI Label serves trained bundles"
            )
        sources[name] = path
    helpers: dict[str, str] = {}
    for path in sources.values():
        classifier = load_metadata(path).get("medkit", {}).get("classifier_bundle")
        if classifier and classifier not in sources:
            beside = os.path.join(os.path.dirname(path), classifier)
            helpers[classifier] = resolve_bundle(beside if os.path.isdir(beside) else classifier)
    model_dir = os.path.join(app_dir, "model")
    os.makedirs(model_dir, exist_ok=True)
    done = {name: _copy_bundle(path, os.path.join(model_dir, name)) for name, path in sources.items()}
    for name, path in helpers.items():
        _copy_bundle(path, os.path.join(model_dir, name))
    main_py = os.path.join(app_dir, "main.py")
    from medkit.io.atomic import write_text_atomic

    write_text_atomic(MAIN_PY, main_py)
    return done


def server_command(
    app_dir: str, studies: str, names: Sequence[str], host: str = "127.0.0.1", port: int = 8000
) -> list[str]:
    """MONAI Label's ``start_server`` on ``app_dir`` serving ``names``, as an argument list for ``os.execv``."""
    return [
        sys.executable,
        "-m",
        "monailabel.main",
        "start_server",
        "--app",
        os.path.abspath(app_dir),
        "--studies",
        os.path.abspath(studies),
        "--host",
        host,
        "--port",
        str(port),
        "--conf",
        "models",
        ",".join(names),
    ]
