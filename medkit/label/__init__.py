"""medkit's MONAI Label app: every bundle served under its own name (``medkit label-server``).

Optional: needs MONAI Label (``bash scripts/setup.sh --label`` builds ``.venv-label``); nothing here is imported by
the rest of medkit. ``app.py`` holds the app, ``tasks.py`` the infer and train tasks, ``datastore.py`` the studies
folder, ``server.py`` prepares an app folder and starts the server, ``compat.py`` the pydicom 3 shim.
"""
