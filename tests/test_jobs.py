"""The job spec (sam2_plus/jobs.py): one typed value with a mode, picklable (ZeroGPU sends it to another
process), placed in a folder by the app, and run by its mode's one entry in the app's runner table."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from app_fakes import StandInModels
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.app import gpu_time, jobs
from sam2_plus.effects.settings import parse_effects
from sam2_plus.jobs import JOB_MODES, JobSpec, TrackRequest
from sam2_plus.segment import FindOutcome, SegmentOutcome, StillImage, prepare_find, prepare_segment
from sam2_plus.service import prepare_request

def still(pixels) -> StillImage:
    return StillImage(pixels, "pattern.png")


PROMPTS = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [2, 2, 20, 20]}]}]}


@pytest.fixture(scope="module")
def request_(tmp_path_factory) -> TrackRequest:
    clip = write_clip(tmp_path_factory.mktemp("spec") / "clip.mp4", [pattern_frame(i, 32, 48) for i in range(3)])
    return prepare_request(clip, PROMPTS, model=MICRO)


def test_a_spec_pickles_whole(request_, tmp_path):
    spec = JobSpec("track", request_, ("coco",), parse_effects({"background": "blur"})).in_folder(tmp_path, "stop")
    again = pickle.loads(pickle.dumps(spec))
    assert again.mode == "track" and again.export_formats == ("coco",) and again.effects == spec.effects
    assert again.job_dir == str(tmp_path) and again.stop_file == "stop" and again.folder() == tmp_path
    assert again.request.tasks == {1: "mask"} and again.request.info == request_.info


def test_find_objects_needs_no_objects_and_the_others_do(request_):
    without = replace(request_, objects=())
    assert JobSpec("find_objects", without).request.objects == ()
    for mode in ("track", "segment_image"):
        with pytest.raises(ValueError, match=f"a {mode} job needs at least one object"):
            JobSpec(mode, without)
    with pytest.raises(ValueError, match="unknown job mode 'dance'"):
        JobSpec("dance", request_)
    assert JobSpec("find_frame", without).request.objects == ()
    assert JOB_MODES == ("track", "segment_image", "find_objects", "find_frame")


def test_a_spec_runs_only_in_a_folder(request_):
    with pytest.raises(ValueError, match="no folder"):
        JobSpec("track", request_).folder()


def test_each_mode_is_one_entry_of_the_runner_table(request_, monkeypatch):
    """run_job and job_gpu_seconds both read the mode's entry; a mode without one is refused by both."""
    ran = []
    entry = jobs.ModeRunner(run=lambda spec, models, between_steps=None: iter([ran.append((spec.mode, models))]),
                            gpu_seconds=lambda spec: 7)
    monkeypatch.setitem(jobs.RUNNERS, "find_objects", entry)
    spec = JobSpec("find_objects", replace(request_, objects=()))
    models = StandInModels()
    assert list(jobs.run_job(spec, models)) == [None] and ran == [("find_objects", models)]
    assert jobs.job_gpu_seconds(spec, "the GPU function's", other="arguments") == 7
    monkeypatch.delitem(jobs.RUNNERS, "find_objects")
    for call in (jobs.run_job, jobs.job_gpu_seconds):
        with pytest.raises(ValueError, match="runs no find_objects job"):
            call(spec)
    assert jobs.job_gpu_seconds(JobSpec("track", request_)) > 0


def test_the_still_image_modes_run_their_requests(tmp_path, monkeypatch):
    """segment_image and find_objects hold sam2_plus.segment's checked requests, cross a pickle whole, and run
    by their entries: one update with the outcome, files in the job's folder; the GPU time is the mode's."""
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    image = pattern_frame(0, 48, 64)
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[20, 20]]}]}]}
    segment = JobSpec("segment_image", prepare_segment(still(image), prompts, {"model": MICRO}, device="cpu"))
    find = JobSpec("find_objects", prepare_find(still(image), 0, {"model": MICRO, "density": "coarse",
                                                                 "pred_iou_thresh": 0, "stability_score_thresh": 0},
                                                device="cpu"))
    models = StandInModels()
    for spec, kind in ((segment, SegmentOutcome), (find, FindOutcome)):
        spec = pickle.loads(pickle.dumps(spec.in_folder(tmp_path / spec.mode)))
        updates = list(jobs.run_job(spec, models))
        assert len(updates) == 1 and isinstance(updates[0].result, kind)
        assert updates[0].result.files.document.parent == tmp_path / spec.mode
        assert jobs.job_result(iter(updates)) is updates[0].result
    again = jobs.job_result(jobs.run_job(segment.in_folder(tmp_path / "again"), models))
    assert len(again.result.objects[0].candidates) == 3
    assert jobs.job_gpu_seconds(segment) == gpu_time.SEGMENT_GPU_SECONDS
    assert jobs.job_gpu_seconds(find) == gpu_time.estimate_find_seconds(find.request.options) > 0
