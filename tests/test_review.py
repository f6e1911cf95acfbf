"""Flags for review (sam2_plus.review) on constructed score / area / box sequences, the per-object timeline,
and the flags in the results JSON, read back by `read_review`. No model runs here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam2_plus.media.export import FrameRecord, ResultJsonWriter, read_results_json
from sam2_plus.review import (
    Flag,
    ReviewThresholds,
    ReviewTracker,
    flag_track,
    read_review,
    review_results,
)


def reasons(flags: list[Flag]) -> list[tuple[int, str]]:
    return [(flag.frame, flag.reason) for flag in flags]


def box_at(x: float, y: float, size: float = 10.0) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def test_lost_and_reappeared_once_each():
    visible = [False, True, True, False, False, True, True]
    flags = flag_track(range(7), visible, [0.9] * 7, [100 if v else 0 for v in visible])
    assert reasons(flags) == [(3, "lost"), (5, "reappeared")]


def test_an_object_that_first_appears_late_is_not_reappeared():
    flags = flag_track(range(4), [False, False, True, True], [0.9] * 4, [0, 0, 100, 100])
    assert flags == []


def test_low_confidence_only_where_visible():
    scores = [0.95, 0.69, 0.4, 0.71]
    flags = flag_track(range(4), [True, True, False, True], scores, [100] * 4)
    assert reasons(flags) == [(1, "low_confidence"), (2, "lost"), (3, "reappeared")]
    assert flags[0].value == pytest.approx(0.69)


def test_area_jump_both_ways_between_consecutive_visible_frames():
    areas = [100, 150, 400, 390, 100, 5, 20]
    flags = flag_track(range(7), [True] * 7, [0.9] * 7, areas)
    # 150 -> 400 (x2.7) and 390 -> 100 (x0.26); 100 -> 5 -> 20 are under min_area
    assert reasons(flags) == [(2, "area_jump"), (4, "area_jump")]
    assert flags[0].value == pytest.approx(400 / 150) and flags[1].value == pytest.approx(100 / 390)


def test_position_jump_in_box_diagonals():
    boxes = [box_at(0, 0), box_at(3, 0), box_at(20, 0), box_at(21, 1)]
    flags = flag_track(range(4), [True] * 4, [0.9] * 4, [100] * 4, boxes)
    assert reasons(flags) == [(2, "position_jump")]
    assert flags[0].value == pytest.approx(17 / math.hypot(10, 10))


def test_no_jump_across_a_gap_only_reappeared():
    boxes = [box_at(0, 0), None, box_at(80, 80, 40)]
    flags = flag_track(range(3), [True, False, True], [0.9] * 3, [100, 0, 1600], boxes)
    assert reasons(flags) == [(1, "lost"), (2, "reappeared")]


def test_far_from_motion_where_the_filter_scored():
    ious = [None, 0.8, 0.1, None, 0.29]
    flags = flag_track(range(5), [True] * 5, [0.9] * 5, [100] * 5, motion_ious=ious)
    assert reasons(flags) == [(2, "far_from_motion"), (4, "far_from_motion")]


def test_thresholds_are_honoured():
    strict = ReviewThresholds(low_confidence=0.95, area_ratio=1.2, position_jump=0.1, min_area=1, motion_iou=0.9)
    flags = flag_track(range(2), [True, True], [0.9, 0.9], [100, 130], [box_at(0, 0), box_at(2, 0)], [None, 0.8],
                       thresholds=strict)
    assert sorted(reasons(flags)) == [(0, "low_confidence"), (1, "area_jump"), (1, "far_from_motion"),
                                      (1, "low_confidence"), (1, "position_jump")]


def test_mismatched_sequence_lengths_name_the_lengths():
    with pytest.raises(ValueError, match=r"one entry per frame \(3\); got lengths \[2, 3\]"):
        flag_track(range(3), [True] * 3, [0.9] * 2, [1] * 3)


def frame(t: int, visible: list[bool], scores: list[float], motion=None, h: int = 20, w: int = 30) -> FrameRecord:
    masks = np.zeros((len(visible), h, w), bool)
    for i, v in enumerate(visible):
        if v:
            masks[i, 2:8, 2 + t: 8 + t] = True
    n = len(visible)
    return FrameRecord(t, list(range(1, n + 1)), masks, None, None, scores, visible, motion)


RUN = [
    frame(0, [True, True], [0.9, 0.9]),
    frame(1, [False, True], [0.2, 0.6], motion=[float("nan"), 0.1]),
    frame(2, [True, True], [0.9, 0.9]),
]


def test_timeline_of_a_run_steps_through_flagged_frames():
    report = review_results(RUN, {1: "mask", 2: "box"})
    one, two = report.objects
    assert one.frames == (0, 1, 2) and one.areas == (36, 0, 36) and one.visible == (True, False, True)
    assert one.scores == pytest.approx((0.9, 0.2, 0.9))
    assert one.flagged_frames == (1, 2) and one.counts() == {"lost": 1, "reappeared": 1}
    assert two.counts() == {"low_confidence": 1, "far_from_motion": 1}
    assert one.next_flagged(0) == 1 and one.next_flagged(1) == 2 and one.next_flagged(2) is None
    assert one.previous_flagged(2) == 1 and one.previous_flagged(1) is None
    assert report.counts() == {1: {"lost": 1, "reappeared": 1}, 2: {"low_confidence": 1, "far_from_motion": 1}}
    assert report.describe()[0] == "object 1 (mask): 1 lost, 1 reappeared; flagged frames 1 (lost), 2 (reappeared)"
    assert report.describe(first=1)[1] == ("object 2 (box): 1 low_confidence, 1 far_from_motion; flagged frames "
                                           "1 (low_confidence, far_from_motion)")


def test_flags_in_the_results_json_and_read_back(tmp_path):
    tracker = ReviewTracker({1: "mask", 2: "box"})
    path = tmp_path / "results.json"
    with ResultJsonWriter(path, None, {1: "mask", 2: "box"}, review=tracker) as writer:
        for result in RUN:
            tracker.write(result)  # as the service's writers do: observed once, asked by every JSON writer
            writer.write(result)
    header, results = read_results_json(path)
    assert header["review"]["thresholds"] == ReviewThresholds().to_json()
    assert [r.frame_idx for r in results] == [0, 1, 2]  # the existing fields read as before
    report, expected = read_review(path), tracker.report()
    for got, want in zip(report.objects, expected.objects, strict=True):
        assert (got.obj_id, got.task, got.frames, got.areas, got.visible) == \
            (want.obj_id, want.task, want.frames, want.areas, want.visible)
        assert got.scores == pytest.approx(want.scores, abs=1e-5)
        assert [(f.frame, f.reason) for f in got.flags] == [(f.frame, f.reason) for f in want.flags]
    low, far = report.object(2).flags_on(1)
    assert (low.reason, far.reason) == ("low_confidence", "far_from_motion")
    assert (low.value, far.value) == (pytest.approx(0.6), pytest.approx(0.1))


def test_read_review_of_a_json_without_flags_computes_them(tmp_path):
    path = tmp_path / "old.json"
    with ResultJsonWriter(path, None, {1: "mask", 2: "box"}) as writer:
        writer.write_all(RUN)
    report = read_review(path)
    assert report.object(1).counts() == {"lost": 1, "reappeared": 1}
    assert report.object(2).counts() == {"low_confidence": 1}  # the Kalman IoU is not in the JSON


def test_the_kalman_iou_reaches_the_writers():
    """Motion-aware tracking's per-object Kalman IoU (MotionRules.motion_scores) becomes
    FrameResult.motion_scores, survives the spool of a backward pass, and is None where no object was scored."""
    import torch

    from sam2_plus.video.motion import FrameQuality, MotionConfig, MotionRules
    from sam2_plus.outputs import ResultSpool
    from sam2_plus.video.predictor import FrameResult as PredictorResult
    from sam2_plus.service import to_frame_record

    rules = MotionRules(MotionConfig(), image_size=1024, num_maskmem=7, max_admitted=16)
    rules.motion(1).quality[4] = FrameQuality(0.9, 0.25)
    rules.motion(2).quality[4] = FrameQuality(0.8, None)
    assert rules.motion_scores([1, 2], 3) is None and rules.motion_scores([2], 4) is None
    scores = rules.motion_scores([1, 2], 4)
    logits = torch.full((2, 20, 30), -1.0)
    result = to_frame_record(PredictorResult(4, [1, 2], logits, torch.zeros(2), None, None, ["mask", "mask"],
                                             scores))
    assert result.motion_scores[0] == pytest.approx(0.25) and np.isnan(result.motion_scores[1])
    with ResultSpool() as spool:
        spool.put(result)
        spool.put(RUN[0])
        replayed = {r.frame_idx: r for r in spool.replay()}
    assert replayed[4].motion_scores[0] == pytest.approx(0.25) and replayed[0].motion_scores is None
