"""The app's review of a run: the timeline image (rows, flags, cursor, clicks), the live timeline of a running
job, and stepping through flagged frames in a session. The browser test is in test_app_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app_fakes import StandInModels, VanishingPredictor
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.app import jobs
from sam2_plus.app.editing import POSITIVE
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.plan import plan_job
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.app.timeline import (
    REASON_COLOURS,
    REMOVED,
    describe_flags_on,
    frame_at_click,
    render_timeline,
    timeline_layout,
)
from sam2_plus.media.export import FrameRecord
from sam2_plus.media.render import color_for_id
from sam2_plus.review import ObjectTimeline, ObservationLog, ReviewReport, flag_track, review_results

H, W, T = 48, 64, 10
ABSENT = {4, 5}  # lost on frame 4, reappeared on frame 6


pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("review") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)],
                      fps=10)


def _timeline(obj_id: int, visible: list[bool], scores: list[float]) -> ObjectTimeline:
    frames = list(range(len(visible)))
    areas = [100 if v else 0 for v in visible]
    flags = flag_track(frames, visible, scores, areas)
    return ObjectTimeline(obj_id, "mask", tuple(frames), tuple(scores), tuple(areas), tuple(visible), tuple(flags))


def _report() -> ReviewReport:
    lost = [f not in ABSENT for f in range(T)]
    return ReviewReport((_timeline(1, [True] * T, [0.95] * T),
                         _timeline(2, lost, [0.95 if v else 0.1 for v in lost])))


def test_report_steps_through_flags_of_every_object():
    report = _report()
    assert report.flagged_frames == (4, 6)
    assert {obj_id: [f.reason for f in flags] for obj_id, flags in report.flags_on(4).items()} == {2: ["lost"]}
    assert report.flags_on(5) == {}
    assert (report.next_flagged(0), report.next_flagged(4), report.next_flagged(6)) == (4, 6, None)
    assert (report.previous_flagged(9), report.previous_flagged(6), report.previous_flagged(4)) == (6, 4, None)


def test_timeline_draws_rows_flags_and_cursor():
    report = _report()
    image = render_timeline(report, T, {1: "car", 2: "dog"}, current=2)
    layout = timeline_layout(report, T)
    assert image.shape == (layout.height, layout.width, 3) and image.dtype == np.uint8
    for row, obj_id in enumerate((1, 2)):  # the presence line in the object's colour, in its row
        rows = image[layout.row_top(row):layout.row_top(row + 1), layout.plot_left:layout.plot_right]
        assert (rows == color_for_id(obj_id)).all(axis=-1).sum() > 100
    lost_mark = image[layout.row_top(1) + 2, layout.x_of(4)]
    np.testing.assert_array_equal(lost_mark, REASON_COLOURS["lost"])
    reappeared_mark = image[layout.row_top(1) + 2, layout.x_of(6)]
    np.testing.assert_array_equal(reappeared_mark, REASON_COLOURS["reappeared"])
    assert not (image[layout.row_top(0) + 2, layout.x_of(4)] == REASON_COLOURS["lost"]).all()  # object 1: no flag
    cursor_column = image[layout.row_top(0) + 20, layout.x_of(2)]
    assert cursor_column.max() < 100  # the cursor is dark ink
    moved = render_timeline(report, T, {}, current=3)
    assert not np.array_equal(moved, image)


def test_a_removed_object_s_row_is_greyed_from_the_frame_it_left():
    report = ReviewReport((_timeline(1, [True] * T, [0.95] * T), _timeline(2, [True] * 6, [0.95] * 6)))
    layout = timeline_layout(report, T)
    image = render_timeline(report, T, {1: "car"}, removed={2: 6})
    greyed = (image == REMOVED).all(axis=-1)
    for row, left in ((0, None), (1, layout.x_of(6))):
        band = greyed[layout.row_top(row):layout.row_top(row) + layout.row_height - 6]
        columns = np.flatnonzero(band.any(axis=0))
        if left is None:
            assert columns.size == 0  # object 1 was not removed
        else:
            assert columns.min() > left and columns.max() == layout.plot_right and band[:, :left].sum() == 0
    assert np.array_equal(render_timeline(report, T, {1: "car"}), render_timeline(report, T, {1: "car"}, removed={}))


def test_a_click_selects_the_frame_under_it_or_the_flag_near_it():
    report = _report()
    layout = timeline_layout(report, T)
    for frame in range(T):
        assert layout.frame_at(layout.x_of(frame)) == frame
    assert frame_at_click(report, T, layout.x_of(4) + layout.snap - 1) == 4
    assert frame_at_click(report, T, 0) == 0 and frame_at_click(report, T, layout.width) == T - 1
    long = ReviewReport((_timeline(1, [True] * 1000, [0.95] * 1000),))
    long_layout = timeline_layout(long, 1000)
    assert frame_at_click(long, 1000, long_layout.x_of(500)) == 500


def test_flags_are_described_for_people():
    report = _report()
    assert describe_flags_on(report, 4, {2: "dog"}) == "Frame 4 is flagged. dog: lost."
    assert "2 flagged frames" in describe_flags_on(report, 0, {})
    assert describe_flags_on(ReviewReport((_timeline(1, [True] * 3, [0.9] * 3),)), 0, {}) == "No frame is flagged."


def _record(frame: int, visible: bool) -> FrameRecord:
    masks = np.zeros((1, H, W), bool)
    masks[0, 10:20, 10:30] = visible
    return FrameRecord(frame, [1], masks, np.array([[10, 10, 30, 20]], np.float32), np.zeros((1, 2), np.float32),
                       [0.9 if visible else 0.1], [visible])


def test_observation_log_orders_frames_tracked_backwards_then_forwards():
    records = [_record(f, f not in ABSENT) for f in range(T)]
    log = ObservationLog({1: "mask"})
    for frame in [3, 2, 1, 0, 4, 5, 6, 7, 8, 9]:  # a backward pass from the prompt, then the forward one
        log.add(records[frame])
    assert log.report() == review_results(records, {1: "mask"})


def _prompts() -> str:
    return json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[20, 20]]}]}]})


def test_a_job_streams_its_timeline_and_ends_with_the_flags(clip, tmp_path, monkeypatch):
    models = StandInModels(VanishingPredictor(ABSENT))
    monkeypatch.setattr(jobs, "LIVE_FRAME_INTERVAL", 0.0)
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL", 0.0)
    plan = plan_job(str(clip), _prompts(), "{}", AppLimits())
    live, result = [], None
    for update in jobs.run_job(plan.job_spec(tmp_path / "job", tmp_path / "stop"), models):
        if update.review is not None:
            live.append(update.review.object(1).frames)
        result = update.result or result
    assert live and all(frames == tuple(range(len(frames))) for frames in live)  # growing, in frame order
    assert len(live[-1]) <= T
    assert result.review.flagged_frames == (4, 6)
    assert [f.reason for f in result.review.object(1).flags] == ["lost", "reappeared"]


def test_session_timeline_and_flag_steps(clip):
    session = AppSession.open(clip, AppLimits(), models=StandInModels(VanishingPredictor(ABSENT)))
    try:
        with pytest.raises(AppInputError, match="track first"):
            session.flagged_frame(0, forward=True)
        assert session.render_timeline(0) is None and session.describe_flags(0) == ""
        session.click_view(POSITIVE, 0, 20 * session.view_scale, 20 * session.view_scale)
        for _ in session.tracking_job(TrackOptions(MICRO, False), AppLimits()):
            pass
        assert session.flagged_frame(0, forward=True) == 4
        assert session.flagged_frame(4, forward=True) == 6
        assert session.flagged_frame(9, forward=False) == 6
        with pytest.raises(AppInputError, match="no flagged frame after frame 6"):
            session.flagged_frame(6, forward=True)
        assert "object 1: lost" in session.describe_flags(4)
        layout = timeline_layout(session.review, T)
        assert session.frame_at_timeline(layout.x_of(6) + 2) == 6
        assert session.render_timeline(4).shape == (layout.height, layout.width, 3)
    finally:
        session.close()

