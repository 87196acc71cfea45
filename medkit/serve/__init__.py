"""``medkit serve``: the web API and page over one or more bundles (optional: needs the ``serve`` extra).

``service.py`` runs a bundle's own inference workflow on uploaded files (the model loaded once, requests serialised),
``uploads.py`` takes an upload into the server's temporary folder within limits, ``app.py`` is the FastAPI
application and ``static/`` the page. Only ``app.py`` imports FastAPI; ``require_server`` names the extra when it is
missing.
"""

from __future__ import annotations

import importlib.util

from medkit.errors import MedkitError

__all__ = ["require_server", "SERVER_PACKAGES"]

#: the packages of the ``serve`` extra (import name -> distribution name)
SERVER_PACKAGES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def require_server() -> None:
    """Check that the web server's packages are installed.

    Raises:
        MedkitError: one is missing; the message names the extra that installs them.
    """
    missing = [dist for name, dist in SERVER_PACKAGES.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise MedkitError(
            f"medkit serve needs {', '.join(missing)}: install the serve extra (pip install -e '.[serve]')"
        )
