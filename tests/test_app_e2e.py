"""End to end in a real browser: `streamlit run app.py`, headless Chromium at 1920 x 1080 (a lab's
projector): upload a photo on Compare, open a deep link, and a presentation run through every page
with its controls and legend in view, a slider change timed, a slow detection cancelled, and no
traceback anywhere.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the
``selenium`` package. The screenshots go to ``$FACEDET_SCREENSHOTS`` (or a temporary folder; the
test prints where).
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
WIDTH, HEIGHT = 1920, 1080  # the projector


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(weights_dir, wider_gt_dir, tmp_path_factory):
    """The app on a free port, with a results store holding two runs (so that Results has a table);
    yields its address and its log (where a traceback would be written)."""
    folder = tmp_path_factory.mktemp("streamlit")
    env = dict(os.environ, PRUNING_DATA_DIR=str(folder / "data"), PRUNING_RESULTS_DB=str(folder / "results.sqlite3"))
    _store_with_runs(folder / "results.sqlite3", wider_gt_dir)
    port = _free_port()
    log_path = folder / "server.log"
    log = open(log_path, "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within a minute")
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"streamlit exited: {log.read()[-2000:]}")
        yield {"url": url, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _store_with_runs(path, wider_gt_dir):
    """A run distilled on photos and a WIDER FACE run with its evaluation's curves (a real evaluation
    of the evaluation tests' synthetic detector on the real ground truth)."""
    import json

    from facedet.wider.curves import curves_document
    from facedet.wider.evaluation import evaluate
    from facedet.wider.ground_truth import load_ground_truth
    from facedet.wider.synthetic import synthetic_predictions
    from pruning.store import ResultsStore

    store = ResultsStore(path)
    photos = store.start_run("train", {"photos": "/data/photos", "epochs": 6, "finetune_epochs": 2},
                             detector="eresfd", criterion="fpgm", rate=0.3)
    store.finish_run(photos, agreement_ap=0.861, agreement_recall=0.9, agreement_photos=json.dumps(["a.jpg"] * 6),
                     nonzero_parameters=69746, sparsity=0.243)
    result = evaluate(synthetic_predictions(load_ground_truth(wider_gt_dir), 0), wider_gt_dir)
    wider = store.start_run("train", {"wider": "/data/wider", "epochs": 200, "finetune_epochs": 10},
                            detector="extd", criterion="l1", rate=0.5)
    store.record_curves(wider, curves_document(result, "synthetic predictions", wider_gt_dir))
    store.finish_run(wider, ap_easy=result.easy, ap_medium=result.medium, ap_hard=result.hard,
                     eval_root="/data/wider", eval_gt=str(wider_gt_dir))


@pytest.fixture(scope="module")
def app_url(server):
    return server["url"]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = Path(os.environ.get("FACEDET_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
                "--disable-background-networking", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The page itself 1920 x 1080 CSS pixels, as on the projector (the window would add its frame).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    yield driver
    driver.quit()


def _wait(driver, condition, seconds, what):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.25).until(condition)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        pytest.fail(f"timed out waiting for {what}; the page shows:\n{body[-1500:]}")


def _text(driver):
    return driver.execute_script("return document.body.innerText")


def _titled(title):
    """The page whose title (its h1) is ``title`` is drawn (read in one go: the page changes under us)."""
    return lambda driver: title in driver.execute_script("return Array.from(document.querySelectorAll('h1'), h => h.innerText)")


def _idle(driver):
    """The script run is over (Streamlit's running indicator is gone)."""
    return not driver.find_elements("css selector", "[data-testid='stStatusWidget']")


def _settled(driver, condition, seconds, what):
    """Wait for ``condition`` and an idle page, twice in a row a moment apart (a run can start late)."""
    def twice(d):
        if not (condition(d) and _idle(d)):
            return False
        time.sleep(0.4)
        return condition(d) and _idle(d)
    return _wait(driver, twice, seconds, what)


def _boxes(driver, selectors):
    """{selector: (left, top, right, bottom)} of the first element each selector finds (None if none)."""
    return driver.execute_script(
        "return Object.fromEntries(arguments[0].map(s => { const e = document.querySelector(s);"
        " if (!e) return [s, null]; const r = e.getBoundingClientRect();"
        " return [s, [r.left, r.top, r.right, r.bottom]]; }));", selectors)


def _assert_in_view(driver, selectors, page):
    """Each element is drawn, on screen, and wholly inside the 1920 x 1080 viewport, unscrolled."""
    scrolled = driver.execute_script(
        "const m = document.querySelector('[data-testid=stMain]'); return window.scrollY + (m ? m.scrollTop : 0);")
    assert scrolled == 0, f"{page}: the page is scrolled by {scrolled} px"
    assert _presentation_on(driver), f"{page}: presentation mode is off"
    for selector, box in _boxes(driver, selectors).items():
        assert box is not None, f"{page}: {selector} is not drawn"
        left, top, right, bottom = box
        assert bottom > top and right > left, f"{page}: {selector} has no size"
        assert 0 <= top and bottom <= HEIGHT and 0 <= left and right <= WIDTH, \
            f"{page}: {selector} at {box} is not within the {WIDTH}x{HEIGHT} screen"


def _presentation_on(driver):
    return driver.execute_script("return document.querySelector(\"[class*='st-key-presentation'] input\").checked")


def _no_traceback(driver, page):
    assert not driver.find_elements("css selector", "[data-testid='stException']"), f"{page} shows an exception"
    assert "Traceback" not in _text(driver), f"{page} shows a traceback"


def _loaded_images(driver):
    images = driver.find_elements("css selector", "[data-testid='stImage'] img")
    return [i for i in images if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)]


def _go(driver, page, title):
    """Open a page the way a presenter does: its link in the sidebar (the same browser session)."""
    link = _wait(driver, lambda d: d.find_elements("xpath", f"//*[@data-testid='stSidebarNav']//a[.//*[normalize-space(text())='{page}']]"),
                 60, f"the link to {page}")[0]
    link.click()
    _settled(driver, _titled(title), 300, f"the {title} page")


def test_upload_a_photo_on_compare_and_see_both_annotated_results(app_url, browser, assets_dir, tmp_path):
    from selenium.webdriver.common.by import By

    photo = tmp_path / "my upload.png"  # a name that is not a sample's, with a space
    shutil.copy(assets_dir / "astronaut.png", photo)

    browser.get(f"{app_url}/Compare")
    # The upload field is with the rarer choices, under More in the row of controls.
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stPopover'] button"), 120, "More")[0].click()
    upload = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type='file']"),
                   60, "the upload field")[0]
    upload.send_keys(str(photo))

    def both_results_of_the_upload(driver):
        text = _text(driver)
        loaded = _loaded_images(driver)
        return len(loaded) == 2 and "the full 512×512 photo" in text and "found by both models" in text and loaded

    images = _wait(browser, both_results_of_the_upload, 300, "both annotated results of the uploaded photo")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
    text = _text(browser)
    assert "Original: EResFD" in text and "Pruned: EResFD FPGM 10 %" in text
    # Same display size on both sides, and the annotated pictures are the photo's shape (square).
    sizes = [(i.size["width"], i.size["height"]) for i in images]
    assert sizes[0] == sizes[1] and abs(sizes[0][0] - sizes[0][1]) <= 2


def test_a_deep_link_opens_its_comparison_and_the_address_follows(app_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{app_url}/Compare?arch=eresfd&source=published&criterion=l1&rate=30&sample=grace_hopper.jpg")
    _wait(browser, lambda d: "Pruned: EResFD L1 30 %" in d.find_element(By.TAG_NAME, "body").text
          and "the full 512×600 photo" in d.find_element(By.TAG_NAME, "body").text, 300, "the linked comparison")
    # The address now names every choice of the comparison shown (the defaults filled in).
    _wait(browser, lambda d: "threshold=0.50" in d.current_url and "rate=30" in d.current_url, 30, "the updated address")
    assert "criterion=l1" in browser.current_url and "sample=grace_hopper.jpg" in browser.current_url


COMPARE_CONTROLS = [".st-key-sample", ".st-key-arch", ".st-key-source", ".st-key-criterion", ".st-key-rate",
                    ".st-key-threshold", "[data-testid='stPopover']"]


def test_a_presentation_at_1920x1080_keeps_every_page_in_view(server, browser, screenshots):
    """Presentation mode (the default) on a projector, page by page: the controls, the legend and the
    pictures (charts) in view without scrolling, a screenshot of each; slider changes timed (printed,
    not asserted: the machine's speed is not the app's); a slow first detection cancelled; no
    traceback on any page or in the server's log."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, url = browser, server["url"]
    print(f"\nscreenshots: {screenshots}")
    driver.get(url)
    _settled(driver, _titled("Pruning lightweight face detectors"), 120, "the Home page")
    assert _presentation_on(driver)  # by default

    # Compare: the office photo (13 faces), EResFD against FPGM 10 %.
    started = time.perf_counter()
    _go(driver, "Compare", "Compare")
    _settled(driver, lambda d: len(_loaded_images(d)) == 2 and "found by both models" in _text(d), 300, "both pictures")
    print(f"Compare, first comparison shown: {time.perf_counter() - started:.1f} s")
    legend = driver.find_element(By.XPATH, "//*[@data-testid='stMarkdown'][contains(., 'found by both models')]")
    assert "only the pruned model finds" in legend.text and "only the original finds" in legend.text
    _assert_in_view(driver, COMPARE_CONTROLS + ["[data-testid='stImage']", "[data-testid='stImage']:last-of-type"], "Compare")
    assert legend.rect["y"] + legend.rect["height"] <= HEIGHT
    pictures = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stImage']")
    assert len(pictures) == 2 and all(p.rect["y"] + p.rect["height"] <= HEIGHT for p in pictures)
    _no_traceback(driver, "Compare")
    driver.save_screenshot(str(screenshots / "1-compare.png"))

    # The threshold, then the rate (a model the page warmed in the background while nobody waited).
    for key, shown in (("threshold", lambda d: "score ≥ 0.55" in _text(d)),
                       ("rate", lambda d: "Pruned: EResFD FPGM 20 %" in _text(d) and len(_loaded_images(d)) == 2)):
        # The keyboard moves a slider one step, as a presenter's arrow key does.
        driver.execute_script("arguments[0].focus()", driver.find_element(By.CSS_SELECTOR, f".st-key-{key} input[type='range']"))
        started = time.perf_counter()
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
        _settled(driver, shown, 300, f"the page after moving the {key} slider")
        print(f"Compare, {key} slider moved one step: the page was updated in {time.perf_counter() - started:.2f} s")
    _no_traceback(driver, "Compare")

    # A slow first detection (EXTD at the authors' demo size on a photo not seen yet) shows its
    # progress, and Cancel stops it.
    driver.get(f"{url}/Compare?arch=extd&sample=meeting-room-10.jpg")
    bar = _wait(driver, lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "[data-testid='stProgress']")
                                   if "EXTD" in b.text], 300, "the progress of the EXTD detection")[0]
    print(f"Compare, EXTD detection under way: {bar.text!r}")
    _assert_in_view(driver, COMPARE_CONTROLS + ["[data-testid='stProgress']", ".st-key-cancel_detection"], "Compare (EXTD)")
    driver.save_screenshot(str(screenshots / "2-compare-extd-progress.png"))
    started = time.perf_counter()
    driver.find_element(By.CSS_SELECTOR, ".st-key-cancel_detection button").click()
    _settled(driver, lambda d: "Detection cancelled" in _text(d), 120, "the cancelled detection")
    print(f"Compare, Cancel took effect in {time.perf_counter() - started:.2f} s")
    assert not _loaded_images(driver)
    _no_traceback(driver, "Compare (cancelled)")

    driver.get(url)  # back to the app's own navigation
    _settled(driver, _titled("Pruning lightweight face detectors"), 120, "the Home page")

    # Prune: the whole form and Start in view, and what Start says appears in view too.
    _go(driver, "Prune", "Prune")
    _assert_in_view(driver, [".st-key-prune_arch", ".st-key-prune_criterion", ".st-key-prune_rate", ".st-key-prune_data",
                             "[data-testid='stFormSubmitButton']"], "Prune")
    driver.find_element(By.XPATH, "//*[contains(@class, 'st-key-prune_data')]//label[contains(., 'My photos')]").click()
    driver.find_element(By.CSS_SELECTOR, "[data-testid='stFormSubmitButton'] button").click()
    _settled(driver, lambda d: "Upload a few photos first" in _text(d), 60, "Start's message")
    _assert_in_view(driver, ["[data-testid='stAlert']", "[data-testid='stFormSubmitButton']"], "Prune")
    _no_traceback(driver, "Prune")
    driver.save_screenshot(str(screenshots / "3-prune.png"))

    # Trade-offs, Layers, Results: controls and chart (or table) in view.
    _go(driver, "Trade-offs", "Trade-offs")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stPlotlyChart'] .main-svg"), 60, "the chart")
    _assert_in_view(driver, [".st-key-subset", ".st-key-cost", ".st-key-tradeoff_view", ".st-key-show_pareto",
                             "[data-testid='stPlotlyChart']"], "Trade-offs")
    _no_traceback(driver, "Trade-offs")
    driver.save_screenshot(str(screenshots / "4-trade-offs.png"))

    _go(driver, "Layers", "Layers")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stPlotlyChart'] .main-svg"), 60, "the chart")
    _assert_in_view(driver, [".st-key-layers_arch", ".st-key-layers_source", ".st-key-layers_rate",
                             "[data-testid='stMetric']", "[data-testid='stTabs']", "[data-testid='stPlotlyChart']"],
                    "Layers")
    _no_traceback(driver, "Layers")
    driver.save_screenshot(str(screenshots / "5-layers.png"))

    _go(driver, "Results", "Results")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame']"), 60, "the table")
    _assert_in_view(driver, [".st-key-results_detector", ".st-key-results_criterion", "[data-testid='stDataFrame']"],
                    "Results")
    overflow = driver.execute_script(
        "const s = document.querySelector('[data-testid=stDataFrame] .dvn-scroller');"
        " return s ? s.scrollWidth - s.clientWidth : null;")
    assert overflow is not None and overflow <= 1, f"Results: the table is {overflow} px wider than its box"
    _no_traceback(driver, "Results")
    driver.save_screenshot(str(screenshots / "6-results.png"))

    # Home: the checkpoint table whole, no box that scrolls.
    _go(driver, "Home", "Pruning lightweight face detectors")
    hidden = driver.execute_script(
        "const s = document.querySelector('[data-testid=stDataFrame] .dvn-scroller');"
        " return s ? s.scrollHeight - s.clientHeight : null;")
    assert hidden is not None and hidden <= 1, f"Home: the checkpoint table hides {hidden} px of rows"
    _assert_in_view(driver, ["[class*='st-key-presentation']", "[data-testid='stSidebarNav']"], "Home")
    _no_traceback(driver, "Home")
    driver.save_screenshot(str(screenshots / "0-home.png"))

    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
