"""The Compare page (streamlit AppTest): published models, the shared threshold, bad uploads."""

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from facedet.weights import load_checkpoint
from facedet.params import count_parameters

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/1_Compare.py"


def nonzero(name):
    return f"{count_parameters(load_checkpoint(name).state_dict).nonzero:,}"


def side_metrics(at):
    """{label: (left value, right value)} of the two sides' metrics."""
    values = {}
    for metric in at.metric:
        values.setdefault(metric.label, []).append(metric.value)
    return values


@pytest.fixture
def page(weights_dir):
    at = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    at.session_state["sample"] = "grace_hopper.jpg"  # one face, and the smallest sample photo
    return at.run()


def test_published_checkpoints_threshold_and_rate(page):
    at = page
    assert not at.exception and not at.error
    assert len(at.image) == 2  # original and pruned, side by side
    metrics = side_metrics(at)
    assert metrics["Faces"] == ["1", "1"]  # Grace Hopper, found by both at the default 0.5
    assert metrics["Parameters (nonzero)"] == [nonzero("eresfd"), nonzero("eresfd-fpgm-10")]
    assert "Matched: 1, only pruned: 0, missed: 0" in at.caption[-1].value

    at.slider(key="threshold").set_value(0.05).run()  # served from the detection cache
    low = side_metrics(at)["Faces"]
    assert int(low[0]) >= 1 and int(low[1]) >= 1

    at.radio(key="criterion").set_value("l1")
    at.select_slider(key="rate").set_value(50).run()
    assert not at.exception
    assert at.subheader[-1].value == "Pruned: EResFD L1 50 %"
    assert side_metrics(at)["Parameters (nonzero)"][1] == nonzero("eresfd-l1-50")
    assert len(at.download_button) == 2  # each annotated image can be downloaded


@pytest.mark.parametrize("name, data, message", [
    ("notes.jpg", b"these are not pixels", "not an image"),
    ("cut.jpg", None, "truncated"),
    ("huge.png", "huge", "too large"),
])
def test_bad_uploads_show_an_error_and_the_app_carries_on(page, assets_dir, name, data, message):
    at = page
    if data is None:
        whole = (assets_dir / "grace_hopper.jpg").read_bytes()
        data = whole[: len(whole) // 2]
    elif data == "huge":
        buffer = io.BytesIO()
        Image.new("1", (9000, 9000)).save(buffer, format="PNG")  # 81 megapixels in a few kB
        data = buffer.getvalue()
    at.file_uploader(key="upload").set_value((name, data, "image/jpeg")).run()
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value and "Cannot use this photo" in at.error[0].value
    assert not at.image

    at.file_uploader(key="upload").set_value(None).run()  # back to the sample: all works again
    assert not at.exception and not at.error
    assert len(at.image) == 2


def test_one_shot_prune_at_any_rate(page):
    at = page
    at.radio(key="source").set_value("oneshot").run()
    at.selectbox(key="oneshot_criterion").set_value("fpgm")
    at.select_slider(key="oneshot_rate").set_value(40).run()
    assert not at.exception and not at.error
    assert at.subheader[-1].value == "Pruned: EResFD FPGM 40 %"
    assert "NO fine-tuning" in at.caption[1].value
    # The paper's count for EResFD at 40 % (Table 2 prints 57,055, a misprint for 59,055).
    assert side_metrics(at)["Parameters (nonzero)"] == [nonzero("eresfd"), "59,055"]

    at.select_slider(key="oneshot_rate").set_value(35).run()  # any 5 % step, not only the paper's
    between = int(side_metrics(at)["Parameters (nonzero)"][1].replace(",", ""))
    assert 59_055 < between < 69_746
