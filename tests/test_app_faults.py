"""Faults during tracking: Stop mid-run, an exception and an out-of-memory inside tracking. The frames tracked
before them are kept as complete, downloadable files (overlay MP4, results ZIP, results JSON), the user gets a
clear message, and the next run works. The service, job and session levels use a stand-in predictor (fast);
the public API (/track) runs the micro model with seeded weights and a simulated out-of-memory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from app_fakes import FailingPredictor, QuickPredictor, StandInModels
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from media_clips import pattern_frame, write_clip
from micro_model import MICRO

from sam2_plus.app.editing import POSITIVE
from sam2_plus.app.errors import failure_message
from sam2_plus.app.jobs import JobFiles, JobResult
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.decode import probe
from sam2_plus.media.export import read_mask_zip, read_results_json
from sam2_plus.service import TrackFailed, TrackOutputs, prepare_request, run_tracking
from sam2_plus.provider import shared_models

H, W, T = 48, 64, 6
OPTIONS = TrackOptions(MICRO)
pytestmark = [pytest.mark.usefixtures("seeded_weights"),
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")]

ILLEGAL_ACCESS = RuntimeError("CUDA error: an illegal memory access was encountered")
OUT_OF_MEMORY = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 22.06 GiB total)")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("faults") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)])


def one_click(frame: int) -> str:
    return json.dumps({"objects": [{"id": 3, "task": "mask", "prompts": [{"frame": frame, "points": [[20, 20]]}]}]})


def assert_files_hold(files: JobFiles, frames: list[int], obj_id: int) -> None:
    """Each output is a complete file holding exactly `frames`."""
    assert probe(files.overlay).num_frames == len(frames)
    _, results = read_results_json(files.results_json)
    assert [r.frame_idx for r in results] == frames
    assert sorted(read_mask_zip(files.export).object_masks[obj_id]) == frames


def last_result(updates) -> JobResult:
    result = None
    for update in updates:
        result = update.result or result
    return result


def session_on(clip: Path) -> AppSession:
    session = AppSession.open(clip, AppLimits())  # with one object, id 1
    session.click(POSITIVE, 0, 20, 20)
    return session


# --------------------------------------------------------------------------- the service


@pytest.mark.parametrize("error, out_of_memory", [(ILLEGAL_ACCESS, False), (OUT_OF_MEMORY, True)],
                         ids=["exception", "out-of-memory"])
@pytest.mark.parametrize("prompt_frame, fail_at, kept", [
    (0, 3, [0, 1, 2]),  # forward pass: frames 0, 1, 2 were tracked
    (4, 1, [2, 3]),  # backward pass: frames 3, 2 were tracked (the prompted frame 4 would come with the forward pass)
], ids=["forward", "backward"])
def test_a_failure_inside_tracking_keeps_the_frames_tracked_before_it(clip, tmp_path, error, out_of_memory,
                                                                     prompt_frame, fail_at, kept):
    request = prepare_request(clip, one_click(prompt_frame), model=MICRO)
    outputs = TrackOutputs(overlay=tmp_path / "o.mp4", export=tmp_path / "r.zip", results_json=tmp_path / "r.json")
    with pytest.raises(TrackFailed, match=f"tracking failed after frame 2: {type(error).__name__}: ") as caught:
        run_tracking(request, outputs, predictor=FailingPredictor(QuickPredictor(), fail_at, error))
    summary = caught.value.summary
    assert caught.value.__cause__ is error and summary.out_of_memory is out_of_memory
    assert (summary.frames_done, summary.first_frame, summary.last_frame, summary.stopped) == (len(kept), kept[0],
                                                                                               kept[-1], False)
    assert "failed after frame 2" in summary.describe() and "the outputs hold the frames" in summary.describe()
    assert_files_hold(JobFiles(outputs.overlay, outputs.export, outputs.results_json), kept, obj_id=3)


# --------------------------------------------------------------------------- a browser session


def test_an_object_removed_mid_run_is_absent_from_the_next_frames(clip):
    """Removed while frame 3 is tracked: from frame 3 on it has no row in the results, no mask PNG, no timeline
    entry (no "lost" flag), and the summary says so instead of counting it."""
    session = session_on(clip)
    session.add_object()  # object 2, selected
    session.click(POSITIVE, 0, 40, 30)
    session.models = StandInModels(QuickPredictor(on_frame=lambda t: session.remove_selected() if t == 3 else None))
    done = last_result(session.tracking_job(OPTIONS, AppLimits()))
    assert done.frames_done == T and list(session.objects) == [1]
    _, results = read_results_json(done.files.results_json)
    assert [r.obj_ids for r in results] == [(1, 2)] * 3 + [(1,)] * (T - 3)
    assert all(r.visible.all() for r in results)
    assert sorted(read_mask_zip(done.files.export).object_masks[2]) == [0, 1, 2]
    assert done.review.object(2).frames == (0, 1, 2) and done.review.flag_count == 0 and done.removed == {2: 3}
    assert "1 object: 1 (mask)" in done.summary
    assert "removed during the run: object 2 (mask), absent from frame 3 on" in done.summary
    timeline = session.render_timeline(4)  # the row of object 2 is greyed from frame 3 on
    assert timeline is not None
    session.close()


def test_stop_mid_run_keeps_the_frames_and_the_next_run_works(clip):
    session = session_on(clip)
    predictor = QuickPredictor(on_frame=lambda t: session.stop.set() if t == 2 else None)  # Stop during frame 2
    session.models = StandInModels(predictor)
    stopped = last_result(session.tracking_job(OPTIONS, AppLimits()))
    assert stopped.stopped and stopped.describe() == f"Stopped: 3 of {T} frames tracked; the results hold them."
    assert_files_hold(stopped.files, [0, 1, 2], obj_id=1)
    assert session.results is stopped and not session.tracking and not session.stop.is_set()

    predictor.on_frame = None
    done = last_result(session.tracking_job(OPTIONS, AppLimits()))
    assert not done.stopped and done.describe() == f"Done: {T} frames tracked."
    assert_files_hold(done.files, list(range(T)), obj_id=1)
    session.close()


@pytest.mark.parametrize("error, message", [
    (ILLEGAL_ACCESS, f"Tracking failed after frame 2 (RuntimeError: CUDA error: an illegal memory access was "
                     f"encountered): 3 of {T} frames tracked; the results hold them. Track again to retry."),
    (OUT_OF_MEMORY, f"Out of memory after frame 2: 3 of {T} frames tracked; the results hold them. Track fewer "
                    "objects or a shorter or smaller video, or try again later."),
], ids=["exception", "out-of-memory"])
def test_a_failure_mid_run_is_reported_and_the_next_run_works(clip, error, message):
    session = session_on(clip)
    failing = FailingPredictor(QuickPredictor(), 3, error)
    session.models = StandInModels(failing)
    failed = last_result(session.tracking_job(OPTIONS, AppLimits()))
    assert failed.failed and failed.describe() == message
    assert_files_hold(failed.files, [0, 1, 2], obj_id=1)
    assert session.results is failed and not session.tracking

    failing.frame = None  # the cause went away
    done = last_result(session.tracking_job(OPTIONS, AppLimits()))
    assert not done.failed and done.frames_done == T
    assert_files_hold(done.files, list(range(T)), obj_id=1)
    session.close()


def test_a_failure_before_tracking_started_leaves_the_session_usable(clip):
    """Out of memory while adding the prompts: nothing was tracked, so there is nothing to keep; the app turns
    the error into failure_message's text."""
    session = session_on(clip)
    predictor = QuickPredictor()
    prompt = predictor.add_new_points_or_box

    def out_of_memory(*args, **kwargs):
        raise OUT_OF_MEMORY

    predictor.add_new_points_or_box = out_of_memory
    session.models = StandInModels(predictor)
    with pytest.raises(torch.OutOfMemoryError) as caught:
        last_result(session.tracking_job(OPTIONS, AppLimits()))
    assert failure_message(caught.value).startswith("Out of memory: track fewer objects or a shorter or smaller")
    assert failure_message(ValueError("x\ny")) == "Tracking failed (ValueError: x). Try again; if it fails " \
                                                   "again, please report it."
    assert not session.tracking and session.results is None

    predictor.add_new_points_or_box = prompt
    assert last_result(session.tracking_job(OPTIONS, AppLimits())).frames_done == T
    session.close()


# --------------------------------------------------------------------------- the public API


@pytest.fixture(scope="module")
def client(app_server):
    client = Client(app_server, verbose=False)
    yield client
    client.close()


def warnings_of(job) -> list[str]:
    """The gr.Warning messages the client received during a finished job."""
    async def collect():
        return [update async for update in job]

    return [update.log[0] for update in asyncio.run(collect())
            if getattr(update, "log", None) and update.log[1] == "warning"]


def test_out_of_memory_through_the_api_returns_the_frames_tracked(client, server_models, tmp_path):
    """The micro model (seeded): the GPU "runs out of memory" when the propagation reaches frame 1 of 2; /track
    returns the overlay, ZIP and JSON of frame 0 with a warning saying so, and the next request tracks both."""
    short = write_clip(tmp_path / "two.mp4", [pattern_frame(i, H, W) for i in range(2)])
    failing = [True]

    def predictor(*key):
        real = shared_models().video_predictor(*key)
        return FailingPredictor(real, 1, OUT_OF_MEMORY) if failing[0] else real

    server_models.use(make=predictor)
    options = json.dumps(OPTIONS.to_json())
    job = client.submit(handle_file(str(short)), one_click(0), options, api_name="/track")
    overlay, results_zip, results_json = job.result(timeout=600)
    assert warnings_of(job) == ["Out of memory after frame 0: 1 of 2 frames tracked; the results hold them. Track "
                                "fewer objects or a shorter or smaller video, or try again later."]
    assert_files_hold(JobFiles(Path(overlay), Path(results_zip), Path(results_json)), [0], obj_id=3)

    failing[0] = False
    overlay, results_zip, results_json = client.predict(handle_file(str(short)), one_click(0), options,
                                                        api_name="/track")
    assert_files_hold(JobFiles(Path(overlay), Path(results_zip), Path(results_json)), [0, 1], obj_id=3)


def test_an_exception_before_tracking_is_a_clear_api_error_and_the_next_request_works(client, server_models, clip):
    predictor = QuickPredictor()
    init_state = predictor.init_state

    def broken(frames):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL")

    predictor.init_state = broken
    server_models.use(predictor)
    options = json.dumps(OPTIONS.to_json())
    with pytest.raises(AppError, match=r"Tracking failed \(RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL\)\. "
                                       "Try again"):
        client.predict(handle_file(str(clip)), one_click(0), options, api_name="/track")

    predictor.init_state = init_state
    overlay, results_zip, results_json = client.predict(handle_file(str(clip)), one_click(0), options,
                                                        api_name="/track")
    assert_files_hold(JobFiles(Path(overlay), Path(results_zip), Path(results_json)), list(range(T)), obj_id=3)
