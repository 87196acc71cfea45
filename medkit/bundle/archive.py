"""Bundle zips: writing one to share a bundle, unpacking one into medkit's cache to run it."""

from __future__ import annotations

import os

from medkit.errors import MedkitError

__all__ = ["export_bundle", "unpack_zip"]


_EXPORT_SKIP = {"runs", "eval", "__pycache__"}


def export_bundle(bundle_dir: str, out_zip: str) -> str:
    """Zip a bundle folder (configs, docs, models; not ``runs/`` or ``eval/``) for sharing.

    The archive holds one top-level folder named after the bundle, as MONAI's bundle zips do. It is
    written through a temporary file, so an interrupted export leaves no partial zip.

    Returns:
        the path of the zip.
    """
    import zipfile

    bundle_dir = os.path.abspath(bundle_dir)
    name = os.path.basename(bundle_dir)
    out_zip = os.path.abspath(out_zip)
    os.makedirs(os.path.dirname(out_zip), exist_ok=True)
    tmp = f"{out_zip}.tmp-{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for folder, dirs, files in os.walk(bundle_dir):
                dirs[:] = sorted(d for d in dirs if d not in _EXPORT_SKIP and not d.startswith("."))
                for f in sorted(files):
                    if f.startswith("."):
                        continue
                    path = os.path.join(folder, f)
                    zf.write(path, os.path.join(name, os.path.relpath(path, bundle_dir)))
        os.replace(tmp, out_zip)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out_zip


def unpack_zip(path: str) -> str:
    """The bundle folder inside the zip ``path``, unpacked once into ``$MEDKIT_CACHE/bundles/<sha256 prefix>``.

    Raises:
        MedkitError: not a readable zip, an unsafe member path, or no bundle inside.
    """
    import hashlib
    import zipfile

    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.path.join(os.environ.get("MEDKIT_CACHE", os.path.expanduser("~/.cache/medkit")), "bundles", digest)
    if not os.path.isdir(cache):
        import shutil
        import zlib

        tmp = f"{cache}.tmp-{os.getpid()}"
        try:
            with zipfile.ZipFile(path) as zf:
                bad = [n for n in zf.namelist() if n.startswith("/") or ".." in n.split("/")]
                if bad:
                    raise MedkitError(f"{path}: unsafe path in zip ({bad[0]})")
                zf.extractall(tmp)
            os.replace(tmp, cache)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, RuntimeError) as e:
            raise MedkitError(f"{path}: not a readable zip ({type(e).__name__}: {e})") from None
        finally:  # a failed extraction leaves no half-unpacked bundle in the cache
            shutil.rmtree(tmp, ignore_errors=True)
    for root, _, files in os.walk(cache):
        if os.path.basename(root) == "configs" and "metadata.json" in files:
            return os.path.dirname(root)
    raise MedkitError(f"{path}: zip holds no bundle (no configs/metadata.json)")
