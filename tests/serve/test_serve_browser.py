"""End to end, behind the ``browser`` marker (``.ci/run`` runs it): ``medkit serve`` in a process of its own on a
free loopback port, driven by headless Chromium (Debian's ``chromium`` and ``chromium-driver`` through Selenium;
nothing downloaded), and a load burst over 127.0.0.1 with every answer checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import BUNDLES, REPO
from tests.serve.conftest import SERVED

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCRIPT = os.path.join(REPO, "scripts", "benchmark_serve.py")

#: per bundle, the upload the page gets and whether it shows a slider (several slices)
UPLOADS = {
    "pneumonia": ("png", False),
    "covid": ("jpeg", False),
    "brain_mri_classification": ("tiff_zip", True),
    "brain_mri_segmentation": ("tiff_zip", True),
    "abdominal_trauma": ("nifti", True),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``medkit serve`` over every bundle, up and answering: its base URL."""
    from medkit.serve.client import free_port, running_server

    log = str(tmp_path_factory.mktemp("serve_log") / "serve.log")
    with running_server([os.path.join(BUNDLES, b) for b in SERVED], free_port(), log) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Selenium, Debian's binaries; skipped where they are absent."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(f"no Chromium here ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _upload(driver, base: str, bundle: str, path: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(base + "/")
    WebDriverWait(driver, 30).until(lambda d: len(Select(d.find_element(By.ID, "bundle")).options) == len(SERVED))
    Select(driver.find_element(By.ID, "bundle")).select_by_value(bundle)
    driver.find_element(By.ID, "file").send_keys(path)
    WebDriverWait(driver, 180).until(
        lambda d: d.find_element(By.ID, "verdict").text or d.find_element(By.ID, "error").text
    )


@pytest.mark.parametrize("bundle", SERVED)
def test_page_shows_the_prediction(server, browser, inputs, tmp_path, bundle):
    """Pick the bundle, upload a real-format file, read the verdict the page shows: the API's own label, with
    probability bars, the image, its Grad-CAM or mask outline and, for several slices, a slider."""
    from selenium.webdriver.common.by import By

    from medkit.serve.client import post_file

    kind, slider = UPLOADS[bundle]
    name, data = inputs[kind]
    path = tmp_path / name
    path.write_bytes(data)
    _upload(browser, server, bundle, str(path))
    assert browser.find_element(By.ID, "error").text == ""
    verdict = browser.find_element(By.ID, "verdict").text
    status, answer = post_file(f"{server}/api/predict/{bundle}", name, data)
    assert status == 200 and verdict == answer["items"][0]["label"]
    assert "not a medical device" in browser.find_element(By.ID, "notice").text
    assert browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    image = browser.find_element(By.ID, "image")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
    if bundle != "abdominal_trauma":  # Grad-CAM or the mask outline; the CT bundle has neither
        overlay = browser.find_element(By.ID, "overlay")
        assert browser.execute_script("return arguments[0].naturalWidth", overlay) > 0
    assert browser.find_element(By.ID, "slider-box").is_displayed() == slider
    if slider:  # the slider walks the slices
        last = int(browser.find_element(By.ID, "slider").get_attribute("max"))
        browser.execute_script(
            "const s = document.getElementById('slider'); s.value = arguments[0];s.dispatchEvent(new Event('input'));",
            last,
        )
        assert browser.find_element(By.ID, "slice-label").text.startswith(f"{last + 1} of")
    assert browser.find_element(By.ID, "download-csv").get_attribute("href").startswith("data:text/csv")
    shots = os.environ.get("MEDKIT_SCREENSHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    assert browser.save_screenshot(os.path.join(shots, f"serve_{bundle}.png"))


def test_page_shows_the_one_line_error(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    _upload(browser, server, "pneumonia", str(path))
    error = browser.find_element(By.ID, "error").text
    assert error.startswith("notes.txt: not a PNG") and "Traceback" not in browser.page_source


def test_load_burst_every_answer_right(server, inputs, tmp_path):
    """200 uploads, 16 at a time, over 127.0.0.1 to the running server: every answer is the one a lone request
    gets (the script exits 1 otherwise); the figures are printed for the README."""
    name, data = inputs["png"]
    image = tmp_path / name
    image.write_bytes(data)
    out = tmp_path / "load.json"
    cmd = [sys.executable, SCRIPT, "--url", server, "--bundle", "pneumonia", "--image", str(image)]
    proc = subprocess.run(
        [*cmd, "--requests", "200", "--concurrency", "16", "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["ok"] == 200 and figures["wrong"] == 0 and figures["label"]
    print(f"load: {figures['requests_per_s']} requests/s, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")


def test_stopping_deletes_the_temporary_folder(inputs, tmp_path):
    """SIGTERM ends the server cleanly: its temporary folder (uploads, outputs) is gone."""
    from medkit.serve.client import free_port, post_file, running_server

    tmp = tmp_path / "tmp"
    tmp.mkdir()

    def folders() -> list[str]:  # the server's own (libraries may leave files of theirs in TMPDIR too)
        return [p.name for p in tmp.iterdir() if p.name.startswith("medkit-serve-")]

    with running_server([os.path.join(BUNDLES, "pneumonia")], free_port(), env={"TMPDIR": str(tmp)}) as base:
        assert len(folders()) == 1, list(tmp.iterdir())
        assert post_file(f"{base}/api/predict/pneumonia", *inputs["png"])[0] == 200
    assert folders() == []
