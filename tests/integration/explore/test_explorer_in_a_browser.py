"""src/explore.py in a real browser: Debian's headless Chromium, driven by Selenium, against the app
served on a free 127.0.0.1 port with a small trained checkpoint (``make test-browser``; ``make browser``
installs Chromium). A screenshot of the page is kept in ``$CAPSNET_TEST_ARTIFACTS`` (logs/test-artifacts).

With ``CAPSNET_EXPLORER_CKPT=<a real MNIST checkpoint>`` the same test drives that checkpoint on the
real test set instead (``make explorer-screenshot``: the README's picture).
"""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from capsnet.data.idx import read_idx
from tests.helpers import ROOT, free_port, run_in_process

selenium = pytest.importorskip("selenium", reason="the dev extra: make install")  # installed by make install
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# The probe's flags: headless as root, and no background connections (this machine has no internet).
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1700",
]
ARTIFACTS = Path(os.environ.get("CAPSNET_TEST_ARTIFACTS", ROOT / "logs" / "test-artifacts"))
TEST_IMAGE = 3
UPLOAD_LIMIT_MB = 0.05  # so that a 100 KB file is a huge upload


@pytest.fixture(scope="module")
def subject(request, tmp_path_factory):
    """(checkpoint, the data overrides, the test images file): a real checkpoint given by
    $CAPSNET_EXPLORER_CKPT, else the session's small trained CapsNet on the synthetic data."""
    real = os.environ.get("CAPSNET_EXPLORER_CKPT")
    if real:
        data_dir = Path(os.environ.get("CAPSNET_DATA_DIR", ROOT / "data"))
        return Path(real), [], data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    trained = request.getfixturevalue("trained_capsnet")
    overrides = request.getfixturevalue("data_overrides")
    data_dir = request.getfixturevalue("synthetic_data")[0]
    return trained.last, overrides, data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte"


@pytest.fixture(scope="module")
def explorer(subject, tmp_path_factory):
    """The explorer, served until the module's tests end; its URL."""
    checkpoint, overrides, _ = subject
    out = tmp_path_factory.mktemp("explore")
    port = free_port()
    command = [sys.executable, str(ROOT / "src" / "explore.py"), f"ckpt_path={checkpoint}", f"port={port}"]
    command.append(f"max_upload_mb={UPLOAD_LIMIT_MB}")
    command += [*overrides, f"hydra.run.dir={out}"]
    log = open(out / "server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the explorer did not start:\n{(out / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    said = (out / "server.log").read_text()
    assert "Traceback" not in said, said[-3000:]


@pytest.fixture(scope="module")
def browser():
    for program in (CHROMIUM, CHROMEDRIVER):
        if not program.exists():
            pytest.fail(
                f"{program} is missing: `make browser` installs Debian's chromium and chromium-driver"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _text_of_page(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def _lengths(driver) -> tuple[int, list[float]]:
    bars = driver.find_elements(By.CSS_SELECTOR, "#capsule-lengths .capsule-length")
    prediction = driver.find_element(By.CSS_SELECTOR, "#capsule-lengths [data-prediction]")
    return int(prediction.get_attribute("data-prediction")), [
        float(b.get_attribute("data-length")) for b in bars
    ]


def _image_source(driver, element_id: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"#{element_id} img").get_attribute("src")


@pytest.fixture
def screenshot(browser, request):
    """The page as the test left it, passed or failed."""
    yield
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))


def test_draw_pick_move_and_route_in_chromium(explorer, browser, screenshot, subject, tmp_path):
    checkpoint, _, test_images = subject
    wait = WebDriverWait(browser, 60, poll_frequency=0.01)
    browser.get(explorer)
    # The page opens on test image 0, analysed.
    wait.until(lambda d: "Test image 0" in _text(d, "message"))
    assert len(_lengths(browser)[1]) == 10

    # A huge upload (over max_upload_mb): Gradio's own message in the page, before anything is sent.
    browser.find_element(By.ID, "upload-tab-button").click()
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "huge.png")  # ~270 KB
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "huge.png"))
    wait.until(lambda d: 'exceed the maximum allowed size of 51.2 Kb: "huge.png"' in _text_of_page(d))
    assert "Test image 0" in _text(browser, "message")  # nothing was analysed
    # Not an image: a message in the page, and the server goes on serving (below).
    (tmp_path / "notes.png").write_text("not an image")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "notes.png"))
    wait.until(lambda d: "notes.png: not an image Pillow can read" in _text(d, "message"))

    # A stroke on the canvas: read as predict reads an image, and analysed.
    browser.find_element(By.ID, "canvas-tab-button").click()
    browser.find_element(By.CSS_SELECTOR, "#canvas button[aria-label=Brush]").click()
    canvas = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#canvas canvas"))[-1]
    stroke = ActionChains(browser).move_to_element(canvas).move_by_offset(-10, -70).click_and_hold()
    stroke.move_by_offset(25, 0).move_by_offset(0, 140).release().perform()
    wait.until(lambda d: "Drawn digit" in _text(d, "message"))
    assert "centred as MNIST" in _text(browser, "message") and len(_lengths(browser)[1]) == 10

    # A test image, and src/predict.py on the same image saved as a PNG: the same prediction and lengths.
    browser.find_element(By.ID, "test-tab-button").click()
    index = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#test-index input"))
    index.clear()
    index.send_keys(str(TEST_IMAGE))
    browser.find_element(By.ID, "show-test-image").click()
    wait.until(lambda d: f"Test image {TEST_IMAGE} " in _text(d, "message"))
    prediction, lengths = _lengths(browser)
    assert len(lengths) == 10 and prediction == int(np.argmax(lengths))
    Image.fromarray(read_idx(test_images)[TEST_IMAGE]).save(tmp_path / "test_image.png")
    predicted = run_in_process(
        "predict", [f"ckpt_path={checkpoint}", f"input={tmp_path / 'test_image.png'}"], tmp_path / "predict"
    )
    assert predicted.code == 0, predicted.output[-2000:]
    (result,) = predicted.value
    assert prediction == result.label
    assert lengths == pytest.approx(result.scores, abs=1.5e-4)  # both rounded to 4 decimals

    # A pose slider: the decoder's picture changes, and says how long the decode took.
    before = _image_source(browser, "moved")
    slider = browser.find_element(By.CSS_SELECTOR, "#pose-3 input[type=range]")
    started = time.perf_counter()
    ActionChains(browser, duration=0).click_and_hold(slider).move_by_offset(45, 0).release().perform()
    wait.until(lambda d: _image_source(d, "moved") != before)
    round_trip = time.perf_counter() - started
    assert (
        float(browser.find_element(By.CSS_SELECTOR, "#pose-3 input[type=number]").get_attribute("value")) > 0
    )
    decode_ms = float(re.fullmatch(r"decoded in (\d+\.\d) ms", _text(browser, "decode-time")).group(1))
    print(f"slider move to a new picture in the browser: {round_trip:.3f} s; decode {decode_ms} ms")
    assert round_trip < 5  # a loose bound against a hang; the figures above are the measurement

    # The routing heat maps, one map a capsule type.
    before = _image_source(browser, "routing")
    next(
        b for b in browser.find_elements(By.CSS_SELECTOR, "#routing-view label") if "one map" in b.text
    ).click()
    wait.until(lambda d: _image_source(d, "routing") != before)
