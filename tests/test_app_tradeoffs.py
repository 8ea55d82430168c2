"""The Trade-offs page (streamlit AppTest): subset and cost switches, FLOPs of the real checkpoints."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/3_Trade_offs.py"


def _decode(value):
    """Plotly ships numeric arrays as {"dtype", "bdata" (base64)}; everything else as is."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return value


class Trace:
    def __init__(self, data):
        self.name, self.x, self.y, self.text = (_decode(data.get(k)) for k in ("name", "x", "y", "text"))


def figure(at):
    """The traces and layout of the chart the page sent."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [Trace(t) for t in spec["data"]], spec["layout"]


def trace(fig, name):
    return next(t for t in fig[0] if t.name == name)


@pytest.fixture
def page(weights_dir):
    return AppTest.from_file(APP, default_timeout=600).switch_page(PAGE).run()


def test_parameters_axis_shows_the_papers_curves_published_detectors_and_front(page):
    at = page
    assert not at.exception
    fig = figure(at)
    names = {t.name for t in fig[0]}
    assert {"Paper: EXTD FPGM", "Paper: EXTD L1", "Paper: EResFD FPGM", "Paper: EResFD L1", "Paper: baselines",
            "Published detectors", "Pareto front (WIDER FACE points)"} <= names
    fpgm = trace(fig, "Paper: EResFD FPGM")
    # The curve starts at the reproduced dense model, then 10 ... 50 %, with the paper's counts.
    assert list(fpgm.x) == [92208, 87368, 76677, 69746, 59055, 47284]
    assert fpgm.y[1] == pytest.approx(0.8728)
    assert fig[1]["xaxis"]["type"] == "log"

    at.segmented_control(key="subset").set_value("hard").run()
    assert trace(figure(at), "Paper: EResFD FPGM").y[1] == pytest.approx(0.7757)


def test_flops_axis_counts_the_published_checkpoints(page):
    at = page
    at.segmented_control(key="cost").set_value("gflops").run()
    assert not at.exception
    fig = figure(at)
    extd = list(trace(fig, "Paper: EXTD FPGM").x)
    eresfd = list(trace(fig, "Paper: EResFD FPGM").x)
    # EXTD needs about 20 GFLOPs at 640x480, EResFD about 0.6, and pruning lowers both.
    assert 19 < extd[0] < 21 and 0.55 < eresfd[0] < 0.65
    assert extd == sorted(extd, reverse=True) and eresfd == sorted(eresfd, reverse=True)
    assert "SCRFD-0.5GF" in trace(fig, "Published detectors").text


def test_latency_axis_waits_for_the_user(page):
    at = page
    at.segmented_control(key="cost").set_value("latency_ms").run()
    assert not at.exception
    assert "Latency is measured on this machine" in at.info[0].value
    labels = [b.label for b in at.button]
    assert "Measure latency now" in labels
    assert next(b for b in at.button if b.label == "Measure all again").disabled  # nothing measured yet
    # Nothing is timed until asked, and published detectors have no latency here: no paper curves yet.
    assert not any(t.name.startswith("Paper: E") for t in figure(at)[0])


def test_png_export(page):
    at = page
    at.button[0].click().run()  # "Make a PNG of the chart": Kaleido drives the installed Chromium
    assert not at.exception and not at.error
    assert [b.label for b in at.download_button][-1] == "Download the PNG"


def test_choices_are_kept_when_visiting_another_page(page):
    at = page
    at.segmented_control(key="subset").set_value("hard")
    at.segmented_control(key="cost").set_value("gflops").run()
    at.switch_page("pages/4_Layers.py").run()
    at.switch_page("pages/3_Trade_offs.py").run()
    assert not at.exception
    assert at.segmented_control(key="subset").value == "hard" and at.segmented_control(key="cost").value == "gflops"


def test_yunet_is_plotted_with_its_published_numbers_and_its_flops_counted_here(page, weights_dir):
    from facedet.peers import onnx_conv_flops

    at = page
    published = trace(figure(at), "Published detectors")
    points = {name: (x, y) for name, x, y in zip(published.text, published.x, published.y)}
    assert points["YuNet-n"] == (75856, pytest.approx(0.892)) and points["YuNet-s"] == (54608, pytest.approx(0.887))
    at.segmented_control(key="cost").set_value("gflops").run()
    assert not at.exception and not at.error
    published = trace(figure(at), "Published detectors")
    flops = dict(zip(published.text, published.x))
    assert flops["YuNet-s"] == pytest.approx(onnx_conv_flops(weights_dir / "yunet-s.onnx") / 1e9)
    at.segmented_control(key="cost").set_value("parameters").run()
    assert "none of our sources gives their WIDER FACE AP" in " ".join(c.value for c in at.caption)


def test_sample_set_accuracy_has_its_own_axis(page):
    """The generated sample set's APs are a choice of their own, never on the WIDER FACE axes."""
    at = page
    _, layout = figure(at)
    assert "WIDER FACE" in layout["yaxis"]["title"]["text"]
    at.segmented_control(key="subset").set_value("sample_set").run()
    assert not at.exception
    traces, layout = figure(at)
    assert "NOT WIDER FACE" in layout["yaxis"]["title"]["text"]
    assert not any(t.name.startswith(("Paper:", "Published")) for t in traces)  # nothing from WIDER FACE
    assert any("never drawn on the WIDER FACE axes" in c.value for c in at.caption)


def test_the_chart_opens_zoomed_on_the_papers_models_and_shows_every_point_on_request(page):
    at = page
    assert at.segmented_control(key="tradeoff_view").value == "zoom"
    zoomed = figure(at)[1]["xaxis"]["range"]
    assert any("lie outside this view" in c.value for c in at.caption)
    at.segmented_control(key="tradeoff_view").set_value("all").run()
    assert not at.exception
    low, high = figure(at)[1]["xaxis"]["range"]
    assert low < zoomed[0] and high > zoomed[1] + 1  # decades more: the largest published detectors
    assert not any("lie outside this view" in c.value for c in at.caption)
