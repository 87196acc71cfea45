"""Load network weights from a local file or a URL with a known hash (no hub downloads at run time)."""

from __future__ import annotations

import hashlib
import logging
import os
from urllib.parse import urlparse

import torch

from medkit.errors import InputFileError, MedkitError

__all__ = ["load_pretrained", "sha256_of"]

logger = logging.getLogger(__name__)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(source: str, sha256: str | None, cache_dir: str | None) -> str:
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else source
        if not os.path.isfile(path):
            raise InputFileError(path, "weights file not found")
        if sha256 and sha256_of(path) != sha256.lower():
            raise InputFileError(path, f"SHA-256 mismatch (expected {sha256})")
        return path
    if not sha256:
        raise MedkitError(f"{source}: a URL needs its SHA-256 (pretrained_sha256) so the download can be checked")
    from monai.apps import download_url

    cache_dir = cache_dir or os.path.join(
        os.environ.get("MEDKIT_CACHE", os.path.expanduser("~/.cache/medkit")), "weights"
    )
    target = os.path.join(cache_dir, f"{sha256[:16]}-{os.path.basename(parsed.path) or 'weights.pt'}")
    download_url(source, target, hash_val=sha256, hash_type="sha256", progress=False)
    return target


def load_pretrained(
    network: torch.nn.Module,
    source: str,
    sha256: str | None = None,
    strict: bool = False,
    cache_dir: str | None = None,
    prefix: str = "",
) -> torch.nn.Module:
    """Load weights into ``network`` from a checkpoint path or URL, skipping tensors whose shape differs.

    Checkpoints saved by a bundle (``{"model": state_dict}`` or a bare state dict) both work. With
    ``strict=False`` layers that do not fit (a classifier head with another number of classes) keep their
    initial values, which is how one bundle's model starts another's training (transfer learning).

    Args:
        network: the network to fill (inside its ``DistributedDataParallel`` wrapper, if any); returned for chaining.
        source: local path, ``file://`` URL, or ``http(s)://`` URL (then ``sha256`` is required).
        sha256: expected SHA-256 of the file; checked whenever given.
        strict: require every tensor to match in name and shape.
        cache_dir: where downloads are kept.
        prefix: load only the checkpoint's tensors whose names start with this, without it (``"segmenter."``: a
            part of a bigger network's checkpoint into that part).

    Raises:
        InputFileError: the file is missing, fails its hash or is not a checkpoint.
        MedkitError: a strict load found missing, unexpected or mis-shaped tensors.
    """
    path = _fetch(source, sha256, cache_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputFileError(path, f"not a PyTorch checkpoint ({type(e).__name__})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise InputFileError(path, "checkpoint holds no state dict")
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    target = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    own = target.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = sorted(set(own) - set(fitting))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise MedkitError(f"{path}: does not fit the network (missing {missing[:3]}, unexpected {unexpected[:3]})")
    target.load_state_dict(fitting, strict=False)
    logger.info(
        "loaded %d of %d tensors from %s (%d kept their initial values)", len(fitting), len(own), path, len(missing)
    )
    return network
