"""End to end in a real browser: `streamlit run app.py`, headless Chromium, upload a photo on Compare.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the
``selenium`` package.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FACEDET_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEDET_CHROMEDRIVER", "/usr/bin/chromedriver")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(weights_dir, tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("streamlit") / "server.log", "w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within a minute")
        if server.poll() is not None:
            log.seek(0)
            pytest.fail(f"streamlit exited: {log.read()[-2000:]}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver (see .ci/run)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--window-size=1600,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds, what):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.5).until(condition)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        pytest.fail(f"timed out waiting for {what}; the page shows:\n{body[-1500:]}")


def test_upload_a_photo_on_compare_and_see_both_annotated_results(app_url, browser, assets_dir, tmp_path):
    from selenium.webdriver.common.by import By

    photo = tmp_path / "my upload.png"  # a name that is not a sample's, with a space
    shutil.copy(assets_dir / "astronaut.png", photo)

    browser.get(f"{app_url}/Compare")
    upload = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type='file']"),
                   120, "the upload field")[0]
    upload.send_keys(str(photo))

    def both_results_of_the_upload(driver):
        text = driver.find_element(By.TAG_NAME, "body").text
        images = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")
        loaded = [i for i in images if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
        return len(loaded) == 2 and "the full 512×512 photo" in text and "Found by both:" in text and loaded

    images = _wait(browser, both_results_of_the_upload, 300, "both annotated results of the uploaded photo")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Original: EResFD" in text and "Pruned: EResFD FPGM 10 %" in text
    # Same display size on both sides, and the annotated pictures are the photo's shape (square).
    sizes = [(i.size["width"], i.size["height"]) for i in images]
    assert sizes[0] == sizes[1] and abs(sizes[0][0] - sizes[0][1]) <= 2
    assert browser.find_elements(By.XPATH, "//*[contains(text(), 'found by both models')]")


def test_a_deep_link_opens_its_comparison_and_the_address_follows(app_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{app_url}/Compare?arch=eresfd&source=published&criterion=l1&rate=30&sample=grace_hopper.jpg")
    _wait(browser, lambda d: "Pruned: EResFD L1 30 %" in d.find_element(By.TAG_NAME, "body").text
          and "the full 512×600 photo" in d.find_element(By.TAG_NAME, "body").text, 300, "the linked comparison")
    # The address now names every choice of the comparison shown (the defaults filled in).
    _wait(browser, lambda d: "threshold=0.50" in d.current_url and "rate=30" in d.current_url, 30, "the updated address")
    assert "criterion=l1" in browser.current_url and "sample=grace_hopper.jpg" in browser.current_url
