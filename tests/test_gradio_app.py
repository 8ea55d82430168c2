"""The Gradio front: its ``compare`` endpoint, called over HTTP with gradio_client, says what the library says."""

import json
import socket
import subprocess
import sys

import pytest
from gradio_client import Client, handle_file

from facedet.compare import compare_detectors
from facedet.detector import load_detector
from facedet.images import read_image

import gradio_app  # noqa: E402  (the project root is on sys.path under pytest's rootdir)

PHOTO = gradio_app.SAMPLES["office-group-13.jpg"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(weights_dir):
    """The app served in this process on a free localhost port, and a client of it."""
    port = _free_port()
    gradio_app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        gradio_app.demo.close()


def _counts(summary):
    keys = ("matched", "only_reference", "only_candidate", "threshold")
    sides = {side: {k: summary[side][k] for k in ("faces", "parameters", "nonzero_parameters", "scale")}
             for side in ("reference", "candidate")}
    return {**{k: summary[k] for k in keys}, **sides}


def test_published_comparison_over_http_equals_the_library_and_the_cli(client, weights_dir):
    original, pruned, summary = client.predict(handle_file(PHOTO), "eresfd", "published", "fpgm", 30, 0.5,
                                               api_name="/compare")
    *_, expected = compare_detectors(load_detector("eresfd", backend="torch"),
                                     load_detector("eresfd-fpgm-30", backend="torch"), read_image(PHOTO), 0.5)
    assert _counts(summary) == _counts(expected)
    assert summary["reference"]["faces"] >= 10  # a 13-face group photo: a real comparison, not an empty one
    assert summary["milliseconds_this_photo"] > 0
    cli = subprocess.run([sys.executable, "-m", "facedet", "compare", "eresfd", "eresfd-fpgm-30", PHOTO, "--json"],
                         capture_output=True, text=True, check=True)
    assert _counts(summary) == _counts(json.loads(cli.stdout))
    for picture in (original, pruned):  # the two annotated images come back as files
        assert read_image(picture).ndim == 3


def test_bfpgm_checkpoints_are_a_source(client):
    _, _, summary = client.predict(handle_file(PHOTO), "eresfd", "bfpgm", "fpgm", 30, 0.5, api_name="/compare")
    *_, expected = compare_detectors(load_detector("eresfd", backend="torch"),
                                     load_detector("bfpgm-eresfd-30", backend="torch"), read_image(PHOTO), 0.5)
    assert _counts(summary) == _counts(expected) and summary["candidate"]["weights"] == "bfpgm-eresfd-30"
    with pytest.raises(Exception, match="no B-FPGM checkpoint 'bfpgm-extd-30'"):
        client.predict(handle_file(PHOTO), "extd", "bfpgm", "fpgm", 30, 0.5, api_name="/compare")


def test_a_peer_detector_is_a_source(client):
    _, pruned, summary = client.predict(handle_file(PHOTO), "eresfd", "peer", "yunet-s", 0, 0.5, api_name="/compare")
    *_, expected = compare_detectors(load_detector("eresfd", backend="torch"), load_detector("yunet-s"),
                                     read_image(PHOTO), 0.5)
    assert _counts(summary) == _counts(expected)
    assert summary["candidate"]["detector"] == "yunet" and summary["candidate"]["weights"] == "yunet-s"
    assert summary["matched"] >= 10 and read_image(pruned).ndim == 3  # the 13-face photo: both find most faces
    with pytest.raises(Exception, match="unknown peer detector 'yunet-x'"):
        client.predict(handle_file(PHOTO), "eresfd", "peer", "yunet-x", 0, 0.5, api_name="/compare")


def test_oneshot_comparison_is_labelled_no_fine_tuning(client):
    _, _, summary = client.predict(handle_file(PHOTO), "extd", "oneshot", "l2", 80, 0.5, api_name="/compare")
    assert "no fine-tuning" in summary["candidate"]["weights"]
    assert summary["candidate"]["nonzero_parameters"] < summary["reference"]["nonzero_parameters"]


@pytest.mark.parametrize("name, data", [
    ("notes.jpg", b"not an image at all"),
    ("truncated.jpg", None),  # filled in below: the first half of a real JPEG
])
def test_bad_upload_is_a_one_line_error_not_a_crash(client, tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if data is not None else open(PHOTO, "rb").read()[:5000])
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(path)), "eresfd", "published", "fpgm", 30, 0.5, api_name="/compare")
    message = str(caught.value)
    assert name in message and "Traceback" not in message and "\n" not in message.strip()
    # The server survives it: the next request works.
    _, _, summary = client.predict(handle_file(PHOTO), "eresfd", "published", "l1", 10, 0.5, api_name="/compare")
    assert summary["reference"]["faces"] > 0


def test_too_thin_photo_and_unknown_choices_are_errors(client, tmp_path):
    from PIL import Image

    thin = tmp_path / "thin.png"
    Image.new("RGB", (2000, 3)).save(thin)
    for args, words in [((str(thin), "eresfd", "published", "fpgm", 30), "at least"),
                        ((PHOTO, "eresfd", "published", "taylor", 30), "published checkpoints"),
                        ((PHOTO, "eresfd", "published", "fpgm", 60), "no published checkpoint")]:
        with pytest.raises(Exception, match=words):
            client.predict(handle_file(args[0]), *args[1:], 0.5, api_name="/compare")
