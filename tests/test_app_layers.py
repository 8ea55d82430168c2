"""The Layers page (streamlit AppTest) on the published checkpoints: removed filters and agreement."""

from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from facedet.weights import load_checkpoint

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def zero_filters(name):
    """{conv weight key: set of all-zero output filters} of a published checkpoint, independently."""
    state = load_checkpoint(name).state_dict
    return {key: set(torch.nonzero(w.flatten(1).abs().sum(1) == 0).flatten().tolist())
            for key, w in state.items() if key.endswith(".weight") and w.dim() == 4}


def test_published_selections_and_their_overlap(weights_dir):
    at = AppTest.from_file(APP, default_timeout=300).switch_page("pages/4_Layers.py").run()
    assert not at.exception
    fpgm, l1 = zero_filters("eresfd-fpgm-30"), zero_filters("eresfd-l1-30")
    total_filters = sum(w.shape[0] for k, w in load_checkpoint("eresfd").state_dict.items()
                        if k.endswith(".weight") and w.dim() == 4 and (fpgm[k] or l1[k]))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Filters removed by FPGM"] == f"{sum(map(len, fpgm.values())):,} of {total_filters:,}"
    assert metrics["Filters removed by L1 norm"] == f"{sum(map(len, l1.values())):,} of {total_filters:,}"
    both = sum(len(fpgm[k] & l1[k]) for k in fpgm)
    assert metrics["Chosen by both"].startswith(f"{both:,} (")
    assert len(at.get("plotly_chart")) == 3

    at.selectbox(key="layers_layer").set_value("base.conv3.0").run()
    assert f"FPGM removes filters {sorted(fpgm['base.conv3.0.weight'])}" in at.caption[-2].value

    at.select_slider(key="layers_rate").set_value(50).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Filters removed by FPGM"].startswith(f"{sum(map(len, zero_filters('eresfd-fpgm-50').values())):,} of")


def test_one_shot_selections_differ_between_fpgm_and_l1(weights_dir):
    at = AppTest.from_file(APP, default_timeout=300).switch_page("pages/4_Layers.py").run()
    at.radio(key="layers_source").set_value("oneshot").run()
    assert not at.exception
    # NNI's rule: int(n * rate) filters of every conv outside the detection head.
    state = load_checkpoint("eresfd").state_dict
    sizes = [w.shape[0] for k, w in state.items()
             if k.endswith(".weight") and w.dim() == 4 and not k.startswith(("loc.", "conf."))]
    removed = sum(int(n * 0.3) for n in sizes)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Filters removed by FPGM"] == metrics["Filters removed by L1 norm"] == f"{removed:,} of {sum(sizes):,}"
    both = int(metrics["Chosen by both"].split(" ")[0].replace(",", ""))
    assert 0 < both < removed  # redundant and small filters are not the same filters


def test_a_published_file_shared_by_two_criteria_is_said_to_be_one_file(weights_dir):
    """The authors' EXTD FPGM 40 % and L1 40 % are one file: its '100 % overlap' is no agreement."""
    from facedet.weights import PRETRAINED

    at = AppTest.from_file(APP, default_timeout=300).switch_page("pages/4_Layers.py")
    at.session_state["layers_arch"] = "extd"
    at.session_state["layers_rate"] = 40
    at.run()
    assert not at.exception
    assert PRETRAINED["extd-fpgm-40"].sha256 == PRETRAINED["extd-l1-40"].sha256  # the registry says so
    (note,) = [w.value for w in at.warning]
    assert "EXTD FPGM 40 % and EXTD L1 40 % checkpoints are the same file" in note
    assert PRETRAINED["extd-l1-40"].sha256[:12] in note
    assert "(100% overlap)" in {m.label: m.value for m in at.metric}["Chosen by both"]

    at.select_slider(key="layers_rate").set_value(30).run()  # two files: nothing to say
    assert not at.exception and not at.warning


def test_choices_are_kept_across_sources(weights_dir):
    at = AppTest.from_file(APP, default_timeout=300).switch_page("pages/4_Layers.py").run()
    at.select_slider(key="layers_rate").set_value(50).run()
    at.radio(key="layers_source").set_value("oneshot").run()
    assert "25 % (= 30 %)" in at.select_slider(key="layers_oneshot_rate").options  # EResFD's rounding, said
    at.select_slider(key="layers_oneshot_rate").set_value(45).run()
    at.radio(key="layers_source").set_value("published").run()
    assert at.select_slider(key="layers_rate").value == 50
    at.radio(key="layers_source").set_value("oneshot").run()
    assert at.select_slider(key="layers_oneshot_rate").value == 45


def test_bfpgm_checkpoints_show_their_zero_filters_per_layer(weights_dir):
    at = AppTest.from_file(APP, default_timeout=300).switch_page("pages/4_Layers.py").run()
    at.radio(key="layers_source").set_value("bfpgm").run()
    assert not at.exception and not at.error
    zeros = zero_filters("bfpgm-eresfd-30")  # the default target sparsity
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Filters removed by FPGM"].startswith(f"{sum(map(len, zeros.values())):,} of ")
    assert "21.3%, 4.5%, 30.5%, 47.1%, 32.1%, 44.8%" in at.caption[0].value  # B-FPGM's per-group rates
    at.select_slider(key="layers_bfpgm_rate").set_value(60).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Filters removed by FPGM"].startswith(f"{sum(map(len, zero_filters('bfpgm-eresfd-60').values())):,} of")
