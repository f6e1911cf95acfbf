"""Discovery: the coverage rule, and jobs that find their objects (stand-in masks and detector on a clip of
coloured squares entering, leaving and coming back, touching and splitting), then the real finders on the micro
model's features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app_fakes import StandInModels
from discovery_fakes import (BoxImagePredictor, ColourDetector, ColourFinder, ColourTracker, Square, draw,
                             write_clip)
from micro_model import MICRO
from sam2_plus.discovery.coverage import Look, LostObject, decide
from sam2_plus.discovery.finder import TextFinder
from sam2_plus.discovery.found import Found
from sam2_plus.discovery.settings import DiscoveryError, DiscoverySettings, parse_find, settings_from_json
from sam2_plus.discovery.tracking import prompt_for
from sam2_plus.errors import TrackError
from sam2_plus.service import TrackOutputs, prepare_request, run_tracking
from sam2_plus.weights import WeightsSource

SEEDED = WeightsSource("seeded")
# red and yellow touch; green enters on frame 10; blue leaves after frame 12 and is back from frame 21;
# magenta splits in two from frame 20 on
SCRIPT = [Square("red", range(0, 40), 5, 5), Square("green", range(10, 40), 60, 40, dx=0),
          Square("blue", range(0, 13), 5, 60, dx=0), Square("blue", range(21, 40), 5, 60, dx=0),
          Square("yellow", range(0, 40), 21, 5), Square("magenta", range(0, 40), 90, 70, dx=0, split_at=20)]


def square_mask(x1, y1, x2, y2, size=(40, 40)):
    mask = np.zeros(size, bool)
    mask[y1:y2, x1:x2] = True
    return mask


# --------------------------------------------------------------------------- the rule
def test_a_found_mask_is_covered_by_iou_or_by_lying_inside_tracked_objects():
    image = np.zeros((40, 40, 3), np.uint8)
    settings = DiscoverySettings("everything")
    tracked = {1: square_mask(0, 0, 20, 20)}
    same = Found(square_mask(1, 1, 20, 20), 0.9)  # IoU 0.9
    part = Found(square_mask(0, 0, 8, 20), 0.8)  # IoU 0.4 but all inside
    touching = Found(square_mask(20, 0, 30, 10), 0.7)  # shares an edge, nothing inside
    straddling = Found(square_mask(10, 20, 30, 30), 0.6)  # outside the tracked one, half over `touching`'s
    kinds = [d.kind for d in decide([same, part, touching, straddling], tracked, [], image, settings, room=5)]
    assert kinds == ["covered", "covered", "new", "new"]
    covering = decide([same, part], tracked, [], image, settings, room=5)
    assert [d.obj_id for d in covering] == [1, 1]


def test_masks_accepted_on_a_keyframe_cover_the_ones_after_them():
    image = np.zeros((40, 40, 3), np.uint8)
    whole, half = Found(square_mask(0, 0, 20, 20), 0.9), Found(square_mask(0, 0, 10, 20), 0.5)
    kinds = [d.kind for d in decide([half, whole], {}, [], image, DiscoverySettings("everything"), room=5)]
    assert kinds == ["new", "covered"]  # best score first: the whole, then its half is a part of it


def test_a_lost_object_takes_back_a_mask_that_looks_like_it_with_the_same_label():
    image = draw([Square("red", range(1), 2, 2, size=10), Square("green", range(1), 20, 20, size=10)], 0, (40, 40))
    red_look = Look.of(image, square_mask(2, 2, 12, 12))
    settings = DiscoverySettings("text", ("thing",))
    red, green = Found(square_mask(2, 2, 12, 12), 0.9, "thing"), Found(square_mask(20, 20, 30, 30), 0.8, "thing")
    decisions = decide([red, green], {}, [LostObject(7, "thing", red_look)], image, settings, room=5)
    assert [(d.kind, d.obj_id) for d in decisions] == [("reentry", 7), ("new", None)]
    assert decisions[0].similarity > 0.99
    other_label = decide([red], {}, [LostObject(7, "car", red_look)], image, settings, room=5)
    assert other_label[0].kind == "new"


def test_past_the_object_limit_found_objects_are_left_out():
    image = np.zeros((40, 40, 3), np.uint8)
    found = [Found(square_mask(10 * i, 0, 10 * i + 5, 5), 0.9 - i / 10) for i in range(4)]
    kinds = [d.kind for d in decide(found, {}, [], image, DiscoverySettings("everything"), room=2)]
    assert kinds == ["new", "new", "limit", "limit"]


def test_a_found_mask_becomes_each_tasks_prompt():
    mask = square_mask(10, 4, 20, 30)
    assert prompt_for("mask", 3, mask).mask is mask or np.array_equal(prompt_for("mask", 3, mask).mask, mask)
    assert prompt_for("box", 3, mask).box.tolist() == [10, 4, 20, 30]
    (x, y), = prompt_for("point", 3, mask).points.tolist()
    assert mask[int(y), int(x)] and 13 <= x <= 17 and 15 <= y <= 19


# --------------------------------------------------------------------------- settings
def test_settings_from_the_cli_and_the_options_json():
    assert parse_find("everything") == DiscoverySettings("everything")
    assert parse_find("Person.  red  car. person,dog").phrases == ("person", "red car", "dog")
    assert settings_from_json({"phrases": ["cat", "dog"], "keyframe_interval": 5}) == DiscoverySettings(
        "text", ("cat", "dog"), keyframe_interval=5)
    assert settings_from_json(None) is None
    for bad, words in [({"mode": "text"}, "needs at least one phrase"), ({"keyframe_interval": 0}, "keyframe_interval"),
                       ({"colour": 1}, "unknown key"), ({"cover_iou": 2}, "from 0 to 1"), ("", "give 'everything'"),
                       ({"backfill": "yes"}, "'backfill' must be bool")]:
        with pytest.raises(DiscoveryError, match=words):
            settings_from_json(bad)


# --------------------------------------------------------------------------- jobs with stand-ins
def run_job(tmp_path, finder, settings, tracker=None, prompts=None, model="sam2.1-tiny", frames=40, **outputs):
    clip = tmp_path / "clip"
    if not clip.exists():
        write_clip(clip, SCRIPT, frames)
    models = StandInModels(tracker or ColourTracker(sticky_loss=True))
    models.use_finder(finder)
    request = prepare_request(clip, prompts, model=model, weights=SEEDED, discovery=settings)
    summary = run_tracking(request, TrackOutputs(results_json=tmp_path / "results.json", **outputs), models=models)
    return summary, json.loads((tmp_path / "results.json").read_text())


def visible_frames(document, obj_id):
    return [f["frame"] for f in document["frames"] for o in f["objects"] if o["id"] == obj_id and o["visible"]]


def test_everything_creates_each_object_once_from_the_frame_it_entered(tmp_path):
    finder = ColourFinder()
    summary, document = run_job(tmp_path, finder, DiscoverySettings("everything", min_area=0.001))
    assert finder.calls == [0, 15, 30]  # the keyframes, each once
    found = summary.discovery.found
    # red, blue, yellow, magenta on frame 0 (score order), green found on 15 and tracked back to frame 10
    assert {i: (f.found_on, f.first_frame) for i, f in found.items()} == {
        1: (0, 0), 2: (0, 0), 3: (0, 0), 4: (0, 0), 5: (15, 10)}
    assert summary.tasks == {i: "mask" for i in range(1, 6)}
    # blue (2) came back on frame 21; the tracker had lost it, keyframe 30 gave it back under its id, no 6th object
    assert summary.discovery.reentries == [(2, 30)]
    assert visible_frames(document, 2) == list(range(0, 13)) + list(range(30, 40))
    assert visible_frames(document, 5) == list(range(10, 40))
    assert [o["id"] for o in document["objects"]] == [1, 2, 3, 4, 5]
    assert document["objects"][4] == {"id": 5, "task": "mask", "label": "", "score": 0.89, "first_frame": 10,
                                      "found_on": 15, "found_by": "everything"}
    # the halves of magenta (4) after its split stay one object
    split = next(f for f in document["frames"] if f["frame"] == 30)
    assert len(split["objects"]) == 5


def test_the_object_limit_bounds_what_is_found(tmp_path):
    summary, _ = run_job(tmp_path, ColourFinder(), DiscoverySettings("everything", min_area=0.001, max_objects=3))
    assert list(summary.tasks) == [1, 2, 3]
    # magenta on 0, 15 and 30 (two halves there), green on 15 and 30
    assert summary.discovery.left_out == 6
    assert "were not added: the job holds 3 objects at most" in summary.describe()


def test_without_backfill_a_new_object_starts_on_its_keyframe(tmp_path):
    summary, document = run_job(tmp_path, ColourFinder(), DiscoverySettings("everything", min_area=0.001,
                                                                            backfill=False))
    assert summary.discovery.found[5].first_frame == 15
    assert visible_frames(document, 5) == list(range(15, 40))


def test_text_finds_only_the_named_objects_labelled_with_their_phrase(tmp_path):
    settings = DiscoverySettings("text", ("green", "blue"), keyframe_interval=10, min_area=0.001)
    detector = ColourDetector()
    summary, document = run_job(tmp_path, TextFinder(detector, BoxImagePredictor(), settings), settings)
    assert detector.calls == 4  # keyframes 0, 10, 20, 30
    assert {i: (f.label, f.first_frame) for i, f in summary.discovery.found.items()} == {
        1: ("blue", 0), 2: ("green", 10)}
    assert summary.discovery.reentries == [(1, 30)]
    assert [(o["id"], o["label"], o["score"]) for o in document["objects"]] == [(1, "blue", 0.8), (2, "green", 0.8)]


def test_hand_prompted_objects_and_found_ones_combine(tmp_path):
    red = {"objects": [{"id": 7, "task": "box", "prompts": [{"frame": 5, "box": [10, 5, 26, 21]}]}]}
    summary, document = run_job(tmp_path, ColourFinder(), DiscoverySettings("everything", min_area=0.001),
                                prompts=red, model="sam2++")
    # red is object 7 (tracked back to frame 0 first); discovery runs from frame 5: 5, 20, 35
    found = summary.discovery.found
    assert summary.discovery.keyframes == [5, 20, 35]
    assert [f.obj_id for f in found.values()] == [8, 9, 10, 11]  # blue, yellow, magenta on 5, green on 20
    assert found[11].first_frame == 10 and found[11].found_on == 20
    assert visible_frames(document, 7) == list(range(40))


def test_a_stopped_job_still_writes_what_it_tracked(tmp_path):
    clip = write_clip(tmp_path / "clip", SCRIPT, 40)
    models = StandInModels(ColourTracker())
    models.use_finder(ColourFinder())
    request = prepare_request(clip, None, model="sam2.1-tiny", weights=SEEDED,
                              discovery=DiscoverySettings("everything", min_area=0.001))
    seen = []
    summary = run_tracking(request, TrackOutputs(results_json=tmp_path / "r.json"), models=models,
                           on_result=lambda r: seen.append(r.frame_idx), should_stop=lambda: len(seen) >= 20)
    document = json.loads((tmp_path / "r.json").read_text())
    assert summary.stopped and [f["frame"] for f in document["frames"]] == list(range(20))
    assert list(summary.tasks) == [1, 2, 3, 4, 5]


def test_a_found_task_the_model_lacks_is_refused_before_tracking(tmp_path):
    clip = write_clip(tmp_path / "clip", SCRIPT, 3)
    with pytest.raises(TrackError, match="no 'box' task"):
        prepare_request(clip, None, model="sam2.1-tiny", weights=SEEDED,
                        discovery=DiscoverySettings("everything", task="box"))


# --------------------------------------------------------------------------- the real finders
def test_everything_on_the_micro_model_finds_on_the_trackers_features(tmp_path, monkeypatch):
    """The real pass with the real generator: keyframes cost no second encoder pass."""
    from sam2_plus.modeling.sam2_model import SAM2Model
    from sam2_plus.provider import ModelCache

    clip = write_clip(tmp_path / "clip", SCRIPT, 12)
    models = ModelCache()
    calls = []
    encode = SAM2Model.encode_image
    monkeypatch.setattr(SAM2Model, "encode_image", lambda self, x: calls.append(x.shape[0]) or encode(self, x))
    settings = DiscoverySettings("everything", keyframe_interval=5, points_per_side=4, pred_iou_thresh=0.0,
                                 stability_score_thresh=0.0, min_area=0.0001, max_area=1.0, backfill=False)
    request = prepare_request(clip, None, model=MICRO, weights=SEEDED, discovery=settings)
    summary = run_tracking(request, TrackOutputs(results_json=tmp_path / "r.json"), models=models)
    assert summary.frames_done == 12 and summary.discovery.keyframes[:1] == [0]
    tracked_frames = 12 if summary.tasks else 0
    # one encoder pass per frame: the keyframes' automatic masks ran on the tracker's own features
    assert len(calls) == max(tracked_frames, len(summary.discovery.keyframes))


def test_labels_reach_the_tools_formats_and_the_stored_records(tmp_path):
    import zipfile
    import xml.etree.ElementTree as ET

    from sam2_plus.outputs import RecordFile

    settings = DiscoverySettings("text", ("green", "blue"), keyframe_interval=10, min_area=0.001)
    summary, _ = run_job(tmp_path, TextFinder(ColourDetector(), BoxImagePredictor(), settings), settings,
                         export=tmp_path / "results.zip", export_formats=("coco", "cvat"),
                         records=tmp_path / "records.jsonl")
    with zipfile.ZipFile(tmp_path / "results.zip") as archive:
        names = archive.namelist()
        coco = json.loads(archive.read(next(n for n in names if n.startswith("coco/") and n.endswith(".json"))))
        cvat = ET.fromstring(archive.read(next(n for n in names if n.startswith("cvat/") and n.endswith(".xml"))))
        results = json.loads(archive.read("results.json"))
    assert [c["name"] for c in coco["categories"]] == ["blue_1", "green_2"]
    assert sorted({t.get("label") for t in cvat.iter("track")}) == ["blue_1", "green_2"]
    assert [o["label"] for o in results["objects"]] == ["blue", "green"]
    records = RecordFile(tmp_path / "records.jsonl")
    assert records.object_fields[2] == {"label": "green", "score": 0.8, "first_frame": 10, "found_on": 10,
                                        "found_by": "text"}


def test_a_hidden_object_is_tracked_unseen_and_never_found_again(tmp_path):
    """A found object turned down (the page's removed one) goes with the prompts and `hidden`: covered on every
    keyframe, written nowhere."""
    yellow = {"objects": [{"id": 9, "task": "mask", "prompts": [{"frame": 0, "box": [21, 5, 37, 21]}]}]}
    settings = DiscoverySettings("everything", min_area=0.001, hidden=(9,), skip_frames=(15,))
    finder = ColourFinder()
    summary, document = run_job(tmp_path, finder, settings, prompts=yellow)
    assert finder.calls == [0, 30]  # 15 is skipped
    assert 9 not in summary.tasks and all(o["id"] != 9 for f in document["frames"] for o in f["objects"])
    assert [o["id"] for o in document["objects"]] == [10, 11, 12, 13]  # red, blue, magenta; green (first on 30)
    assert summary.discovery.found[13].found_on == 30 and summary.discovery.found[13].first_frame == 16
    with pytest.raises(TrackError, match="'hidden' names object 4"):
        run_job(tmp_path, ColourFinder(), DiscoverySettings("everything", hidden=(4,)), prompts=yellow)


def test_the_real_finders_give_the_same_with_the_trackers_features_as_without(tmp_path):
    """Everything and text on the micro model: a keyframe's features from the tracker (no encoder pass) give the
    masks the finder computes from the frame itself (the page's Find on a frame)."""
    from sam2_plus.provider import ModelCache

    models = ModelCache()
    frames = [draw(SCRIPT, 12, (96, 128))]
    predictor = models.video_predictor(MICRO, weights=SEEDED)
    session = predictor.init_state(frames)
    backbone = predictor.frame_backbone(session, 0)
    everything = DiscoverySettings("everything", points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    finder = models.finder(everything, MICRO, weights=SEEDED)
    with_features, alone = finder.find(frames[0], backbone, 0), finder.find(frames[0])
    assert len(with_features) == len(alone) > 0
    for a, b in zip(with_features, alone):
        assert a.score == pytest.approx(b.score, abs=1e-5) and np.array_equal(a.mask, b.mask)
    text = DiscoverySettings("text", ("green", "red"))
    finder = TextFinder(ColourDetector(), models.finder(everything, MICRO, weights=SEEDED).generator.predictor, text)
    with_features, alone = finder.find(frames[0], backbone, 0), finder.find(frames[0])
    assert [(f.label, f.score) for f in with_features] == [(f.label, f.score) for f in alone] == [
        ("red", 0.8), ("green", 0.8)]
    for a, b in zip(with_features, alone):
        assert np.array_equal(a.mask, b.mask)


def test_the_text_mode_without_the_hub_fails_before_tracking_naming_the_checkpoint(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from sam2_plus.discovery.detector import DetectorUnavailable
    from sam2_plus.provider import ModelCache

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    clip = write_clip(tmp_path / "clip", SCRIPT, 3)
    request = prepare_request(clip, None, model=MICRO, weights=SEEDED, discovery=parse_find("person. car."))
    progress = []
    with pytest.raises(DetectorUnavailable, match="IDEA-Research/grounding-dino-tiny"):
        run_tracking(request, TrackOutputs(results_json=tmp_path / "r.json"), models=ModelCache(),
                     progress=progress.append)
    assert [p.phase for p in progress] == ["loading"] and not (tmp_path / "r.json").exists()


def test_progress_says_which_keyframe_is_searched_and_when_the_outputs_are_written(tmp_path):
    from sam2_plus.app.jobs import describe_progress

    clip = write_clip(tmp_path / "clip", SCRIPT, 20)
    models = StandInModels(ColourTracker())
    models.use_finder(ColourFinder())
    request = prepare_request(clip, None, model="sam2.1-tiny", weights=SEEDED,
                              discovery=DiscoverySettings("everything", keyframe_interval=10, min_area=0.001))
    progress = []
    run_tracking(request, TrackOutputs(results_json=tmp_path / "r.json"), models=models, progress=progress.append)
    steps = [(p.phase, p.frame_idx, p.frames_done) for p in progress if p.phase != "tracking"]
    assert steps == [("loading", None, 0), ("finding", 0, 0), ("finding", 10, 10), ("writing", None, 20)]
    finding = next(p for p in progress if p.phase == "finding" and p.frame_idx == 10)
    assert describe_progress(finding) == "Finding new objects on frame 10 (tracked 10 / 20 frames)…"


def test_the_backward_pass_of_a_new_object_ends_soon_after_it_entered(tmp_path):
    tracker = ColourTracker(sticky_loss=True)
    summary, document = run_job(tmp_path, ColourFinder(), DiscoverySettings("everything", min_area=0.001),
                                tracker=tracker)
    assert summary.discovery.found[5].first_frame == 10
    # green enters on 10 and is found on 15: back over 14..10, then 9 and 8 without it, and the pass ends
    assert tracker.backward_frames == [14, 13, 12, 11, 10, 9, 8]
    assert visible_frames(document, 5) == list(range(10, 40))
