"""The app's non-UI pieces (facedet.viz): trade-off table, Pareto front, chart, overlays, FLOPs."""

import numpy as np
import pytest

from facedet.compare import match_detections
from facedet.viz import overlay, tradeoffs


def test_tradeoff_table_holds_the_papers_tables_and_published_detectors():
    table = tradeoffs.tradeoff_table()
    paper = table[table["group"].str.startswith("Paper")]
    assert len(paper) == 24  # 2 detectors x (original, reproduced, 5 FPGM, 5 L1)
    fpgm40 = paper[paper["label"] == "EResFD FPGM 40%"].iloc[0]
    assert fpgm40.parameters == 59055 and fpgm40.easy == pytest.approx(0.8124)
    assert "57,055" in fpgm40.source  # the printed value is kept and explained
    published = table[table["group"] == "Published detectors"]
    assert {"RetinaFace", "SCRFD", "YOLO5Face", "LFFD", "S3FD", "DSFD", "PyramidBox", "TinaFace", "MTCNN",
            "FaceBoxes"} <= set(published["detector"])
    # EXTD and EResFD as originally published appear once, as the paper's 'original' rows.
    assert len(table[table["label"].str.startswith("EXTD (original")]) == 1
    assert published["source"].str.len().min() > 20  # every point names where it comes from


def test_published_numbers_name_their_sources():
    for d in tradeoffs.load_json("published_detectors.json")["detectors"]:
        for key, cite in (("easy", "ap"), ("parameters", "parameters"), ("gflops", "gflops")):
            if d[key] is not None:
                assert d["sources"][cite]["title"] and d["sources"][cite]["where"], (d["name"], key)


def test_pareto_front():
    cost = [1, 2, 3, 4, np.nan]
    ap = [0.5, 0.7, 0.6, 0.9, 0.99]
    assert tradeoffs.pareto_mask(cost, ap).tolist() == [True, True, False, True, False]
    assert tradeoffs.pareto_mask([1, 1], [0.5, 0.5]).tolist() == [True, True]  # ties dominate nothing


def test_sample_set_runs_are_kept_off_the_wider_face_axes():
    runs = [dict(label="my run", detector="eresfd", criterion="fpgm", rate=0.3, easy=0.99, medium=0.99,
                 hard=0.99, parameters=10, gflops=0.1, latency_ms=5.0, checkpoint="/x.pth", wider=False)]
    table = tradeoffs.tradeoff_table(runs)
    run = table[table["kind"] == "run"].iloc[0]
    assert "NOT WIDER FACE" in run.group
    fig = tradeoffs.tradeoff_figure(table, subset="hard", cost="parameters")
    assert all(10 not in list(t.x) for t in fig.data)  # an unbeatable sample-set point is not a WIDER FACE result
    assert "WIDER FACE" in fig.layout.yaxis.title.text
    assert fig.layout.xaxis.type == "log"
    own = tradeoffs.tradeoff_figure(table, subset=tradeoffs.SAMPLE_SET, cost="parameters")
    assert [t.name for t in own.data] == [f"Your runs, sample set {s}" for s in ("Easy", "Medium", "Hard")]
    assert all(list(t.x) == [10] and list(t.y) == [0.99] for t in own.data)
    assert "NOT WIDER FACE" in own.layout.yaxis.title.text


def test_costs_fill_the_paper_rows_and_published_flops_axis():
    table = tradeoffs.tradeoff_table(costs={"eresfd-fpgm-10": {"gflops": 0.5, "latency_ms": 12.0}})
    row = table[table["label"] == "EResFD FPGM 10%"].iloc[0]
    assert row.gflops == 0.5 and row.latency_ms == 12.0
    fig = tradeoffs.tradeoff_figure(table, subset="easy", cost="gflops")
    published = next(t for t in fig.data if t.name == "Published detectors")
    assert "SCRFD-0.5GF" in list(published.text) and "YOLOv5s-Face" in list(published.text)
    with pytest.raises(ValueError):
        tradeoffs.tradeoff_figure(table, subset="everything")


def test_overlays_mark_matched_and_each_models_own_boxes_in_their_colours():
    image = np.full((200, 300, 3), 255, np.uint8)
    original = np.array([[10, 10, 60, 60, 0.9], [200, 100, 260, 160, 0.8]], np.float32)
    pruned = np.array([[11, 10, 61, 60, 0.85], [100, 100, 150, 150, 0.7]], np.float32)
    comparison = match_detections(original, pruned)
    out = overlay.annotate_pruned(image, pruned, original, comparison)
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    for key in ("matched", "only_pruned", "only_original"):
        assert overlay.COLOURS[key] in colours, key
    shown, factor = overlay.fit_for_display(np.zeros((3000, 1500, 3), np.uint8), max_side=1000)
    assert shown.shape[:2] == (1000, 500) and factor == pytest.approx(1 / 3)
    assert overlay.png_bytes(out)[:4] == b"\x89PNG"


def test_nonzero_flops_of_published_checkpoints(weights_dir):
    from facedet.viz.cost import nonzero_conv_flops
    from facedet.weights import load_model

    dense, _ = load_model(str(weights_dir / "eresfd.pth"))
    pruned, _ = load_model(str(weights_dir / "eresfd-fpgm-50.pth"))
    dense_flops, pruned_flops = nonzero_conv_flops(dense), nonzero_conv_flops(pruned)
    assert 0.55e9 < dense_flops < 0.65e9  # about 0.6 GFLOPs at 640x480, as the issue states
    assert 0.3 * dense_flops < pruned_flops < 0.7 * dense_flops


def test_bfpgm_checkpoints_are_points_with_their_released_counts_and_no_invented_ap():
    from facedet.weights import BFPGM

    table = tradeoffs.tradeoff_table()
    bfpgm = table[table["kind"] == "bfpgm"]
    assert sorted(bfpgm["checkpoint"]) == sorted(BFPGM)
    assert dict(zip(bfpgm["checkpoint"], bfpgm["parameters"])) == {n: e.nonzero_parameters for n, e in BFPGM.items()}
    assert bfpgm[["easy", "medium", "hard"]].isna().all().all()  # no AP of theirs in our sources
    figure = tradeoffs.tradeoff_figure(table)
    assert "B-FPGM checkpoints" not in {t.name for t in figure.data}
    # YuNet: a published detector that runs here, so costs measured here fill its row.
    filled = tradeoffs.tradeoff_table(costs={"yunet-n": {"latency_ms": 12.5}})
    assert filled.loc[filled["short"] == "YuNet-n", "latency_ms"].item() == 12.5
