"""Issue 30, the page's Find panel without Gradio: Find on a frame runs the discovery finder a tracking job runs
(`models.finder`), its found objects become mask objects with their label and score, one is removed, and Track
with "keep finding" adds the object that enters later; the removed one does not come back (tracked unseen);
the timeline marks the new object's first frame; the panel's bad values are said precisely; the GPU time counts
the keyframes. Stand-ins: tests/discovery_fakes.py's ScriptedFinder, tests/app_fakes.py's EnteringPredictor."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app_fakes import EnteringPredictor, StandInModels
from discovery_fakes import ScriptedFinder
from media_clips import pattern_frame, write_clip
from sam2_plus.app import timeline as timelines
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.find_panel import FindChoices, parse_find_choices
from sam2_plus.app.gpu_time import tracking_gpu_seconds
from sam2_plus.app.jobs import job_result, run_job
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.proposals import found_on_frame
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.jobs import JobSpec

H, W, FRAMES = 48, 64, 20
pytestmark = pytest.mark.usefixtures("seeded_weights")


def square(x: int, y: int, side: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y:y + side, x:x + side] = True
    return mask


# frame 0: three objects (the largest is proposal 1); keyframe 5: a fourth enters; the others are found there
# too, moved as QuickPredictor's masks move (a pixel right a frame), so the tracked ones cover them: the kept
# objects and the removed one, which the job tracks unseen. On later keyframes nothing is found
A, B, C, D = square(2, 2, 12), square(30, 4, 10), square(4, 30, 8), square(44, 28, 10)
SCRIPT = {0: [(A, 0.95, ""), (B, 0.9, ""), (C, 0.85, "")],
          5: [(np.roll(A, 5, axis=1), 0.95, ""), (np.roll(B, 5, axis=1), 0.9, ""), (D, 0.9, "")]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("find") / "clip.mp4", [pattern_frame(i, H, W) for i in range(FRAMES)],
                      fps=10)


def _models(script=SCRIPT) -> tuple[StandInModels, ScriptedFinder]:
    models, finder = StandInModels(EnteringPredictor()), ScriptedFinder(script)
    models.use_finder(finder)
    return models, finder


def _find(session: AppSession, frame: int, choices: FindChoices, density: str = "normal") -> str:
    request = session.find_request(frame, "sam2++", choices, density)
    outcome = job_result(run_job(JobSpec("find_frame", request).in_folder(session.find_dir()), session.models))
    return session.set_found(found_on_frame(outcome.found, frame, choices.looked_for(density)))


def _track(session: AppSession, choices: FindChoices, density: str = "normal"):
    options = TrackOptions("sam2++", find=session.tracking_find(choices, density))
    return job_result(session.tracking_job(options, AppLimits()))


def test_found_objects_listed_one_removed_and_tracking_adds_the_one_entering_later(clip):
    models, finder = _models()
    session = AppSession.open(clip, AppLimits(), models=models)
    choices = FindChoices(keyframe_interval=5, keep_finding=True)
    assert _find(session, 0, choices) == ("Found 3 object(s) on frame 0 (normal): click a numbered outline to make "
                                          "it an object, or press Add all.")
    assert finder.calls == [0]
    note = session.adopt_all(0)
    assert note == "Added object 1 (proposal 1), object 2 (proposal 2), object 3 (proposal 3) on frame 0."
    for obj_id, mask, score in ((1, A, 0.95), (2, B, 0.9), (3, C, 0.85)):
        obj = session.objects[obj_id]
        np.testing.assert_array_equal(obj.prompts[0].mask, mask)
        assert obj.score == pytest.approx(score) and obj.task == "mask"
    assert "found: score 0.90" in session.objects_html()
    session.select(2)
    session.remove_selected()  # B: must not come back (tracked unseen by the job)
    assert session.tracking_find(choices, "normal").hidden == (2,)
    assert [o["id"] for o in session.prompts_document(finding=True)["objects"]] == [1, 3, 2]

    result = _track(session, choices)
    assert result.frames_done == FRAMES and not result.failed
    assert finder.calls[1:] == [5, 10, 15]  # frame 0 was searched on the page: no keyframe there
    found = result.discovery.found
    # D enters on keyframe 5; B, still in view there, is covered by its unseen track
    assert [(obj_id, f.found_on, f.first_frame) for obj_id, f in found.items()] == [(4, 5, 2)]
    np.testing.assert_array_equal(session.objects[4].prompts[5].mask, D)
    assert set(session.objects) == {1, 3, 4} and session.next_id == 5
    assert session.new_objects() == {4: 2}
    assert session.found_note() == "New objects found while tracking: object 4 from frame 2."
    assert "New on this frame: object 4." in session.describe_flags(2)
    document = json.loads(result.files.results_json.read_text())
    entries = {o["id"]: o for o in document["objects"]}
    assert entries[4]["first_frame"] == 2 and entries[4]["found_on"] == 5 and entries[4]["found_by"] == "everything"
    assert "first_frame" not in entries[1] and 2 not in entries
    assert all(o["id"] != 2 for f in document["frames"] for o in f["objects"])
    session.close()


def test_a_removed_object_stays_out_where_the_page_found(clip):
    """The script finds B on frame 0 only: removed on the page, it does not come back; D is new from keyframe 5."""
    script = {0: SCRIPT[0], 5: [(A, 0.95, ""), (D, 0.9, "")]}
    models, finder = _models(script)
    session = AppSession.open(clip, AppLimits(), models=models)
    choices = FindChoices(keyframe_interval=5, keep_finding=True)
    _find(session, 0, choices)
    session.adopt_all(0)
    session.select(2)
    session.remove_selected()
    result = _track(session, choices)
    assert list(result.discovery.found) == [4] and result.discovery.found[4].first_frame == 2
    np.testing.assert_array_equal(session.objects[4].prompts[5].mask, D)
    assert [obj.name for obj in session.objects.values()] == ["object 1", "object 3", "object 4"]

    # without the skip, the job's own first keyframe finds B again: its unseen track covers it there too
    session.searched.clear()
    session.objects = {k: v for k, v in session.objects.items() if k != 4}
    result = _track(session, choices)
    assert finder.calls[-4:] == [0, 5, 10, 15]
    assert [f.found_on for f in result.discovery.found.values()] == [5]
    session.close()


def test_the_timeline_marks_a_new_object_at_its_first_frame(clip):
    models, _ = _models({0: [(A, 0.9, "")], 10: [(D, 0.8, "")]})
    session = AppSession.open(clip, AppLimits(), models=models)
    result = _track(session, FindChoices(keyframe_interval=10, keep_finding=True))  # no object: found on frame 0
    assert {o: f.first_frame for o, f in result.discovery.found.items()} == {1: 0, 2: 7}
    image = session.render_timeline(0)
    layout = timelines.timeline_layout(session.review, FRAMES)
    x, top = layout.x_of(7), layout.row_top(1)
    new_mark = np.all(image[top:top + layout.row_height - 6, x] == timelines.NEW, axis=-1)
    assert new_mark.sum() >= layout.row_height - 8  # the line across object 2's row
    assert not np.all(image[layout.row_top(0):layout.row_top(0) + 30, layout.x_of(7)] == timelines.NEW, axis=-1).any()
    plain = timelines.render_timeline(session.review, FRAMES, session.object_names(), current=0)
    assert (plain != image).any()
    session.close()


def test_text_mode_labels_and_scores_the_found_objects(clip):
    models, finder = _models({3: [(A, 0.7, "person"), (D, 0.45, "red car")]})
    session = AppSession.open(clip, AppLimits(), models=models)
    choices = parse_find_choices("By text", "Person. red   car.", 15, 0.4, 0.8, 0.9, False)
    assert choices.phrases == ("person", "red car") and choices.settings().mode == "text"
    assert "Found 2 object(s) on frame 3 (person, red car)" in _find(session, 3, choices)
    session.adopt_all(3)
    names = [(o.name, o.label, o.score) for o in session.objects.values()]
    assert names == [("person 1", "person", pytest.approx(0.7)), ("red car 2", "red car", pytest.approx(0.45))]
    assert "found: red car, score 0.45" in session.objects_html()
    assert session.tracking_find(choices, "normal") is None  # keep finding off: the job finds nothing itself
    session.close()


def test_the_density_is_everythings_grid_and_the_job_skips_the_searched_frames(clip):
    choices = FindChoices(keyframe_interval=4, keep_finding=True)
    assert [choices.settings(d).points_per_side for d in ("coarse", "normal", "fine")] == [8, 16, 32]
    settings = choices.for_tracking("fine", (0,))
    assert settings.points_per_side == 32 and settings.skip_frames == (0,)
    assert [f for f in range(10) if settings.is_keyframe(f, 0)] == [4, 8]
    # the options JSON carries them, so /track can ask the same
    assert TrackOptions(find=settings).to_json()["find"]["skip_frames"] == [0]


@pytest.mark.parametrize("controls, message", [
    (("By text", "  ", 15, 0.3, 0.8, 0.9, True), "Find: By text needs what to find, e.g. 'person. red car.'"),
    (("By text", ". ".join(f"thing {i}" for i in range(20)), 15, 0.3, 0.8, 0.9, True), "Find: 20 phrases; at most 16"),
    (("Everything", "", 0, 0.3, 0.8, 0.9, True), "the keyframe interval must be a whole number of frames from 1"),
    (("Everything", "", 2.5, 0.3, 0.8, 0.9, True), "the keyframe interval must be a whole number of frames from 1"),
    (("Everything", "", None, 0.3, 0.8, 0.9, True), "the keyframe interval must be a whole number of frames, got None"),
    (("Everything", "", 15, 0.3, 1.5, 0.9, True), "Find: the predicted IoU must be a number from 0 to 1, got 1.5"),
    (("Somehow", "", 15, 0.3, 0.8, 0.9, True), "Find: choose Everything or By text, not 'Somehow'"),
])
def test_bad_panel_values_are_said_precisely(controls, message):
    with pytest.raises(AppInputError, match=message.replace("(", "\\(").replace(")", "\\)").replace(".", "\\.")):
        parse_find_choices(*controls)


def test_nothing_prompted_and_no_keep_finding_is_still_refused(clip):
    session = AppSession.open(clip, AppLimits(), models=_models()[0])
    with pytest.raises(AppInputError, match="object 1 \\(object 1\\) has no prompt yet"):
        _track(session, FindChoices())
    session.close()


def test_gpu_time_counts_the_keyframes(clip):
    session = AppSession.open(clip, AppLimits(), models=_models()[0])
    session.click("Positive click", 0, 10, 10)
    plain = session.plan_job(TrackOptions("sam2++"), AppLimits())
    dense = session.plan_job(TrackOptions("sam2++", find=FindChoices(keyframe_interval=1).settings("fine")),
                             AppLimits())
    sparse = session.plan_job(TrackOptions("sam2++", find=FindChoices(keyframe_interval=15).settings("fine")),
                              AppLimits())
    assert plain.gpu_seconds < sparse.gpu_seconds < dense.gpu_seconds
    text = replace(sparse.spec.request, discovery=FindChoices("text", ("person",), 15).settings())
    assert tracking_gpu_seconds(replace(sparse.spec, request=text)) > plain.gpu_seconds
    session.close()


def test_a_second_find_on_a_frame_offers_only_what_the_objects_there_do_not_hold(clip):
    models, finder = _models({0: SCRIPT[0]})
    session = AppSession.open(clip, AppLimits(), models=models)
    choices = FindChoices(keyframe_interval=5)
    _find(session, 0, choices)
    session.adopt_proposal_at(0, 8, 8)  # A becomes object 1
    session.found = None
    note = _find(session, 0, choices)
    assert note == ("Found 2 object(s) on frame 0 (normal; 1 more the objects there hold already): click a "
                    "numbered outline to make it an object, or press Add all.")
    assert [p.number for p in session.found.proposals] == [1, 2]
    np.testing.assert_array_equal(session.found.proposals[0].mask, B)
    session.close()
