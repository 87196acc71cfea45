"""A client of ``medkit serve`` from the standard library alone: upload a file, start a server on a free loopback
port and wait for it. Used by the load test (``scripts/benchmark_serve.py``) and the end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

__all__ = ["multipart", "post_file", "free_port", "wait_until_up", "running_server"]


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file field ``file``; returns ``(body, content type)``."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_file(url: str, name: str, data: bytes, timeout: float = 300) -> tuple[int, dict]:
    """POST one upload; returns ``(status, JSON answer)``."""
    body, content_type = multipart(name, data)
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    """Wait until ``url`` answers (the server has loaded its bundles).

    Raises:
        RuntimeError: the process ended or the time ran out first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"medkit serve ended with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise RuntimeError(f"{url}: no answer within {timeout:.0f} s")


@contextlib.contextmanager
def running_server(
    bundles: list[str], port: int, log_path: str | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``medkit serve BUNDLES --port PORT`` in a process of its own, up and answering; yields its base URL and
    stops it (SIGTERM to its own process id) on the way out. ``env``: variables set for it."""
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 (closed below)
    cmd = [sys.executable, "-m", "medkit.cli.main", "serve", *bundles, "--port", str(port)]
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/bundles", process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
