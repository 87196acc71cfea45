"""``medkit serve`` on the command line: its options, the missing extra and bad bundles as one line; upload
helpers."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from medkit.cli.main import cli


def test_missing_extra_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    result = CliRunner().invoke(cli, ["serve", "pneumonia"])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: medkit serve needs fastapi: install the serve extra (pip install -e '.[serve]')"
    )


def test_bad_bundle_and_port_are_one_line(tmp_path):
    pytest.importorskip("fastapi")
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a bundle" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["serve", "pneumonia", "--port", "70000"])
    assert result.exit_code == 1 and "--port" in result.output


def test_help_names_the_loopback_default():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output and "not a medical device" in result.output


def test_loopback_hosts():
    from medkit.serve.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_safe_names_and_kinds(tmp_path):
    from medkit.serve.uploads import safe_name, sniff_kind

    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\x\\scan 1.dcm") == "scan_1.dcm"
    assert safe_name("..hidden") == "hidden" and safe_name("///") == "upload"
    cases = {
        "a.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 400,
        "a.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 400,
        "a.tif": b"II*\x00" + b"\0" * 400,
        "a.dcm": b"\0" * 128 + b"DICM" + b"\0" * 300,
        "a.nii": b"\0" * 344 + b"n+1\x00" + b"\0" * 8,
        "a.nii.gz": b"\x1f\x8b\x08" + b"\0" * 400,
        "a.zip": b"PK\x03\x04" + b"\0" * 400,
        "a.gz": b"\x1f\x8b\x08" + b"\0" * 400,
        "a.txt": b"hello",
    }
    kinds = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        kinds[name] = sniff_kind(str(tmp_path / name), name)
    assert kinds == {
        "a.png": "png",
        "a.jpg": "jpeg",
        "a.tif": "tiff",
        "a.dcm": "dicom",
        "a.nii": "nifti",
        "a.nii.gz": "nifti.gz",
        "a.zip": "zip",
        "a.gz": None,
        "a.txt": None,
    }
