"""The Compare page (streamlit AppTest): published models, the shared threshold, bad uploads; honest
labels (first-run time against measured latency, one-shot rates as they really prune, which model
finds a box), the detection scale, choices kept across sources and pages, deep links, the models
likely to be chosen next detected in the background, a cancelled detection."""

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


def caption_with(at, text):
    """The one caption containing ``text``."""
    (found,) = [c.value for c in at.caption if text in c.value]
    return found


def legend(at):
    """The legend line above the pictures (each kind of box, and how many there are)."""
    (found,) = [m.value for m in at.markdown if "found by both models" in m.value]
    return found


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
    counts = legend(at)
    assert "found by both models: <b>1</b>" in counts and "only the pruned model finds: <b>0</b>" in counts
    assert "only the original finds (dashed): <b>0</b>" in counts

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
    at.selectbox(key="source").set_value("oneshot").run()
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


def test_times_are_first_runs_and_latency_is_shown_only_when_measured(page):
    """A first detection's time is labelled as such; the model's latency appears once measured."""
    at = page
    metrics = side_metrics(at)
    assert "Detection time" not in metrics
    assert all(v.endswith(" ms") for v in metrics["Time on this photo (first run)"])
    assert metrics["Latency (640×480, warm)"] == ["not measured", "not measured"]
    assert "it is not the model's speed" in caption_with(at, "Time on this photo (first run)")

    at.button(key="measure_latency").click().run()  # measures both, as facedet bench does
    assert not at.exception
    measured = at.session_state["latency_stats"]
    ms = [measured[key]["ms"] for key in ("published:eresfd", "published:eresfd-fpgm-10")]
    assert all(value > 0 for value in ms)
    assert side_metrics(at)["Latency (640×480, warm)"] == [f"{value:,.1f} ms" for value in ms]
    assert not [b for b in at.button if b.key == "measure_latency"]  # nothing left to measure

    # Another browser session (or a restarted server) reuses the figures and says when they were taken.
    again = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    again.session_state["sample"] = "grace_hopper.jpg"
    again.run()
    assert side_metrics(again)["Latency (640×480, warm)"] == [f"{value:,.1f} ms" for value in ms]
    helps = [m.help for m in again.metric if m.label == "Latency (640×480, warm)"]
    assert all("measured 20" in text and "640x480" in text for text in helps)
    assert not [b for b in again.button if b.key == "measure_latency"]


def test_one_shot_rates_say_what_they_really_remove(page):
    """EResFD's layers are small: 5 % removes nothing, 25 % is the 30 % model; the page says so."""
    from pruning.graph import prunable_convs

    at = page
    at.selectbox(key="source").set_value("oneshot").run()
    at.selectbox(key="oneshot_criterion").set_value("fpgm")
    at.select_slider(key="oneshot_rate").set_value(5).run()
    assert not at.exception
    assert "requested 5 % → 0 filters removed, model unchanged" in at.caption[1].value
    assert side_metrics(at)["Parameters (nonzero)"] == [nonzero("eresfd")] * 2
    labels = at.select_slider(key="oneshot_rate").options
    assert "5 % (removes nothing)" in labels and "25 % (= 30 %)" in labels and "30 % (= 25 %)" in labels
    assert "40 %" in labels  # a rate of its own model keeps a plain label
    assert "25 % = 30 %" in caption_with(at, "int(n × rate)")

    at.select_slider(key="oneshot_rate").set_value(25).run()
    sizes = [conv.out_channels for _, conv in prunable_convs(load_checkpoint_model("eresfd"))]
    removed = sum(int(n * 0.3) for n in sizes)  # NNI's rule at 30 %: the same counts as at 25 %
    assert f"requested 25 % → {removed:,} of {sum(sizes):,} filters removed" in at.caption[1].value
    assert "the same model as 30 %" in at.caption[1].value
    at25 = side_metrics(at)["Parameters (nonzero)"][1]
    at.select_slider(key="oneshot_rate").set_value(30).run()
    assert side_metrics(at)["Parameters (nonzero)"][1] == at25


def load_checkpoint_model(name):
    from facedet.weights import load_model

    return load_model(name)[0]


def test_boxes_are_named_by_the_model_that_finds_them_and_annotations_counted(weights_dir):
    """No "missed": the original is not ground truth. Annotated photos also count the annotations."""
    from facedet.samples import faces_for
    from facedet.viz.overlay import LEGEND

    assert not any("miss" in text for text in LEGEND.values())
    at = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE).run()  # office-group-13.jpg: annotated
    assert not at.exception
    assert "only the original finds" in legend(at) and "only the pruned model finds" in legend(at)
    assert not any("missed" in c.value for c in at.caption)
    assert "The original is not ground truth" in caption_with(at, "not ground truth")
    faces = len(faces_for("office-group-13.jpg"))
    found = side_metrics(at)["Annotated faces found"]
    assert len(found) == 2 and all(v.endswith(f" of {faces}") for v in found)
    assert f"This photo has {faces} hand-annotated faces" in caption_with(at, "hand-annotated")


def test_the_scale_can_be_chosen(page):
    """At the automatic scale (2.24× for the 512×512 astronaut) EResFD FPGM 30 % misses her face;
    at 1× it finds it (0.999)."""
    at = page
    at.session_state["sample"] = "astronaut.png"
    at.select_slider(key="rate").set_value(30).run()
    assert "scale 2.24 (automatic" in caption_with(at, "Both models ran")
    assert side_metrics(at)["Faces"][1] == "0"

    at.radio(key="scale").set_value("1").run()
    assert not at.exception
    assert "scale 1.00 (1×" in caption_with(at, "Both models ran")
    assert side_metrics(at)["Faces"] == ["1", "1"]

    at.radio(key="scale").set_value("fit640").run()
    assert "scale 1.25 (fitted to 640 px" in caption_with(at, "Both models ran")
    at.radio(key="scale").set_value("custom").run()
    at.number_input(key="scale_custom").set_value(0.5).run()
    assert not at.exception and "scale 0.50 (custom)" in caption_with(at, "Both models ran")


def test_choices_survive_other_sources_and_pages(page):
    at = page
    at.select_slider(key="rate").set_value(30).run()
    at.selectbox(key="source").set_value("oneshot").run()
    at.select_slider(key="oneshot_rate").set_value(45).run()
    at.selectbox(key="source").set_value("published").run()
    assert at.select_slider(key="rate").value == 30  # not back to 10 %
    assert at.subheader[-1].value == "Pruned: EResFD FPGM 30 %"

    at.switch_page("pages/4_Layers.py").run()
    assert not at.exception
    at.switch_page(PAGE).run()
    assert at.select_slider(key="rate").value == 30 and at.selectbox(key="sample").value == "grace_hopper.jpg"
    at.selectbox(key="source").set_value("oneshot").run()
    assert at.select_slider(key="oneshot_rate").value == 45


def test_deep_links_open_a_comparison_and_follow_the_choices(weights_dir):
    at = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    at.query_params.update(arch="eresfd", source="published", criterion="l1", rate="30", sample="grace_hopper.jpg")
    at.run()
    assert not at.exception and not at.error
    assert at.subheader[-1].value == "Pruned: EResFD L1 30 %" and at.selectbox(key="sample").value == "grace_hopper.jpg"

    at.select_slider(key="rate").set_value(50).run()  # the address follows, and the old link does not win
    assert at.subheader[-1].value == "Pruned: EResFD L1 50 %"
    assert at.query_params["rate"] == "50" and at.query_params["criterion"] == "l1"
    at.radio(key="scale").set_value("1").run()
    assert at.query_params["scale"] == "1" and at.query_params["rate"] == "50"

    one_shot = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    one_shot.query_params.update(source="oneshot", criterion="l1", rate="45", sample="grace_hopper.jpg",
                                 scale="0.8", threshold="0.3")
    one_shot.run()
    assert not one_shot.exception
    assert one_shot.subheader[-1].value == "Pruned: EResFD L1 norm 45 %"
    assert "scale 0.80 (custom)" in caption_with(one_shot, "Both models ran")
    assert one_shot.slider(key="threshold").value == pytest.approx(0.3)

    stale = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    stale.query_params.update(arch="yolo", rate="33", criterion="l1", sample="grace_hopper.jpg")
    stale.run()  # unknown values fall back to the defaults
    assert not stale.exception and not stale.error
    assert stale.subheader[-1].value == "Pruned: EResFD L1 10 %"


def test_a_peer_detector_on_either_side(weights_dir):
    from facedet.peers import onnx_parameter_count
    from facedet.weights import resolve

    at = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    at.session_state["sample"] = "office-group-13.jpg"  # 13 hand-annotated faces
    at.run()
    at.selectbox(key="left").set_value("yunet-n").run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["Reference: YuNet-n", "Pruned: EResFD FPGM 10 %"]
    metrics = side_metrics(at)
    # YuNet's parameters are its ONNX file's; the trained model's published count is said beside them.
    assert metrics["Parameters (nonzero)"] == [f"{onnx_parameter_count(resolve('yunet-n')).nonzero:,}",
                                               nonzero("eresfd-fpgm-10")]
    assert "75,856 as published" in caption_with(at, "ONNX file")
    found = [int(v.split(" of ")[0]) for v in metrics["Annotated faces found"]]
    assert min(found) >= 12 and "only the pruned model finds" in legend(at) and "only YuNet-n finds" in legend(at)
    assert "YuNet-n is not ground truth" in caption_with(at, "not ground truth")

    at.selectbox(key="source").set_value("peer").run()
    at.radio(key="peer").set_value("yunet-s").run()  # a peer on the right, against the peer on the left
    assert not at.exception and not at.error
    assert at.subheader[-1].value == "Peer: YuNet-s"
    assert "only YuNet-s finds" in legend(at)
    assert at.query_params["left"] == "yunet-n" and at.query_params["peer"] == "yunet-s"

    linked = AppTest.from_file(APP, default_timeout=600).switch_page(PAGE)
    linked.query_params.update(source="peer", peer="yunet-s", sample="grace_hopper.jpg")
    linked.run()  # a link reopens the comparison, the dense EResFD against YuNet-s
    assert not linked.exception and not linked.error
    assert [s.value for s in linked.subheader] == ["Original: EResFD", "Peer: YuNet-s"]
    assert side_metrics(linked)["Faces"] == ["1", "1"]
    linked.button(key="measure_latency").click().run()  # YuNet's latency, as facedet bench measures it
    assert not linked.exception and linked.session_state["latency_stats"]["peer:yunet-s"]["ms"] > 0


def test_bfpgm_checkpoints_are_a_source(page):
    at = page
    at.selectbox(key="source").set_value("bfpgm").run()
    assert not at.exception and not at.error
    assert at.subheader[-1].value == "Pruned: EResFD B-FPGM 30 %"  # the default target sparsity
    assert "21%, 4%, 30%, 47%, 32%, 45%" in at.caption[1].value  # its per-group rates, from the registry
    assert side_metrics(at)["Parameters (nonzero)"] == [nonzero("eresfd"), nonzero("bfpgm-eresfd-30")]
    at.select_slider(key="bfpgm_rate").set_value(60).run()
    assert at.subheader[-1].value == "Pruned: EResFD B-FPGM 60 %"
    assert side_metrics(at)["Parameters (nonzero)"][1] == nonzero("bfpgm-eresfd-60")
    at.radio(key="arch").set_value("extd").run()  # EXTD: B-FPGM released 0 and 20 % only
    assert not at.exception and at.select_slider(key="bfpgm_rate").options == ["0 % (B-FPGM's dense)", "20 %"]


def test_the_models_likely_next_are_detected_in_the_background_and_then_shown_at_once(page):
    """After a comparison, the slider's next rate is detected while nobody waits; choosing it then
    shows that detection (its first-run time is the background's), with no new one."""
    from app_support import detections

    at = page
    assert at.selectbox(key="sample").value == "grace_hopper.jpg" and at.select_slider(key="rate").value == 10
    assert detections.wait_until_warm(["published:eresfd-fpgm-20"], "sample:grace_hopper.jpg", seconds=300)
    _, warm_ms, _ = detections.known("published:eresfd-fpgm-20", "sample:grace_hopper.jpg")
    at.select_slider(key="rate").set_value(20).run()
    assert not at.exception and at.subheader[-1].value == "Pruned: EResFD FPGM 20 %"
    assert side_metrics(at)["Time on this photo (first run)"][1] == f"{warm_ms:,.0f} ms"


def test_a_cancelled_detection_waits_for_another_choice(page):
    """Cancel (clicked while a detection runs) leaves the page saying so, with a button to detect
    after all; choosing another model detects again."""
    at = page
    at.session_state["compare_cancelled"] = ("published:eresfd", "published:eresfd-fpgm-30",
                                             "sample:grace_hopper.jpg", None)
    at.select_slider(key="rate").set_value(30).run()  # the request whose Cancel was clicked
    assert not at.exception and not at.image
    assert "Detection cancelled" in at.info[0].value
    at.button(key="detect_anyway").click().run()
    assert not at.exception and len(at.image) == 2 and at.subheader[-1].value == "Pruned: EResFD FPGM 30 %"
