"""The home page (streamlit AppTest): device, checkpoints, results store, links to every page."""

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
    assert [link.label for link in at.sidebar.get("page_link")] == navigation
    assert [link.label.split("**")[1] for link in at.main.get("page_link")] == navigation[1:]


def test_checkpoints_missing_locally_are_listed_as_downloadable(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("FACEDET_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["status"]) == {"downloadable"}
    assert table.set_index("name").loc["extd", "file"] == PRETRAINED["extd"].url
