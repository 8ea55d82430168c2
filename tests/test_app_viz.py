"""The app's non-UI pieces (facedet.viz): trade-off table, Pareto front, chart, overlays, FLOPs."""

import numpy as np
import pytest

from facedet.compare import match_detections
from facedet.iou import overlap_area
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


def _label_boxes(fig, font_size, plot_size=(1300, 490)):
    """The published detectors' label boxes (pixels) as the figure places them, and their names."""
    (published,) = [t for t in fig.data if t.name == "Published detectors"]
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range
    boxes = []
    for x, y, text, position in zip(published.x, published.y, published.text, published.textposition):
        cx = (np.log10(x) - x0) / (x1 - x0) * plot_size[0]
        cy = (y - y0) / (y1 - y0) * plot_size[1]
        visible = 0 <= cx <= plot_size[0] and 0 <= cy <= plot_size[1]
        size = (0.62 * font_size * len(text) + 4, 1.3 * font_size)
        boxes.append((text, visible, tradeoffs._label_box(position, cx, cy, *size, gap=font_size * 0.5)))
    return boxes


@pytest.mark.parametrize("cost, subset", [("parameters", "easy"), ("parameters", "hard"), ("gflops", "easy")])
@pytest.mark.parametrize("view", ["zoom", "all"])
def test_published_detectors_labels_do_not_overlap(cost, subset, view):
    """YOLOv5s-Face used to sit on SCRFD-34GF's label, and the detectors near 0.5 GFLOPs on each other's."""
    table = tradeoffs.tradeoff_table()
    fig = tradeoffs.tradeoff_figure(table, subset=subset, cost=cost, view=view, font_size=16)
    boxes = [(text, box) for text, visible, box in _label_boxes(fig, font_size=13) if visible]
    assert len(boxes) >= 5
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert overlap_area(box_a, box_b) == 0, (a, b)


def test_the_chart_opens_around_the_papers_models_and_says_what_it_leaves_out():
    """The paper's curves filled 15 % of the chart's width; zoomed, they fill a third of it, every
    paper point stays in view, and the points left out are counted (the full view shows them all)."""
    table = tradeoffs.tradeoff_table()
    zoomed = tradeoffs.tradeoff_figure(table, subset="easy", cost="parameters")
    full = tradeoffs.tradeoff_figure(table, subset="easy", cost="parameters", view="all")

    def share_of_width(fig):
        paper = np.log10([x for t in fig.data if t.name.startswith("Paper") for x in t.x])
        low, high = fig.layout.xaxis.range
        return (paper.max() - paper.min()) / (high - low)

    assert share_of_width(full) < 0.2 < 1 / 3 < share_of_width(zoomed)
    assert not any(name.startswith("Paper") for name in tradeoffs.points_outside(zoomed))
    hidden = tradeoffs.points_outside(zoomed)["Published detectors"]
    published = next(t for t in zoomed.data if t.name == "Published detectors")
    assert 0 < hidden < len(published.x) and tradeoffs.points_outside(full) == {}
    with pytest.raises(ValueError):
        tradeoffs.tradeoff_figure(table, view="closer")


def test_overlays_mark_matched_and_each_models_own_boxes_in_their_colours():
    image = np.full((200, 300, 3), 255, np.uint8)
    original = np.array([[10, 10, 60, 60, 0.9], [200, 100, 260, 160, 0.8]], np.float32)
    pruned = np.array([[11, 10, 61, 60, 0.85], [100, 100, 150, 150, 0.7]], np.float32)
    comparison = match_detections(original, pruned)
    for style in overlay.STYLES.values():
        out = overlay.annotate_pruned(image, pruned, original, comparison, style=style)
        colours = {tuple(c) for c in out.reshape(-1, 3)}
        for key in ("matched", "only_pruned", "only_original"):
            assert style.colours[key] in colours, (style.name, key)
    shown, factor = overlay.fit_for_display(np.zeros((3000, 1500, 3), np.uint8), max_side=1000)
    assert shown.shape[:2] == (1000, 500) and factor == pytest.approx(1 / 3)
    assert overlay.png_bytes(out)[:4] == b"\x89PNG"


def _dark_edge(line):
    """Indices where a row of pixels is black (a halo)."""
    return np.flatnonzero((line == 0).all(axis=1))


def test_presentation_boxes_are_thick_edged_in_black_and_sized_for_the_shown_picture(assets_dir):
    from facedet.images import read_image

    photo = read_image(assets_dir / "grace_hopper.jpg")  # 512 x 600
    box = np.array([[100, 100, 300, 300, 0.93]], np.float32)
    screen = overlay.annotate_detections(photo, box, style=overlay.SCREEN)
    shown = overlay.annotate_detections(photo, box, style=overlay.PRESENTATION)
    blue = overlay.PRESENTATION.colours["original"]
    row = shown[200, 80:120]  # across the box's left edge
    line = np.flatnonzero((row == blue).all(axis=1))
    assert len(line) >= 4 and len(_dark_edge(row)) >= 2  # a thick line with a black edge
    assert len(_dark_edge(screen[200, 80:120])) == 0
    # The same picture shown at half its width gets lines twice as thick, so they read the same.
    half = overlay.annotate_detections(photo, box, style=overlay.PRESENTATION, shown_width=256)
    assert len(np.flatnonzero((half[200, 80:120] == blue).all(axis=1))) >= 2 * len(line) - 1
    # The score tag sits on the box's top edge, larger in presentation than on screen.
    tag_rows = lambda out, colour: len(np.flatnonzero((out[:100, 100:140] == colour).all(axis=2).any(axis=1)))
    assert tag_rows(shown, blue) > tag_rows(screen, overlay.SCREEN.colours["original"]) >= 8


def test_the_only_original_box_stays_a_readable_dashed_box_on_a_tiny_face_and_in_the_legend():
    image = np.full((300, 300, 3), 90, np.uint8)
    original = np.array([[150, 150, 156, 157, 0.9]], np.float32)  # a 6 px face
    comparison = match_detections(original, np.zeros((0, 5), np.float32))
    style = overlay.PRESENTATION
    out = overlay.annotate_pruned(image, np.zeros((0, 5), np.float32), original, comparison, style=style)
    orange = np.all(out == style.colours["only_original"], axis=2)
    rows, cols = np.nonzero(orange)
    assert cols.max() - cols.min() >= style.min_dashed_side - 2  # drawn at least 32 px wide, about the face
    assert abs((cols.max() + cols.min()) / 2 - 153) <= 2
    top = orange[rows.min() + 2, cols.min():cols.max() + 1]
    gaps = np.flatnonzero(np.diff(top.astype(int)) == -1)
    assert len(gaps) >= 1 and top[:4].any() and top[-4:].any()  # a gap between dashes, and both corners drawn
    # The legend draws its swatch with the same code: dashed for this kind, solid for the others.
    for kind in overlay.LEGEND:
        swatch = overlay.legend_swatch(kind, style)
        edge = np.all(swatch == style.colours[kind], axis=2)
        middle_row = edge[np.flatnonzero(edge.any(axis=1))[0] + 1]
        gaps = np.flatnonzero(np.diff(middle_row[middle_row.argmax():len(middle_row) - middle_row[::-1].argmax()].astype(int)) == -1)
        assert (len(gaps) > 0) == (kind == "only_original"), kind
    html = overlay.legend_html({"matched": 12, "only_pruned": 1, "only_original": 0}, style)
    assert html.count("data:image/png;base64,") == 3 and "found by both models: <b>12</b>" in html


def _relative_luminance(rgb):
    c = np.asarray(rgb, np.float64) / 255
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c @ [0.2126, 0.7152, 0.0722]


def _contrast(a, b):
    """WCAG contrast ratio of two relative luminances."""
    return (np.maximum(a, b) + 0.05) / (np.minimum(a, b) + 0.05)


def _standing_out(style, luminance):
    """Share of photo pixels against which each box colour, or its black edge, has a contrast of 3."""
    edge = _relative_luminance(overlay.HALO) if style.halo else None
    shares = {}
    for kind, colour in style.colours.items():
        visible = _contrast(_relative_luminance(colour), luminance) >= 3
        if edge is not None:
            visible |= _contrast(edge, luminance) >= 3
        shares[kind] = visible.mean()
    return shares


def test_presentation_colours_stand_out_on_every_part_of_real_photos(assets_dir):
    """A box is seen where its line, or the black edge around it, has a contrast ratio of 3 (WCAG's
    for graphics) with the photo: the presentation colours (light, edged in black) reach it on every
    pixel of every sample photo; the screen style's blue, on 7-61 % of a photo's pixels."""
    from facedet.images import read_image
    from facedet.samples import sample_photos

    for photo in sample_photos():
        luminance = _relative_luminance(read_image(photo.path).reshape(-1, 3)[::7])
        assert min(_standing_out(overlay.PRESENTATION, luminance).values()) == 1.0, photo.name
        assert _standing_out(overlay.SCREEN, luminance)["matched"] < 2 / 3, photo.name


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


def test_layer_charts_name_layer_groups_and_criteria_and_count_filters_in_whole_numbers(weights_dir):
    """Layers on a projector: groups under the axis instead of 75 small rotated names, the criteria's
    own names (not upper-cased keys), whole filter numbers on a small layer's map."""
    from facedet.viz import layers
    from facedet.weights import load_model

    dense, _ = load_model(str(weights_dir / "eresfd.pth"))
    removed = {c: {k: v for k, v in layers.zero_filters(load_model(str(weights_dir / f"eresfd-{c}-30.pth"))[0]).items() if v}
               for c in ("fpgm", "l1")}
    table = layers.layer_table(dense, removed)
    groups = layers.layer_groups("eresfd", list(table["layer"]))
    assert [label.split(":")[0] for label, _ in groups] == ["1", "2", "3", "4", "5", "6"]
    assert [layer for _, members in groups for layer in members] == list(table["layer"])  # every layer, in order
    assert groups[0][0] == "1: conv1–conv3" and groups[4][0] == "5: fpn"

    labels = {"fpgm": "FPGM", "l1": "L1 norm"}
    fig = layers.removed_figure(table, ["fpgm", "l1"], labels=labels, groups=groups)
    assert [t.name for t in fig.data][:2] == ["removed by FPGM", "removed by L1 norm"]
    assert fig.layout.xaxis.showticklabels is False
    assert [a.text for a in fig.layout.annotations] == [label for label, _ in groups]
    share = layers.share_figure(table, "l1", label="L1 norm", groups=groups)
    assert share.data[1].name == "after L1 norm"

    small = table.loc[table["filters"] == table["filters"].min()].iloc[0]
    filter_map = layers.filter_map_figure(removed, small.layer, int(small.filters), labels=labels)
    assert list(filter_map.data[0].y) == ["FPGM", "L1 norm"]
    assert filter_map.layout.xaxis.dtick == 1 and filter_map.layout.xaxis.tickformat == "d"
    wide = layers.filter_map_figure(removed, small.layer, 256, labels=labels)
    assert wide.layout.xaxis.dtick == 8 and 256 / wide.layout.xaxis.dtick <= 32
