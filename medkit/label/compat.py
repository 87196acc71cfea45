"""pydicom 3 for MONAI Label's pydicom-seg 0.4.1, which imports ``pydicom._storage_sopclass_uids`` (pydicom < 3).

``scripts/setup_label.sh`` imports this module at every start of ``.venv-label``'s Python (a ``.pth`` file), so the
server and the training subprocess MONAI Label starts both see the old module name. Importing it costs nothing:
``pydicom.uid`` (where pydicom 3 keeps the SOP class UIDs) is imported only when the old name is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

OLD_NAME = "pydicom._storage_sopclass_uids"


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return importlib.import_module("pydicom.uid")

    def exec_module(self, module) -> None:
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``pydicom._storage_sopclass_uids`` as ``pydicom.uid`` when no module of that name exists."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != OLD_NAME:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader())


def install() -> None:
    """Add the alias finder once, after the regular finders (a pydicom 2 that has the module keeps its own)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())


install()
