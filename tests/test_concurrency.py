"""Background work (a session's compaction) must not change what other threads compute."""

import threading

import numpy as np
import torch

from facedet.detector import load_detector
from facedet.images import read_image
from facedet.weights import load_model
from pruning.compact import compact_model


def test_a_detection_during_compaction_gives_the_same_faces(weights_dir, assets_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    detector = load_detector("eresfd", backend="torch")
    image = read_image(assets_dir / "photos" / "holdout" / "office-group-13.jpg")[::2, ::2].copy()
    expected = detector.detect(image, scale=1.0)
    masked, _ = load_model("eresfd-fpgm-50")
    done = threading.Event()
    failures = []

    def compact_repeatedly():
        try:
            while not done.is_set():
                compact_model(masked, check=False)
        except Exception as err:  # noqa: BLE001 - reported by the test below
            failures.append(err)
            done.set()

    worker = threading.Thread(target=compact_repeatedly)
    worker.start()
    try:
        # Compaction runs its probes again and again meanwhile; every detection must be unchanged.
        for _ in range(25):
            got = detector.detect(image, scale=1.0)
            assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-4)
    finally:
        done.set()
        worker.join()
    assert not failures


def test_thread_counts_change_only_from_the_main_thread():
    from facedet.threads import torch_threads

    before = torch.get_num_threads()
    seen = []

    def in_a_server_thread():
        with torch_threads(before + 3):
            seen.append(torch.get_num_threads())

    worker = threading.Thread(target=in_a_server_thread)
    worker.start()
    worker.join()
    assert seen == [before] and torch.get_num_threads() == before
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
