"""The tracking job (sam2_plus.service) with a stand-in predictor: prompt order, backward-then-forward
ordering of the outputs, stopping with valid partial outputs, progress, result conversion. No model runs
here (tests/test_track_cli.py runs the real models end to end)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from app_fakes import PromptsAsCalls
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus import build_model, provider, service
from sam2_plus.media.decode import probe
from sam2_plus.media.export import read_mask_zip, read_results_json
from sam2_plus.video.predictor import FrameResult
from sam2_plus.prompts import PromptError
from sam2_plus.provider import ModelCache, ModelKey
from sam2_plus.service import TrackError, TrackOutputs, prepare_request, run_tracking, to_frame_record
from sam2_plus.weights import parse_weights_spec

H, W, T = 32, 48, 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("service") / "clip.mp4"
    return write_clip(path, [pattern_frame(i, H, W) for i in range(T)], fps=10)


class FakePredictor(PromptsAsCalls):
    """Records prompts; propagation yields a mask whose width encodes the frame index."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = []
        self.tracked = []

    def init_state(self, frames):
        return {"frames": frames, "tasks": {}}

    def add_new_points_or_box(self, session, frame_idx, obj_id, points=None, labels=None, box=None, task=None):
        self.calls.append((frame_idx, obj_id, task, "box" if box is not None else "points"))
        session["tasks"][obj_id] = task

    def add_new_mask(self, session, frame_idx, obj_id, mask, task=None):
        assert mask.shape == (H, W) and mask.dtype == bool
        self.calls.append((frame_idx, obj_id, task, "mask"))
        session["tasks"][obj_id] = task

    def propagate_in_video(self, session, start_frame_idx=None, reverse=False):
        order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, T)
        for t in order:
            self.tracked.append((t, reverse))
            yield self._result(session, t)

    def _result(self, session, t):
        ids = list(session["tasks"])
        n = len(ids)
        logits = torch.full((n, H, W), -5.0)
        logits[:, :, : t + 1] = 5.0
        boxes = torch.tensor([[1.0, 2.0, 30.0, 20.0]]).repeat(n, 1)
        points = torch.tensor([[float(t), 3.0]]).repeat(n, 1)
        return FrameResult(t, ids, logits, torch.full((n,), 2.0), boxes, points, [session["tasks"][i] for i in ids])


PROMPTS = {"objects": [
    {"id": 5, "task": "mask", "prompts": [{"frame": 4, "points": [[10, 10]]},
                                          {"frame": 2, "mask": {"size": [H, W], "counts": [100, 50, H * W - 150]}}]},
    {"id": 2, "task": "box", "prompts": [{"frame": 3, "box": [1, 2, 30, 20]}]},
]}


def test_backward_then_forward_in_frame_order(clip, tmp_path):
    request = prepare_request(clip, PROMPTS, model=MICRO, device="cpu")
    fake = FakePredictor()
    seen = []
    outputs = TrackOutputs(overlay=tmp_path / "o.mp4", export=tmp_path / "r.zip", results_json=tmp_path / "r.json")
    summary = run_tracking(request, outputs, progress=seen.append, predictor=fake)

    # prompts in frame order, each with its object's task
    assert fake.calls == [(2, 5, "mask", "mask"), (3, 2, "box", "box"), (4, 5, "mask", "points")]
    # backward from the earliest prompt (frame 2) first, then forward from it
    assert fake.tracked == [(2, True), (1, True), (0, True)] + [(t, False) for t in range(2, T)]
    _, frames = read_results_json(outputs.results_json)
    assert [r.frame_idx for r in frames] == list(range(T))
    for r in frames:
        assert r.obj_ids == (5, 2)
        assert r.masks[0].sum() == H * (r.frame_idx + 1)  # the frame's own result, not a neighbour's
    # the box-task object keeps the box head's box; the mask-task object gets its mask's box
    assert frames[0].boxes[1].tolist() == [1, 2, 30, 20] and frames[0].boxes[0].tolist() == [0, 0, 1, H]
    assert probe(outputs.overlay).num_frames == T
    assert sorted(read_mask_zip(outputs.export).object_masks[2]) == list(range(T))
    assert summary.frames_done == T and (summary.first_frame, summary.last_frame) == (0, T - 1)
    assert not summary.stopped and set(summary.written) == {"overlay", "export", "json"}
    tracking = [p for p in seen if p.phase == "tracking"]
    assert [p.frames_done for p in tracking] == list(range(T + 1))  # 0: the prompts are in, the first frame next
    assert all(p.frames_total == T for p in seen) and tracking[-1].eta == 0


def test_each_prompt_is_reported_before_it_is_added(clip):
    """The prompting phase says which prompt it adds (object n of N on frame f), before the model's pass for it:
    the report of prompt k comes after the model added prompt k - 1 and before it adds prompt k."""
    request = prepare_request(clip, PROMPTS, model=MICRO, device="cpu")
    fake, events = FakePredictor(), []
    calls_when_reported = []

    def progress(p):
        events.append(p)
        if p.phase == "prompting":
            calls_when_reported.append(len(fake.calls))

    run_tracking(request, TrackOutputs(), progress=progress, predictor=fake)
    steps = [p.prompt for p in events if p.phase == "prompting"]
    assert [(s.number, s.total, s.obj_id, s.object_number, s.objects, s.frame) for s in steps] == [
        (1, 3, 5, 1, 2, 2), (2, 3, 2, 2, 2, 3), (3, 3, 5, 1, 2, 4)]  # frame order; id 5 is the first object
    assert calls_when_reported == [0, 1, 2]
    assert [p.phase for p in events][:5] == ["loading", "prompting", "prompting", "prompting", "tracking"]
    assert (events[4].frames_done, events[4].frame_idx) == (0, None)
    assert all(p.prompt is None for p in events if p.phase != "prompting")
    assert steps[1].describe() == "object 2 of 2 (id 2) on frame 3, prompt 2 of 3"


def test_a_model_without_a_task_is_a_typed_prompt_error():
    """The API's words ("task"), and what the page needs to say it in its own (the object, the model, the
    tasks); it survives pickling (an error may cross processes on ZeroGPU)."""
    import pickle

    with pytest.raises(service.ModelTaskError) as err:
        service.check_model("sam2.1-tiny", {1: "mask", 7: "point"})
    error = err.value
    assert isinstance(error, PromptError)
    assert str(error) == ("object 7: model sam2.1-tiny has no 'point' task (it supports mask); use sam2++ for the "
                          "box and point tasks")
    assert (error.obj_id, error.model, error.task, error.supported) == (7, "sam2.1-tiny", "point", ("mask",))
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.obj_id == 7


@pytest.mark.parametrize("stop_after, written, stopped_at", [(2, [1, 2], 1), (5, [0, 1, 2, 3, 4], 4)])
def test_stop_keeps_what_was_tracked(clip, tmp_path, stop_after, written, stopped_at):
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 3, "points": [[5, 5]]}]}]}
    request = prepare_request(clip, prompts, model=MICRO)
    fake = FakePredictor()
    outputs = TrackOutputs(overlay=tmp_path / "o.mp4", export=tmp_path / "r.zip", results_json=tmp_path / "r.json")
    done = []
    summary = run_tracking(request, outputs, progress=lambda p: done.append(p.frames_done),
                           should_stop=lambda: bool(done) and done[-1] >= stop_after, predictor=fake)
    assert summary.stopped and summary.frames_done == stop_after
    assert summary.stopped_at == stopped_at
    assert f"stopped on request at frame {stopped_at}" in summary.describe()
    _, frames = read_results_json(outputs.results_json)  # valid JSON, frames in order
    assert [r.frame_idx for r in frames] == written
    assert probe(outputs.overlay).num_frames == len(written)
    contents = read_mask_zip(outputs.export)
    assert sorted(contents.object_masks[1]) == written


def test_rejections_before_any_work(clip, tmp_path):
    box = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [1, 1, 9, 9]}]}]}
    with pytest.raises(PromptError, match="has no 'box' task"):
        prepare_request(clip, box, model="sam2.1-tiny")
    with pytest.raises(TrackError, match="unknown device"):
        prepare_request(clip, box, device="nonsense")
    request = prepare_request(clip, box, model="sam2++")
    with pytest.raises(TrackError, match="overwrite the input"):
        run_tracking(request, TrackOutputs(overlay=clip), predictor=FakePredictor())
    late = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 2, "box": [1, 1, 9, 9]}]}]}
    with pytest.raises(PromptError, match="frame 2 is out of range; the video has 2 frames"):
        prepare_request(clip, late, max_frames=2)
    assert not (tmp_path / "r.json").exists()


def test_to_frame_record_per_task():
    logits = torch.full((5, 4, 5), -1.0)
    logits[0, 1:3, 2:4] = 1.0  # mask task: box from the mask
    logits[2, 0, 0] = 1.0
    logits[3, 2, 1] = -0.5  # a point task's heatmap without a pixel above zero: its peak is the point
    scores = torch.tensor([3.0, 1.0, -2.0, 9.9, 2.0])
    result = FrameResult(7, [1, 2, 3, 4, 5], logits, scores,
                         torch.tensor([[9.0, 9, 9, 9], [0.5, 1, 4, 3], [9, 9, 9, 9], [9, 9, 9, 9], [9, 9, 9, 9]]),
                         torch.tensor([[2.0, 1], [0, 0], [0, 0], [1, 2], [0, 0]]), ["mask", "box", "point", "point",
                                                                                    "mask"])
    out = to_frame_record(result)
    assert out.frame_idx == 7 and out.masks.dtype == bool and out.masks[0].sum() == 4
    assert out.box_for(0).tolist() == [2, 1, 4, 3]  # from the mask, not the predictor's box
    assert out.box_for(1).tolist() == [0.5, 1, 4, 3]  # the box head's
    assert out.box_for(2).tolist() == [0, 0, 1, 1]
    # visible by granularity: a box or point object when present (objects 2 and 4 have no mask pixel), a mask
    # object when present with a mask pixel (object 5 has none); object 3 is absent (presence logit -2)
    assert out.visible.tolist() == [True, True, False, True, False]
    assert out.point_for(0).tolist() == [2, 1] and out.point_for(3).tolist() == [1, 2]
    np.testing.assert_allclose(out.scores, torch.sigmoid(scores).numpy(), rtol=1e-6)


@pytest.fixture
def counted_builds(monkeypatch):
    """Networks built by the service's cache (stand-ins: the micro network, shared, so building is cheap)."""
    built = []
    net = build_model(MICRO, checkpoint=None, device="cpu")

    def build(model, checkpoint=None, device=None, postprocessing=True):
        built.append((model, checkpoint, device))
        return net

    monkeypatch.setattr(provider, "build_model", build)
    yield built


def test_predictor_cache(counted_builds):
    seeded, models = parse_weights_spec("seeded:3"), ModelCache()
    a = models.video_predictor(MICRO, "cpu", seeded)
    assert models.video_predictor(MICRO, "cpu", seeded) is a
    b = models.video_predictor(MICRO, "cpu", parse_weights_spec("seeded:4"))
    assert b is not a and len(counted_builds) == 2


def test_plain_and_motion_aware_predictors_share_one_network(counted_builds):
    from sam2_plus.video.motion import MotionAwarePredictor

    seeded = parse_weights_spec("seeded:3")
    models = ModelCache()
    plain = models.video_predictor(MICRO, "cpu", seeded)
    motion = models.video_predictor(MICRO, "cpu", seeded, motion_aware=True)
    assert isinstance(motion, MotionAwarePredictor) and not isinstance(plain, MotionAwarePredictor)
    assert motion.model is plain.model and len(counted_builds) == 1


def test_preloaded_networks_are_never_evicted(counted_builds):
    cache = ModelCache(capacity=1)
    pinned = ModelKey.of(MICRO, "cpu", parse_weights_spec("seeded:1"))
    cache.preload(pinned)
    for seed in (2, 3, 2):  # only one network besides the preloaded one is kept
        cache.predictor(ModelKey.of(MICRO, "cpu", parse_weights_spec(f"seeded:{seed}")))
    cache.predictor(pinned)
    assert [c[1].seed for c in counted_builds] == [1, 2, 3, 2]
    assert pinned in cache.keys() and len(cache.keys()) == 2


class _RecordingWriter:
    def __init__(self, fail_at=None, delay=0.0):
        self.frames, self.closed, self.fail_at, self.delay = [], False, fail_at, delay

    def write(self, result):
        import time

        time.sleep(self.delay)
        if result.frame_idx == self.fail_at:
            raise OSError("disk full")
        self.frames.append(result.frame_idx)

    def close(self):
        self.closed = True


def _records(n):
    from types import SimpleNamespace

    return [SimpleNamespace(frame_idx=i) for i in range(n)]


def test_background_output_set_writes_everything_in_order_and_bounds_the_queue():
    import threading

    from sam2_plus.outputs import OutputSet

    writer = _RecordingWriter(delay=0.01)
    sink = OutputSet([writer], background=True, max_pending=2)
    main = threading.get_ident()
    for record in _records(12):
        sink.write(record)
        assert sink._pending.qsize() <= 2
    sink.close()
    assert writer.frames == list(range(12)) and writer.closed
    assert (sink.frames_written, sink.first_frame, sink.last_frame) == (12, 0, 11)
    assert main == threading.get_ident()


def test_background_output_set_raises_a_writers_error_and_keeps_the_frames_before_it():
    import time

    from sam2_plus.outputs import OutputSet

    writer = _RecordingWriter(fail_at=3)
    sink = OutputSet([writer], background=True)
    with pytest.raises(OSError, match="disk full"):
        for record in _records(50):
            sink.write(record)
            time.sleep(0.005)
    with pytest.raises(OSError, match="disk full"):
        sink.close()
    assert writer.frames == [0, 1, 2] and writer.closed and sink.frames_written == 3



# --------------------------------------------------------------------------- an object removed during the run


def _removal_run(clip, tmp_path, prompt_frame: int, removed_at: int):
    """Objects 5 and 2 (mask) prompted on `prompt_frame` and tracked by the QuickPredictor stand-in (each
    object's mask is its prompt's disc); object 2 is removed while frame `removed_at` is tracked. Every output
    and every export format is written; the export ZIP is unzipped into tmp_path / "export"."""
    from app_fakes import QuickPredictor
    from sam2_plus.exports import EXPORT_FORMATS

    prompts = {"objects": [{"id": 5, "task": "mask", "prompts": [{"frame": prompt_frame, "points": [[10, 10]]}]},
                           {"id": 2, "task": "mask", "prompts": [{"frame": prompt_frame, "points": [[30, 20]]}]}]}
    request = prepare_request(clip, prompts, model=MICRO)
    gone: set[int] = set()
    predictor = QuickPredictor(on_frame=lambda t: gone.add(2) if t == removed_at else None)
    outputs = TrackOutputs(overlay=tmp_path / "o.mp4", export=tmp_path / "r.zip", results_json=tmp_path / "r.json",
                           export_formats=tuple(EXPORT_FORMATS))
    summary = run_tracking(request, outputs, predictor=predictor, removed=lambda: frozenset(gone))
    with zipfile.ZipFile(outputs.export) as archive:
        archive.extractall(tmp_path / "export")
    return summary, outputs


def _frames_holding(root: Path, zipped: Path, obj_id: int) -> dict[str, list[int]]:
    """Per part of an unzipped export (`zipped`: the ZIP itself), the frames with a row, a file or an
    annotation of `obj_id`."""
    from export_readers import read_coco, read_cvat, read_mot, read_mots, read_yolo_det, write_blank_frames
    from sam2_plus.media.export import read_box_csv, read_lasot, read_point_tracks

    _, results = read_results_json(root / "results.json")
    height, width = results[0].height, results[0].width
    masks = read_mask_zip(zipped)
    palette_index = next(k for k, v in masks.davis_obj_ids.items() if v == obj_id)
    tracks = read_point_tracks(root / "points.npz")
    column = tracks.obj_ids.tolist().index(obj_id)
    cvat, outside = read_cvat(root / "cvat", height, width)
    write_blank_frames(root / "yolo-det" / "images" / "train", len(results), height, width)
    found = {
        "json": [r.frame_idx for r in results if obj_id in r.obj_ids],
        "csv": [row.frame for row in read_box_csv(root / "boxes.csv") if row.obj_id == obj_id],
        "mask_pngs": sorted(masks.object_masks.get(obj_id, {})),
        "davis": sorted(t for t, image in masks.davis.items() if (image == palette_index).any()),
        "lasot": [t for t, row in enumerate(read_lasot(root / "lasot").get(obj_id, ())) if row.any()],
        "points": [t for t in range(len(tracks.visibs)) if tracks.visibs[t, column]],
        "coco": read_coco(root / "coco" / "instances.json"),
        "cvat": cvat,
        "mot": read_mot(root / "mot")[0],
        "mots": read_mots(root / "mots" / "gt" / "gt.txt"),
        "yolo-det": read_yolo_det(root / "yolo-det"),
    }
    for name in ("coco", "cvat", "mot", "mots", "yolo-det"):
        found[name] = sorted(t for o, t in found[name] if o == obj_id)
    found["cvat outside"] = sorted(t for o, t in outside if o == obj_id)
    return found


@pytest.mark.parametrize("prompt_frame, removed_at, kept", [
    (0, 3, [0, 1, 2]),  # removed in the forward pass: the frames before it keep the object
    (2, 4, [0, 1, 2, 3]),  # in the forward pass after a backward one (frames 1, 0)
    (3, 1, []),  # in the backward pass: its frames were all still waiting to be written (in frame order)
], ids=["forward", "after-backward", "during-backward"])
def test_an_object_removed_during_the_run_leaves_every_output(clip, tmp_path, prompt_frame, removed_at, kept):
    summary, outputs = _removal_run(clip, tmp_path, prompt_frame, removed_at)
    root = tmp_path / "export"
    assert _frames_holding(root, outputs.export, 5)["json"] == list(range(T))  # the other object: every frame
    held = _frames_holding(root, outputs.export, 2)
    left_at = kept[-1] + 1 if kept else 0
    expected = {name: kept for name in held} | {"cvat outside": [left_at] if kept else []}
    assert held == expected
    _, results = read_results_json(outputs.results_json)  # the JSON output is the export's results.json
    assert [r.obj_ids for r in results] == [(5, 2) if t in kept else (5,) for t in range(T)]
    # the review: the object's timeline ends where it left, without a "lost" flag (nor any other)
    assert summary.review.object(2).frames == tuple(kept) and summary.review.object(2).flags == ()
    document = json.loads(outputs.results_json.read_text())
    assert all(o["flags"] == [] for entry in document["frames"] for o in entry["objects"])
    # the summary: tracked is object 5 only; object 2 removed, absent from the frame it left
    assert summary.removed == {2: left_at} and summary.tracked == {5: "mask"} and summary.tasks == {5: "mask",
                                                                                                   2: "mask"}
    text = summary.describe()
    assert f"tracked {T} of {T} frames, frames 0-{T - 1}; 1 object: 5 (mask)\n" in text
    assert f"removed during the run: object 2 (mask), absent from frame {left_at} on" in text
    assert probe(outputs.overlay).num_frames == T


def test_without_a_removal_the_summary_counts_every_object(clip, tmp_path):
    summary, _ = _removal_run(clip, tmp_path, 0, removed_at=T)  # never removed: frame T is not tracked
    assert summary.removed == {} and summary.tracked == summary.tasks == {5: "mask", 2: "mask"}
    assert "2 objects: 5 (mask), 2 (mask)" in summary.describe() and "removed" not in summary.describe()
