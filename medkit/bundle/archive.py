"""Bundle zips: writing one to share a bundle, unpacking one into medkit's cache to run it."""

from __future__ import annotations

import os

from medkit.errors import MedkitError

__all__ = ["MANIFEST", "LARGE_FILES", "export_bundle", "bundle_files", "check_manifest", "unpack_zip"]


_EXPORT_SKIP = {"runs", "eval", "__pycache__"}
#: the SHA-256 of every other file of an exported bundle, written into its zip
MANIFEST = "manifest.json"
#: the weights of an exported bundle in the model zoo's ``large_files.yml`` form (path, hash_val, hash_type)
LARGE_FILES = "large_files.yml"


def bundle_files(bundle_dir: str) -> list[str]:
    """The files a bundle export holds, relative to ``bundle_dir``, sorted: everything but ``runs/``, ``eval/``,
    caches, hidden files and the export's own ``manifest.json`` and ``large_files.yml``."""
    out = []
    for folder, dirs, files in os.walk(bundle_dir):
        dirs[:] = sorted(d for d in dirs if d not in _EXPORT_SKIP and not d.startswith("."))
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(folder, f), bundle_dir)
            if not f.startswith(".") and rel not in (MANIFEST, LARGE_FILES):
                out.append(rel.replace(os.sep, "/"))
    return out


def _large_files_yml(hashes: dict[str, str]) -> str:
    lines = ["large_files:"]
    for rel, digest in hashes.items():
        if rel.startswith("models/"):
            lines += [f'  - path: "{rel}"', f'    hash_val: "{digest}"', '    hash_type: "sha256"']
    return "\n".join(lines) + "\n"


def export_bundle(bundle_dir: str, out_zip: str) -> str:
    """Zip a bundle folder (configs, docs, models; not ``runs/`` or ``eval/``) for sharing.

    The archive holds one top-level folder named after the bundle, as MONAI's bundle zips do, with
    ``manifest.json`` (the SHA-256 of every other file, which ``medkit verify`` checks) and ``large_files.yml``
    (the weights, as the model zoo lists them). It is written through a temporary file, so an interrupted export
    leaves no partial zip.

    Returns:
        the path of the zip.
    """
    import json
    import zipfile

    from medkit.bundle import load_metadata
    from medkit.networks.weights import sha256_of

    bundle_dir = os.path.abspath(bundle_dir)
    name = os.path.basename(bundle_dir)
    out_zip = os.path.abspath(out_zip)
    os.makedirs(os.path.dirname(out_zip), exist_ok=True)
    tmp = f"{out_zip}.tmp-{os.getpid()}"
    meta = load_metadata(bundle_dir)
    files = bundle_files(bundle_dir)
    hashes = {rel: sha256_of(os.path.join(bundle_dir, rel)) for rel in files}
    manifest = {"name": meta.get("name", name), "version": meta.get("version"), "hash_type": "sha256", "files": hashes}
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in files:
                zf.write(os.path.join(bundle_dir, rel), f"{name}/{rel}")
            zf.writestr(f"{name}/{LARGE_FILES}", _large_files_yml(hashes))
            zf.writestr(f"{name}/{MANIFEST}", json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, out_zip)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out_zip


def check_manifest(bundle_dir: str) -> tuple[bool, str]:
    """Check the files of an exported bundle against its ``manifest.json``.

    Returns:
        ``(passed, detail)``: passed when every listed file is there with its SHA-256 and no file was added; a
        bundle without a manifest (a source folder, not an export) passes with a note.
    """
    import json

    from medkit.networks.weights import sha256_of

    path = os.path.join(bundle_dir, MANIFEST)
    if not os.path.isfile(path):
        return True, f"no {MANIFEST} (a source folder; medkit export writes one into the zip)"
    try:
        with open(path) as f:
            listed = dict(json.load(f)["files"])
    except (ValueError, KeyError, TypeError) as e:
        return False, f"{path}: not a manifest ({e})"
    missing = [rel for rel in listed if not os.path.isfile(os.path.join(bundle_dir, rel))]
    changed = [rel for rel in listed if rel not in missing and sha256_of(os.path.join(bundle_dir, rel)) != listed[rel]]
    added = sorted(set(bundle_files(bundle_dir)) - set(listed))
    problems = [
        f"{what}: {', '.join(rels[:3])}"
        for what, rels in (("missing", missing), ("changed", changed), ("not listed", added))
        if rels
    ]
    if problems:
        return False, f"{path}: " + "; ".join(problems)
    return True, f"{len(listed)} files match their SHA-256"


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
