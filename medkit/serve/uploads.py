"""Uploads taken into the server's own temporary folder within limits: the kind read from the bytes, zips unpacked
member by member with their count and unpacked size capped and no member outside the folder."""

from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass

from medkit.errors import MedkitError

__all__ = [
    "UploadError",
    "UploadLimits",
    "MultipartFile",
    "sniff_kind",
    "safe_name",
    "stage_upload",
    "unpack_zip",
    "KIND_SUFFIX",
    "mib",
]

#: the suffix an upload of each kind is saved with (medkit's readers choose by it)
KIND_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "dicom": ".dcm", "nifti": ".nii", "nifti.gz": ".nii.gz"}
KINDS_TEXT = "PNG, JPEG, DICOM, TIFF, NIfTI or a zip of them"
_CHUNK = 1 << 20


def mib(n_bytes: int) -> str:
    """``n_bytes`` in MiB for messages (``"256 MiB"``, ``"0.2 MiB"``)."""
    value = n_bytes / (1 << 20)
    return f"{value:.0f} MiB" if value >= 10 or value == int(value) else f"{value:.1f} MiB"


class UploadError(MedkitError):
    """An upload refused before any model sees it; ``status`` is the HTTP status of the answer.

    Args:
        message: one line naming the upload and the problem.
        status: 400 (malformed), 413 (too large), 415 (not a supported kind).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    """What one request may bring.

    Args:
        max_bytes: the request body (the upload as sent).
        max_zip_members: entries of a zip (folders included).
        max_unpacked_bytes: a zip's members unpacked, together (counted while unpacking, not taken from the
            zip's own claims, so a decompression bomb stops there).
    """

    max_bytes: int = 256 << 20
    max_zip_members: int = 2000
    max_unpacked_bytes: int = 1 << 30


def sniff_kind(path: str, name: str = "") -> str | None:
    """The kind of a file from its first bytes: ``png``, ``jpeg``, ``tiff``, ``dicom`` (Part 10), ``nifti``,
    ``nifti.gz`` (a gzip named ``.nii.gz``), ``zip``; ``None`` for anything else."""
    with open(path, "rb") as f:
        head = f.read(352)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[128:132] == b"DICM":
        return "dicom"
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    if head.startswith(b"\x1f\x8b") and name.lower().endswith(".nii.gz"):
        return "nifti.gz"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    return None


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str, default: str = "upload") -> str:
    """One path component made of letters, digits and ``._+-`` (anything else becomes ``_``), not starting with a
    dot, at most 120 characters; ``default`` when nothing is left."""
    base = _UNSAFE.sub("_", os.path.basename(name.replace("\\", "/"))).lstrip(".")
    return base[-120:] or default


def _stem(name: str) -> str:
    lower = name.lower()
    for suffix in (".nii.gz", ".zip", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".nii"):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def stage_upload(path: str, client_name: str, folder: str, limits: UploadLimits) -> str:
    """Put an upload saved at ``path`` (inside ``folder``) where the bundle reads it: a file named after the client's
    file name with its kind's suffix, or a zip's members unpacked into ``folder/<zip name>/``.

    Returns:
        the file or folder to give the bundle.

    Raises:
        UploadError: the kind is not one medkit reads (415), a zip is unreadable or holds a member that would land
            outside its folder or a link (400), or it holds too many members or unpacks too large (413).
    """
    shown = safe_name(client_name)
    kind = sniff_kind(path, shown)
    if kind is None:
        raise UploadError(f"{shown}: not a {KINDS_TEXT} file (read from its first bytes)", 415)
    if kind == "zip":
        target = os.path.join(folder, _stem(shown))
        unpack_zip(path, target, shown, limits)
        os.remove(path)
        return target
    target = os.path.join(folder, _stem(shown) + KIND_SUFFIX[kind])
    os.replace(path, target)
    return target


def _member_parts(member: str, shown: str) -> list[str]:
    """The safe path components of a zip member; a member that is absolute or climbs out (``..``) is refused."""
    name = member.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadError(f"{shown}: member '{member}' has an absolute path; refused", 400)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UploadError(f"{shown}: member '{member}' would leave the upload folder ('..'); refused", 400)
    return [safe_name(p, "_") for p in parts]


def unpack_zip(path: str, target: str, shown: str, limits: UploadLimits) -> None:
    """Unpack the zip at ``path`` into ``target`` within ``limits``; hidden files (``.*``, ``__MACOSX``) are left out.

    Raises:
        UploadError: see ``stage_upload``.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UploadError(f"{shown}: not a readable zip ({e})", 400) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_zip_members:
            raise UploadError(f"{shown}: {len(infos)} members, more than the {limits.max_zip_members} allowed", 413)
        os.makedirs(target, exist_ok=True)
        unpacked = 0
        for info in infos:
            parts = _member_parts(info.filename, shown)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadError(f"{shown}: member '{info.filename}' is a link; refused", 400)
            raw = info.filename.replace("\\", "/").split("/")
            if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in raw):
                continue
            destination = os.path.join(target, *parts)
            if not os.path.abspath(destination).startswith(os.path.abspath(target) + os.sep):
                raise UploadError(f"{shown}: member '{info.filename}' would leave the upload folder; refused", 400)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            try:
                with archive.open(info) as src, open(destination, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        unpacked += len(chunk)
                        if unpacked > limits.max_unpacked_bytes:
                            raise UploadError(
                                f"{shown}: unpacks to more than {mib(limits.max_unpacked_bytes)}; refused", 413
                            )
                        out.write(chunk)
            except FileExistsError:
                raise UploadError(f"{shown}: member '{info.filename}' is in the zip twice; refused", 400) from None
            except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, NotImplementedError) as e:
                raise UploadError(f"{shown}: member '{info.filename}' cannot be unpacked ({e})", 400) from None


class MultipartFile:
    """Streams the first file part of a ``multipart/form-data`` body into ``folder/upload.part``, counting bytes.

    Fed chunk by chunk (``feed``) as they arrive, so an upload never sits whole in memory nor anywhere but the
    server's own folder, and a body over ``max_bytes`` is refused as soon as it passes the limit.

    Args:
        content_type: the request's ``Content-Type`` header.
        folder: the request's folder.
        max_bytes: the most bytes the body may have.

    Raises:
        UploadError: not a multipart body (400), or too large (413).
    """

    def __init__(self, content_type: str, folder: str, max_bytes: int) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        kind, options = parse_options_header(content_type or "")
        if kind != b"multipart/form-data" or b"boundary" not in options:
            raise UploadError("the upload must be multipart/form-data with a file field", 400)
        self.path = os.path.join(folder, "upload.part")
        self.max_bytes = max_bytes
        self.received = 0
        self.filename: str | None = None
        self._out = None
        self._done = False
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: setattr(self, "_field", self._field + data[start:end]),
            "on_header_value": self._header_value,
            "on_header_end": lambda: setattr(self, "_field", b""),
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(options[b"boundary"], callbacks)

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        key = self._field.lower()
        self._headers[key] = self._headers.get(key, b"") + data[start:end]

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"filename" in options and self.filename is None and not self._done:
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self._out = open(self.path, "xb")  # noqa: SIM115 (closed in _part_end or close)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])

    def _part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            self._done = True

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body."""
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise UploadError(f"the upload is larger than the {mib(self.max_bytes)} allowed", 413)
        try:
            self._parser.write(chunk)
        except Exception as e:  # python-multipart's own parse errors
            raise UploadError(f"the upload is not valid multipart/form-data ({e})", 400) from None

    def finish(self) -> tuple[str, str]:
        """End the body; returns ``(saved path, the client's file name)``.

        Raises:
            UploadError: the body held no complete file part.
        """
        self.close()
        if not self._done or self.filename is None:
            raise UploadError("the upload holds no file (send it as the multipart field 'file')", 400)
        if os.path.getsize(self.path) == 0:
            raise UploadError(f"{safe_name(self.filename)}: the file is empty", 400)
        return self.path, self.filename

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
