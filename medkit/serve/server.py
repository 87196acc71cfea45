"""Start ``medkit serve``: load the bundles once, then run the application under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import tempfile
from collections.abc import Sequence

import click

from medkit.errors import MedkitError
from medkit.serve.service import BundleService
from medkit.serve.uploads import UploadLimits

__all__ = ["load_services", "run_server", "is_loopback"]

logger = logging.getLogger(__name__)


def load_services(bundles: Sequence[str], work_dir: str) -> dict[str, BundleService]:
    """Each bundle loaded for serving, by its folder name.

    Raises:
        MedkitError: two bundles share a name, or one cannot be loaded.
    """
    services: dict[str, BundleService] = {}
    for bundle in bundles:
        service = BundleService(bundle, work_dir)
        if service.name in services:
            raise MedkitError(f"{bundle}: a bundle named '{service.name}' is already served; rename one folder")
        services[service.name] = service
    return services


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost``, ``127.x.x.x``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(
    bundles: Sequence[str], host: str, port: int, limits: UploadLimits, max_pixels: int | None = None
) -> None:
    """Load ``bundles`` and serve them on ``host:port`` until interrupted (Ctrl-C or SIGTERM); the server's temporary
    folder (uploads, outputs) is deleted on the way out.

    Args:
        bundles: bundle folders.
        host, port: where to listen.
        limits: what one upload may bring.
        max_pixels: the most pixels of an image (``medkit.io.header.MAX_PIXELS``), when given.
    """
    import uvicorn

    from medkit.io import header
    from medkit.serve.app import NOTICE, create_app

    if max_pixels is not None:
        header.MAX_PIXELS = int(max_pixels)
    with tempfile.TemporaryDirectory(prefix="medkit-serve-") as work_dir:
        os.chmod(work_dir, 0o700)
        services = load_services(bundles, work_dir)
        app = create_app(services, work_dir, limits)
        if not is_loopback(host):
            click.echo(f"Warning: listening on {host}: other machines can reach this server", err=True)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"medkit serve: {', '.join(services)} on http://{shown}:{port}/ ({NOTICE})", err=True)
        previous = signal.signal(signal.SIGTERM, _stop)  # uvicorn shuts down, then re-raises it: end here, cleaned up
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        except KeyboardInterrupt:  # Ctrl-C, re-raised by uvicorn after its graceful shutdown
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)
