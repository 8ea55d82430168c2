"""The home page (streamlit AppTest): device, checkpoints, results store, links to every page; presentation mode."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from facedet.weights import PRETRAINED

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_home_lists_device_checkpoints_and_pages(weights_dir):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Compute device"] in ("CPU", "CUDA")
    assert metrics["Published checkpoints on this machine"] == f"{len(PRETRAINED)} / {len(PRETRAINED)}"
    table = at.dataframe[0].value
    assert len(table) == len(PRETRAINED)
    assert set(table["status"]) == {"present ($FACEDET_WEIGHTS_DIR)"}
    assert table.set_index("name").loc["eresfd-fpgm-40", "file"] == str(weights_dir / "eresfd-fpgm-40.pth")
    navigation = ["Home", "Compare", "Prune", "Trade-offs", "Layers", "Results"]
    assert [link.label.split("**")[1] for link in at.main.get("page_link")] == navigation[1:]


def test_pages_are_streamlits_own_navigation_with_their_old_addresses():
    """app.py is only the frame: st.navigation over pages/, Home the default, /Compare and the like kept."""
    import ast

    from app_support.page import PAGES

    source = (Path(APP)).read_text()
    assert "st.navigation" in source and "st.Page" in source
    assert [path for path, *_ in PAGES] == sorted(str(p.relative_to(Path(APP).parent)) for p in (Path(APP).parent / "pages").glob("*.py"))
    for path, title, *_ in PAGES[1:]:
        at = AppTest.from_file(APP, default_timeout=120).switch_page(path).run()
        assert not at.exception and at.title[0].value == title, path
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    assert "home" not in names  # no page content in the frame


def test_checkpoints_missing_locally_are_listed_as_downloadable(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("FACEDET_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["status"]) == {"downloadable"}
    assert table.set_index("name").loc["extd", "file"] == PRETRAINED["extd"].url


def test_presentation_mode_is_on_by_default_and_one_choice_for_every_page(weights_dir):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert at.toggle(key="presentation_Pruning_lightweight_face_detectors").value is True
    at.switch_page("pages/4_Layers.py").run()
    assert not at.exception and at.toggle(key="presentation_Layers").value is True
    at.toggle(key="presentation_Layers").set_value(False).run()  # turned off on one page ...
    at.switch_page("pages/3_Trade_offs.py").run()
    assert at.toggle(key="presentation_Trade-offs").value is False  # ... is off on the others
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["font"]["size"] == 16  # the screen size; presentation mode's is larger
    at.toggle(key="presentation_Trade-offs").set_value(True).run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["font"]["size"] > 16
