"""The app as a server others may reach: allow-listed data roots, read-only mode, quiet errors."""

import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture
def engine_dirs(tmp_path, monkeypatch, weights_dir):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PRUNING_RESULTS_DB", str(tmp_path / "store.sqlite3"))
    monkeypatch.delenv("FACEDET_WIDER_ROOTS", raising=False)
    monkeypatch.delenv("FACEDET_READ_ONLY", raising=False)
    return tmp_path


def _prune_page():
    return AppTest.from_file(APP, default_timeout=300).switch_page("pages/2_Prune.py")


def test_wider_roots_come_from_the_allow_list_never_typed(engine_dirs, monkeypatch):
    at = _prune_page().run()
    # No field to type a server path into: the only text field is the group rates'.
    assert not at.exception and [t.key for t in at.text_input] == ["prune_group_rates"]
    at.session_state["prune_data"] = "wider"
    at.run()
    at.button[0].click().run()
    assert at.error[0].value == "No WIDER FACE root is configured on this server (FACEDET_WIDER_ROOTS)."
    allowed = engine_dirs / "wider"
    allowed.mkdir()
    monkeypatch.setenv("FACEDET_WIDER_ROOTS", f"{allowed}:/no/such/folder")
    at = _prune_page().run()
    assert [str(o) for o in at.selectbox(key="prune_wider_root").options] == [str(allowed)]


def test_read_only_mode_starts_and_deletes_nothing(engine_dirs, monkeypatch):
    from app_support import engine
    from facedet.errors import FacedetError

    monkeypatch.setenv("FACEDET_READ_ONLY", "1")
    at = _prune_page().run()
    assert not at.exception
    assert at.button[0].disabled  # the form's Start
    assert any("Read-only mode" in i.value for i in at.sidebar.info)
    with pytest.raises(FacedetError, match="Read-only mode"):
        engine.start_session("eresfd", "fpgm", 0.3)
    with pytest.raises(FacedetError, match="Read-only mode"):
        engine.delete_runs([1])
    with pytest.raises(FacedetError, match="Read-only mode"):
        engine.save_uploads([("a.jpg", b"x")])
    assert not (engine_dirs / "data").exists()  # nothing written


def test_home_shows_every_data_location_and_each_part_moves_alone(engine_dirs, monkeypatch):
    from pruning.paths import locations

    monkeypatch.setenv("PRUNING_SESSIONS_DIR", str(engine_dirs / "elsewhere"))
    parts = locations()
    assert parts["session runs"] == engine_dirs / "elsewhere"
    assert parts["uploads"] == engine_dirs / "data" / "uploads"
    assert parts["results store"] == engine_dirs / "store.sqlite3"
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    text = at.expander[0].markdown[0].value
    assert all(str(path) in text for path in parts.values())


def test_server_defaults_keep_tracebacks_and_strangers_out():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["toolbarMode"] == "viewer"
    assert config["server"]["maxUploadSize"] == 64
    # no full garbage collection after every script run: it held the GIL for ~150 ms per slider move
    assert config["runner"]["postScriptGC"] is False
