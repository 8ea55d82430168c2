"""Matching the pruned model's detections against the original's (facedet.compare)."""

import numpy as np
import pytest

from facedet.compare import match_detections


def test_matched_only_and_missed_are_a_partition():
    original = np.array([[0, 0, 10, 10, 0.9], [100, 100, 140, 140, 0.8], [50, 50, 60, 60, 0.7]])
    pruned = np.array([[1, 1, 11, 11, 0.95], [200, 200, 220, 220, 0.6], [51, 50, 61, 60, 0.55]])
    result = match_detections(original, pruned)
    assert result.matched.tolist() == [[0, 0], [2, 2]]
    assert result.only_candidate.tolist() == [1]
    assert result.missed.tolist() == [1]
    assert result.ious == pytest.approx([81 / 119, 90 / 110])


def test_one_to_one_best_score_first():
    # Two pruned boxes overlap the same original face: the higher-scoring one takes it,
    # the other stays unmatched (a duplicate is not a second find).
    original = np.array([[0, 0, 10, 10, 0.9]])
    pruned = np.array([[0, 0, 9, 10, 0.3], [0, 0, 10, 10, 0.8]])
    result = match_detections(original, pruned)
    assert result.matched.tolist() == [[0, 1]]
    assert result.only_candidate.tolist() == [0]
    assert result.missed.size == 0


def test_threshold_and_empty_inputs():
    original = np.array([[0, 0, 10, 10, 0.9]])
    shifted = np.array([[5, 0, 15, 10, 0.9]])  # IoU 1/3
    assert match_detections(original, shifted, iou_threshold=0.5).matched.size == 0
    assert match_detections(original, shifted, iou_threshold=0.3).matched.tolist() == [[0, 0]]
    empty = match_detections(np.zeros((0, 5)), shifted)
    assert empty.only_candidate.tolist() == [0] and empty.missed.size == 0
    none_found = match_detections(original, np.zeros((0, 5)))
    assert none_found.missed.tolist() == [0] and none_found.only_candidate.size == 0
