"""The web API over every bundle, through FastAPI's test client: the answers equal ``medkit infer``'s, and every bad
upload gets a 4xx with one line, nothing left behind."""

from __future__ import annotations

import csv
import io
import os
import struct
import threading
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from tests.serve.conftest import SERVED, png_bytes, zip_bytes

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")

#: a real-format input each bundle takes, and the page's verdicts it may give
GOOD = {
    "pneumonia": ["png", "jpeg", "dicom"],
    "covid": ["png", "dicom"],
    "brain_mri_classification": ["tiff", "tiff_zip"],
    "brain_mri_segmentation": ["tiff", "tiff_zip"],
    "abdominal_trauma": ["nifti", "dicom_zip"],
}


def post(client, bundle: str, name: str, data: bytes, explain: bool = False, route: str = "predict"):
    query = "?explain=true" if explain else ""
    return client.post(f"/api/{route}/{bundle}{query}", files={"file": (name, data)})


def assert_clean(work_dir: str) -> None:
    """Nothing of a request stays: no upload folder, no output file."""
    left = [os.path.join(d, f) for d, _, files in os.walk(work_dir) for f in files]
    assert left == [], left
    assert os.listdir(os.path.join(work_dir, "uploads")) == []


def test_bundles_lists_each_bundle(served):
    client, services, _ = served
    data = client.get("/api/bundles").json()
    assert [b["name"] for b in data["bundles"]] == SERVED
    assert "not a medical device" in data["notice"]
    by_name = {b["name"]: b for b in data["bundles"]}
    assert by_name["pneumonia"]["labels"] == ["NORMAL", "PNEUMONIA"] and by_name["pneumonia"]["explains"]
    assert by_name["brain_mri_segmentation"]["task"] == "segmentation"
    assert by_name["abdominal_trauma"]["task"] == "trauma" and "NIfTI" in " ".join(
        by_name["abdominal_trauma"]["inputs"]
    )


def test_page_is_served_with_its_notice(served):
    client, _, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "Research use only; not a medical device" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "/api/predict/" in script.text


@pytest.mark.parametrize("bundle,kind", [(b, k) for b, kinds in GOOD.items() for k in kinds])
def test_predict_every_bundle_and_format(served, inputs, bundle, kind):
    client, services, work_dir = served
    name, data = inputs[kind]
    response = post(client, bundle, name, data, explain=services[bundle].describe()["explains"])
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["bundle"] == bundle and result["n_failed"] == 0 and result["items"]
    for item in result["items"]:
        assert item["error"] == "" and item["label"] and item["images"][0].startswith("data:image/png;base64,")
        if bundle == "brain_mri_segmentation":
            assert item["mask"].startswith("data:image/png") and item["overlays"] and item["tumour_pixels"] >= 0
        elif bundle == "abdominal_trauma":
            assert len(item["probabilities"]) == 13 and len(item["images"]) == 52  # the network input's axial slices
        else:
            probs = item["probabilities"]
            assert list(probs) == services[bundle].class_names and sum(probs.values()) == pytest.approx(1, abs=1e-4)
            assert item["label"] in probs and item["overlays"][0].startswith("data:image/png")  # Grad-CAM
    assert work_dir not in response.text  # no server path reaches the client
    if kind.endswith("zip"):
        slices = [i["slice"] for i in result["items"]]
        assert len(slices) > 1 or bundle == "abdominal_trauma"
    assert_clean(work_dir)


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    "bundle,kind", [("pneumonia", "png"), ("brain_mri_segmentation", "tiff_zip"), ("abdominal_trauma", "nifti")]
)
def test_answers_equal_medkit_infer(served, inputs, tmp_path, bundle, kind):
    """The server runs the bundle's own inference workflow: its table is ``medkit infer``'s, row for row."""
    from medkit.cli.main import cli

    client, _, _ = served
    name, data = inputs[kind]
    response = post(client, bundle, name, data)
    assert response.status_code == 200, response.text
    if kind == "tiff_zip":
        given = inputs["_paths"][1].decode()  # the patient folder that was zipped
    else:
        given = str(tmp_path / name)
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "infer"
    result = CliRunner().invoke(cli, ["infer", bundle, given, "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = _rows((out / "predictions.csv").read_text())
    served_rows = _rows(response.json()["csv"])
    assert len(served_rows) == len(expected) > 0
    for got, want in zip(served_rows, expected):
        for column in want:
            if column in ("image", "mask_file", "overlay_file"):
                assert os.path.basename(got[column]) == os.path.basename(want[column])
            else:
                assert got[column] == want[column], column


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels with almost no data (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _zip_with_link() -> bytes:
    """A zip whose member is a symbolic link to a file outside the upload folder."""
    import stat
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("case/slice_1.tif")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    return buffer.getvalue()


#: uploads every bundle refuses before or while reading: (file name, bytes, status, words of the message (or
#: alternatives))
BAD = {
    "unknown kind": ("notes.txt", b"hello, this is not an image", 415, "not a PNG"),
    "empty file": ("empty.png", b"", 400, "empty"),
    "corrupt PNG": ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 50, 422, "broken.png"),
    "truncated JPEG": ("cut.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 40, 422, "cut.jpg"),
    "corrupt NIfTI": ("scan.nii.gz", b"\x1f\x8b\x08\x00" + b"junk" * 30, 422, "scan"),
    # refused from its header before decoding (the CT bundle refuses any PNG before that)
    "decompression bomb": (
        "bomb.png",
        _png_header_only(30000, 30000),
        422,
        ("exceeds the limit", "not a DICOM series"),
    ),
    "zip slip": ("slip.zip", zip_bytes({"../evil.png": b"x"}), 400, "leave the upload folder"),
    "absolute member": ("abs.zip", zip_bytes({"/etc/evil.png": b"x"}), 400, "absolute path"),
    "link member": ("link.zip", _zip_with_link(), 400, "is a link"),
    "unreadable zip": ("bad.zip", b"PK\x03\x04" + b"\0" * 64, 400, "not a readable zip"),
    "zip without images": ("notes.zip", zip_bytes({"a/readme.txt": b"text"}), 422, ("no image", "no readable DICOM")),
}


@pytest.mark.parametrize("bundle", SERVED)
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_uploads_get_one_line(served, bundle, bad):
    client, _, work_dir = served
    name, data, status, words = BAD[bad]
    response = post(client, bundle, name, data)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    words = (words,) if isinstance(words, str) else words
    assert any(w in message for w in words), message
    assert "\n" not in message and "Traceback" not in response.text
    assert work_dir not in message
    assert_clean(work_dir)


@pytest.mark.parametrize(
    "bundle,kind,words",
    [
        ("pneumonia", "nifti", "scan_7"),  # a CT volume to an X-ray bundle
        ("pneumonia", "tiff", ""),  # an MRI slice (3 channels) to an X-ray bundle
        ("covid", "tiff", ""),
        ("brain_mri_classification", "png", "chest.png"),  # a radiograph to the brain bundles
        ("brain_mri_segmentation", "png", "chest.png"),
        ("abdominal_trauma", "png", "chest.png"),  # a radiograph to the CT bundle
        ("abdominal_trauma", "dicom", "chest"),
    ],
)
def test_wrong_kind_of_image_is_refused(served, inputs, bundle, kind, words):
    client, _, work_dir = served
    name, data = inputs[kind]
    response = post(client, bundle, name, data)
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert words in message and "\n" not in message and work_dir not in message
    assert_clean(work_dir)


def test_ct_dicom_to_an_xray_bundle_names_the_modality(served):
    from pydicom.data import get_testdata_file

    client, _, _ = served
    with open(get_testdata_file("CT_small.dcm"), "rb") as f:
        response = post(client, "pneumonia", "CT_small.dcm", f.read())
    assert response.status_code == 422 and "CT" in response.json()["error"]


def test_request_level_refusals(served, inputs):
    client, _, work_dir = served
    assert client.get("/api/predict/pneumonia").status_code == 405
    missing = post(client, "nosuch", *inputs["png"])
    assert missing.status_code == 404 and "nosuch" in missing.json()["error"]
    raw = client.post("/api/predict/pneumonia", content=inputs["png"][1], headers={"content-type": "image/png"})
    assert raw.status_code == 400 and "multipart" in raw.json()["error"]
    no_file = client.post("/api/predict/pneumonia", data={"note": "x"}, files={"other": ("", b"")})
    assert no_file.status_code == 400
    gradcam_less = post(client, "abdominal_trauma", *inputs["nifti"], route="explain")
    assert gradcam_less.status_code == 422 and "Grad-CAM" in gradcam_less.json()["error"]
    assert_clean(work_dir)


def test_limits_refuse_large_uploads_and_zip_bombs(served, inputs, tmp_path):
    from fastapi.testclient import TestClient

    from medkit.serve.app import create_app
    from medkit.serve.uploads import UploadLimits

    _, services, _ = served
    work_dir = str(tmp_path / "work")
    limits = UploadLimits(max_bytes=200_000, max_zip_members=5, max_unpacked_bytes=100_000)
    client = TestClient(create_app(services, work_dir, limits))
    noise = np.random.default_rng(0).integers(0, 255, (600, 600), dtype=np.uint8)
    big = post(client, "pneumonia", "big.png", png_bytes(noise))
    assert big.status_code == 413 and "larger than the 0.2 MiB allowed" in big.json()["error"]
    many = post(client, "pneumonia", "many.zip", zip_bytes({f"{i}.png": inputs["png"][1] for i in range(6)}))
    assert many.status_code == 413 and "6 members" in many.json()["error"]
    bomb = post(client, "pneumonia", "bomb.zip", zip_bytes({"a.png": inputs["png"][1], "zeros.dcm": b"\0" * 5_000_000}))
    assert bomb.status_code == 413 and "unpacks to more than" in bomb.json()["error"]
    assert len(bomb.request.content) < 200_000  # the zip itself was small
    assert os.listdir(os.path.join(work_dir, "uploads")) == []


def test_explain_returns_the_gradcam_png(served, inputs):
    client, _, _ = served
    response = post(client, "pneumonia", *inputs["png"], route="explain")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    outline = post(client, "brain_mri_segmentation", *inputs["tiff"], route="explain")
    assert outline.status_code == 200 and outline.content.startswith(b"\x89PNG")
    beyond = client.post("/api/explain/pneumonia?index=3", files={"file": inputs["png"]})
    assert beyond.status_code == 400 and "1 input" in beyond.json()["error"]


def test_a_server_fault_is_one_line_without_traceback(served, inputs, monkeypatch):
    client, services, work_dir = served

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(services["pneumonia"], "predict", broken)
    response = post(client, "pneumonia", *inputs["png"])
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError (see the server's log)"}
    assert_clean(work_dir)


def test_concurrent_requests_get_their_own_answers(served, inputs):
    """Requests to one bundle from several threads at once: each answer is the one it gets alone."""
    client, _, work_dir = served
    kinds = ["png", "jpeg", "dicom"]
    alone = {k: post(client, "pneumonia", *inputs[k]).json()["items"][0]["probabilities"] for k in kinds}
    answers: list[tuple[str, int, dict]] = []

    def worker(k: str) -> None:
        for _ in range(3):
            r = post(client, "pneumonia", *inputs[k])
            answers.append((k, r.status_code, r.json()["items"][0]["probabilities"]))

    threads = [threading.Thread(target=worker, args=(kinds[i % 3],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 18
    for k, status, probs in answers:
        assert status == 200 and probs == alone[k]
    assert_clean(work_dir)


def test_a_bad_file_in_a_zip_is_reported_and_the_rest_predicted(served, inputs):
    client, _, work_dir = served
    upload = zip_bytes({"case/good.png": inputs["png"][1], "case/broken.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 64})
    response = post(client, "pneumonia", "mixed.zip", upload)
    assert response.status_code == 200, response.text
    result = response.json()
    by_name = {i["name"]: i for i in result["items"]}
    assert result["n_failed"] == 1 and set(by_name) == {"mixed/case/good.png", "mixed/case/broken.png"}
    assert by_name["mixed/case/broken.png"]["error"].startswith("mixed/case/broken.png: ")
    assert by_name["mixed/case/good.png"]["label"] in ("NORMAL", "PNEUMONIA")
    assert_clean(work_dir)


def test_weights_are_loaded_once(served, inputs, monkeypatch):
    """No request reads a model file again: with torch.load broken, every bundle still answers."""
    import torch

    client, _, _ = served

    def no_load(*args, **kwargs):
        raise AssertionError("a request read weights again")

    monkeypatch.setattr(torch, "load", no_load)
    for bundle, kinds in GOOD.items():
        response = post(client, bundle, *inputs[kinds[0]])
        assert response.status_code == 200, response.text
