"""``medkit serve BUNDLE... [--host 127.0.0.1] [--port 8000]``: the web page and API over the bundles."""

from __future__ import annotations

import click


@click.command("serve")
@click.argument("bundles", nargs=-1, required=True)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback: this machine only)."
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=256, show_default=True, help="Largest upload.")
@click.option(
    "--max-zip-members", type=click.IntRange(min=1), default=2000, show_default=True, help="Most entries in a zip."
)
@click.option(
    "--max-unpacked-mb",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Most bytes a zip may unpack to (a decompression bomb stops there).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Most pixels (rows x columns x frames) of an image, checked from its header [default: MEDKIT_MAX_PIXELS "
    "or 50 million].",
)
def command(bundles, host, port, max_upload_mb, max_zip_members, max_unpacked_mb, max_pixels) -> None:
    """Serve BUNDLE(s) (folders, zips or names under bundles/) on a web page and an HTTP API.

    Each model is loaded once; the page (http://HOST:PORT/) takes a PNG, JPEG, DICOM, TIFF or NIfTI file, or a zip
    of a DICOM series or of a patient's TIFF slices, and shows each class's probability, the verdict and the
    Grad-CAM heat map or mask outline. Research use only; not a medical device.
    """
    from medkit.serve import require_server

    require_server()
    from medkit.bundle import resolve_bundle
    from medkit.serve.server import run_server
    from medkit.serve.uploads import UploadLimits

    limits = UploadLimits(max_upload_mb << 20, max_zip_members, max_unpacked_mb << 20)
    run_server([resolve_bundle(b) for b in bundles], host, port, limits, max_pixels)
