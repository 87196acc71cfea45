"""The ``label`` tier: the real MONAI Label server started by ``medkit label-server`` on 127.0.0.1, all five
bundles, a studies folder of synthetic images of each kind (and a few real ones where ``MEDKIT_DATA`` is set),
``/info``, ``/infer`` for every bundle, failed requests, and one ``/train`` of two epochs; then the server stops.

``.venv-label`` is built with ``bash scripts/setup.sh --label`` when it is missing (a few minutes). Excluded from
the default run; ``.venv/bin/python -m pytest -m label`` runs it (``.ci/run`` does).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tests.conftest import BUNDLES, REPO
from tests.label.studies import IMAGES, NRRD, SERIES, add_real_images, write_studies

# the first test's setup may build .venv-label (about 5 min) and start the server: more than the default 600 s
pytestmark = [pytest.mark.label, pytest.mark.timeout(1800)]

LABEL_VENV = os.path.join(REPO, ".venv-label")
NAMES = ["pneumonia", "covid", "brain_mri_classification", "brain_mri_segmentation", "abdominal_trauma"]
TYPES = {name: "segmentation" if name == "brain_mri_segmentation" else "classification" for name in NAMES}
START_TIMEOUT = 300


def _channel_names(bundle: str) -> list[str]:
    with open(os.path.join(BUNDLES, bundle, "configs", "metadata.json")) as f:
        channel_def = json.load(f)["network_data_format"]["outputs"]["pred"]["channel_def"]
    return [channel_def[str(i)] for i in range(len(channel_def))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: dict | None = None, timeout: float = 300) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def label_venv() -> str:
    """``.venv-label``, built by the project's script when missing."""
    medkit = os.path.join(LABEL_VENV, "bin", "medkit")
    if not os.path.isfile(medkit):
        subprocess.run(["bash", os.path.join(REPO, "scripts", "setup.sh"), "--label"], cwd=REPO, check=True)
    return medkit


@pytest.fixture(scope="module")
def server(label_venv, tmp_path_factory) -> dict:
    """``medkit label-server`` with the five bundles on a free port of 127.0.0.1; stopped after the module."""
    work = tmp_path_factory.mktemp("label")
    studies = write_studies(str(work / "studies"))
    real = add_real_images(studies, os.environ["MEDKIT_DATA"]) if os.environ.get("MEDKIT_DATA") else {}
    port = _free_port()
    log = open(work / "server.log", "w")
    cmd = [
        label_venv,
        "label-server",
        *NAMES,
        "--studies",
        studies,
        "--app-dir",
        str(work / "app"),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + START_TIMEOUT
    info = None
    while time.time() < deadline and proc.poll() is None:
        try:
            status, body = _request(f"{url}/info/", timeout=10)
            if status == 200:
                info = json.loads(body)
                break
        except OSError:
            pass
        time.sleep(2)
    try:
        if info is None:
            pytest.fail(f"the server did not answer in {START_TIMEOUT} s; its log: {work / 'server.log'}")
        yield {"url": url, "info": info, "studies": studies, "app": str(work / "app"), "real": real}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _infer(server: dict, bundle: str, image: str, output: str = "json") -> tuple[int, bytes]:
    query = urllib.parse.urlencode({"image": image, "output": output})
    return _request(f"{server['url']}/infer/{bundle}?{query}", method="POST")


def _check_classifier(bundle: str, result: dict) -> None:
    names = _channel_names(bundle)
    probs = result["probabilities"]
    assert list(probs) == names
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    threshold = result["threshold"]
    if threshold is None:
        assert result["label"] == max(probs, key=probs.get)
    else:  # a two-class bundle decides on its positive class's probability at its own threshold
        assert result["label"] == (names[1] if probs[names[1]] >= threshold else names[0])


def test_info_lists_every_bundle_under_its_name(server):
    info = server["info"]
    assert sorted(info["models"]) == sorted(NAMES)
    for name, model in info["models"].items():
        assert model["type"] == TYPES[name], name
        assert model["dimension"] == (3 if name == "abdominal_trauma" else 2), name
        expected = [n.lower() for n in _channel_names(name) if n.lower() != "background"]
        assert sorted(model["labels"], key=model["labels"].get) == expected, name
    assert list(info["trainers"]) == ["brain_mri_segmentation"]
    assert info["datastore"]["total"] >= 28  # .jpeg, .png, .tif, .nii.gz and .nrrd files all listed


@pytest.mark.parametrize("bundle", ["pneumonia", "covid", "brain_mri_classification"])
def test_classifiers_give_probabilities_and_the_label_at_the_bundle_threshold(server, bundle):
    status, body = _infer(server, bundle, IMAGES[bundle])
    assert status == 200, body
    result = json.loads(body)
    _check_classifier(bundle, result)
    if bundle == "brain_mri_classification":
        assert result["threshold"] == pytest.approx(0.1104495)


def test_segmenter_mask_is_medkit_infers(server, tmp_path):
    """The mask MONAI Label gets is the slice's size, 0/1, and the one ``medkit infer`` writes (two-stage)."""
    from click.testing import CliRunner
    from PIL import Image

    from medkit.cli.main import cli

    bundle = "brain_mri_segmentation"
    status, body = _infer(server, bundle, IMAGES[bundle], output="image")
    assert status == 200, body
    (tmp_path / "mask.png").write_bytes(body)
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    assert mask.shape == (64, 64) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    status, body = _infer(server, bundle, IMAGES[bundle])
    result = json.loads(body)
    assert result["tumour_pixels"] == int(mask.sum()) and 0 <= result["tumour_probability"] <= 1
    image = os.path.join(server["studies"], IMAGES[bundle] + ".tif")
    out = tmp_path / "infer"
    ran = CliRunner().invoke(cli, ["infer", os.path.join(BUNDLES, bundle), image, "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    expected = np.asarray(Image.open(out / "masks" / f"{IMAGES[bundle]}_mask.png")) > 0
    np.testing.assert_array_equal(mask, expected.astype(np.uint8))


@pytest.mark.parametrize("image", [IMAGES["abdominal_trauma"], NRRD, SERIES], ids=["nifti", "nrrd", "dicom_series"])
def test_trauma_gives_per_target_probabilities(server, image):
    path = image if image != SERIES else os.path.join(server["studies"], SERIES)  # a series is asked for by path
    status, body = _infer(server, "abdominal_trauma", path)
    assert status == 200, body
    result = json.loads(body)
    assert list(result["probabilities"]) == _channel_names("abdominal_trauma")
    assert sorted(result["targets"]) == ["bowel", "extravasation", "kidney", "liver", "spleen"]
    for target, classes in result["targets"].items():
        assert sum(classes.values()) == pytest.approx(1.0, abs=1e-4), target


def test_failed_requests_answer_with_the_reason(server):
    status, body = _infer(server, "pneumonia", IMAGES["abdominal_trauma"])  # a CT volume to an X-ray bundle
    assert status == 422
    detail = json.loads(body)["detail"]
    assert detail.startswith(os.path.join(server["studies"], "ct_1.nii.gz") + ": ") and "\n" not in detail
    status, body = _infer(server, "abdominal_trauma", IMAGES["covid"])  # a PNG to the CT bundle
    assert status == 422 and "COVID-1.png: " in json.loads(body)["detail"]
    status, body = _infer(server, "covid", "no_such_image")
    assert status == 404 and "no_such_image" in json.loads(body)["detail"]
    status, body = _infer(server, "no_such_bundle", IMAGES["covid"])
    assert status == 404 and "no_such_bundle" in json.loads(body)["detail"]


def test_real_images(server):
    """Where MEDKIT_DATA is set: a real pneumonia X-ray, COVID radiograph, tumour slice and CT are predicted."""
    real = server["real"]
    if not real:
        pytest.skip("MEDKIT_DATA is not set to the real data folder")
    for bundle, image in real.items():
        status, body = _infer(server, bundle, image)
        assert status == 200, (bundle, body)
        result = json.loads(body)
        if bundle in ("pneumonia", "covid"):
            _check_classifier(bundle, result)
            assert result["label"] == {"pneumonia": "PNEUMONIA", "covid": "COVID"}[bundle]
        elif bundle == "brain_mri_segmentation":
            assert result["segmented"] and result["tumour_pixels"] > 100
        else:
            assert all(sum(c.values()) == pytest.approx(1.0, abs=1e-4) for c in result["targets"].values())


def test_train_two_epochs_writes_the_model_and_reports_the_metric(server):
    model = os.path.join(server["app"], "model", "brain_mri_segmentation", "models", "model.pt")
    before = os.path.getmtime(model)
    status, body = _request(
        f"{server['url']}/train/brain_mri_segmentation", "POST", {"max_epochs": 2, "device": "cpu", "val_split": 0.34}
    )
    assert status == 200, body
    deadline = time.time() + 600
    while time.time() < deadline:
        status, body = _request(f"{server['url']}/train/")
        task = json.loads(body)
        if task["status"] not in ("SUBMITTED", "RUNNING"):
            break
        time.sleep(2)
    assert task["status"] == "DONE", "\n".join(task.get("details", []))
    stats = json.loads(_request(f"{server['url']}/info/")[1])["train_stats"]["brain_mri_segmentation"]
    assert stats["key_metric"] == "val_dice_patient" and 0.0 <= stats["best_metric"] <= 1.0
    assert stats["epochs"] == 2 and stats["validation_patients"] == ["TCGA_XX_0002"]
    assert os.path.getmtime(model) > before
    status, body = _infer(server, "brain_mri_segmentation", IMAGES["brain_mri_segmentation"])
    assert status == 200, body  # the server infers with what it trained
