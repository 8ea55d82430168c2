"""How fast the Compare page answers in a real browser: first detection of a photo, then sliders.

Starts ``streamlit run app.py`` on a free local port, opens Compare in headless Chromium (Debian's
``chromium`` and ``chromium-driver``, as the end-to-end test), lets the default sample load (models
loaded and warm), then uploads a real photo resized to 1200x800 and times, until both annotated
pictures are shown in the browser (and, for slider moves, the script run they started is over):

- the first detection of that photo (original and pruned model);
- the pruning-rate slider moved to a rate not shown before (a checkpoint loaded, then detected);
- then, alternately, the score-threshold slider moved one step (no new detection) and the rate
  slider moved back to a rate already shown (both detections cached), ``--repeats`` times each.

Times are taken in the browser's clock, from the key press to the end of the script run it started
and the last picture loaded, so that polling on a loaded machine does not add to them.

    python benchmarks/bench_compare_page.py [--photo facedet/assets/photos/holdout/soccer-3.jpg] [--repeats 5]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from facedet.assets import asset_path

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = os.environ.get("FACEDET_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEDET_CHROMEDRIVER", "/usr/bin/chromedriver")


def start_app(log):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return server, url
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.25)
    server.kill()
    raise SystemExit("streamlit did not start; see its log")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1920,1080"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def pictures(driver):
    """The sources of the two result pictures once both have loaded, else None."""
    images = driver.find_elements("css selector", "[data-testid='stImage'] img")
    loaded = [i for i in images if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
    return tuple(i.get_attribute("src") for i in loaded) if len(loaded) == 2 else None


def until_changed(driver, before, timeout=120):
    """Seconds until both pictures differ from ``before`` (polled every 10 ms)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        now = pictures(driver)
        if now and all(a != b for a, b in zip(now, before or ("", ""))):
            return time.perf_counter() - start, now
        time.sleep(0.01)
    raise SystemExit(f"the pictures did not change within {timeout} s")


# Recorded in the browser, on its own clock, so that a loaded machine's slow polling cannot miss a
# short script run: every change of the app's script state, every picture that finished loading,
# and the last key pressed.
RECORDER = """
if (!window.__bench) {
  window.__bench = {states: [], loads: [], key: null};
  const app = document.querySelector('[data-testid=stApp]');
  new MutationObserver(() => window.__bench.states.push([app.dataset.testScriptState, performance.now()]))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  document.addEventListener('load', e => { if (e.target.tagName === 'IMG') window.__bench.loads.push(performance.now()); }, true);
  document.addEventListener('keydown', () => { window.__bench.key = performance.now(); }, true);
}
"""


def until_idle(driver, timeout=300):
    """Wait until no script run is in progress (a run may go on after its pictures are shown)."""
    start = time.perf_counter()
    while driver.execute_script("return document.querySelector('[data-testid=stApp]').dataset.testScriptState") \
            == "running":
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"the script run did not finish within {timeout} s")
        time.sleep(0.05)


def until_rerun_done(driver, timeout=120):
    """Seconds from the last key press until the script run it started has finished and both
    pictures are shown (the pictures may not change: a threshold step can leave the same boxes),
    in the browser's clock."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        record = driver.execute_script("return window.__bench")
        ran = [t for state, t in record["states"] if state == "running" and t >= record["key"]]
        if ran:
            done = [t for state, t in record["states"] if state == "notRunning" and t > ran[0]]
            if done and pictures(driver):
                loaded = [t for t in record["loads"] if t > record["key"]]
                return (max([done[0], *loaded]) - record["key"]) / 1e3, pictures(driver)
        elif time.perf_counter() - start > 10:
            raise SystemExit("the widget change started no script run")
        time.sleep(0.02)
    raise SystemExit(f"the script run did not finish within {timeout} s")


def _wait_for(driver, selector, timeout=60):
    """The first element matching ``selector`` once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.find_elements("css selector", selector)
        if found:
            return found[0]
        time.sleep(0.1)
    raise SystemExit(f"nothing matched {selector!r} within {timeout} s")


def press(driver, label, key):
    """Once no script runs, focus the slider (a range input) of the widget showing ``label`` and
    press ``key``."""
    until_idle(driver)
    for widget in driver.find_elements("css selector", "[data-testid='stSlider']"):
        if label in widget.text:
            widget.find_element("css selector", "input[type='range']").send_keys(key)
            return
    raise SystemExit(f"no slider labelled {label!r} on the page")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default=str(asset_path("photos", "holdout", "soccer-3.jpg")))
    parser.add_argument("--repeats", type=int, default=5, help="moves of each kind to time (median)")
    args = parser.parse_args()
    import cv2
    from selenium.webdriver.common.keys import Keys

    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "server.log", "w+") as log:
        photo = Path(tmp) / "photo-1200x800.jpg"
        cv2.imwrite(str(photo), cv2.resize(cv2.imread(args.photo), (1200, 800), interpolation=cv2.INTER_AREA))
        server, url = start_app(log)
        driver = browser()
        try:
            driver.get(f"{url}/Compare")
            warm, shown = until_changed(driver, None, timeout=300)
            print(f"page with the default sample (server start, models loaded): {warm:.2f} s")
            # the upload field is under "More" in the row of controls; the popover is closed again
            driver.find_element("css selector", "[data-testid='stPopover'] button").click()
            upload = _wait_for(driver, "[data-testid='stFileUploader'] input[type='file']")
            upload.send_keys(str(photo))
            driver.find_element("css selector", "body").send_keys(Keys.ESCAPE)
            first, shown = until_changed(driver, shown)
            print(f"first detection of a 1200x800 photo (EResFD and EResFD FPGM 10 %): {first * 1e3:.0f} ms")
            driver.execute_script(RECORDER)
            moves = {"threshold": [], "back": []}
            press(driver, "Pruning rate", Keys.ARROW_RIGHT)
            seconds, shown = until_rerun_done(driver)
            print(f"rate slider to a new rate (checkpoint loaded and run): {seconds * 1e3:.0f} ms")
            for i in range(args.repeats):  # alternately: the threshold one step, the rate back to a shown one
                press(driver, "Score threshold", Keys.ARROW_RIGHT if i % 2 == 0 else Keys.ARROW_LEFT)
                moves["threshold"].append(until_rerun_done(driver)[0])
                press(driver, "Pruning rate", Keys.ARROW_LEFT if i % 2 == 0 else Keys.ARROW_RIGHT)
                moves["back"].append(until_rerun_done(driver)[0])
            for kind, label in (("threshold", "threshold slider moved one step"),
                                ("back", "rate slider back to a rate already shown")):
                print(f"{label}: {statistics.median(moves[kind]) * 1e3:.0f} ms (median of {args.repeats}; "
                      f"{', '.join(f'{s * 1e3:.0f}' for s in moves[kind])})")
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
