"""Hosted sessions under load (issue 16): the checks of a request run before it waits for the GPU, so bad input
is refused at once while every GPU slot is busy; oversized input is refused from its declared size, before it
is decoded or expanded; a waiting job says that it waits; the GPU slots bound the waiting (`GpuSlots`)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from app_fakes import QuickPredictor, StandInModels, launch_app, wait_for
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from rle_oracle import string_to_counts

from sam2_plus import service
from sam2_plus.app import gpu_slots
from sam2_plus.app.editing import BOX, POSITIVE
from sam2_plus.app.errors import AppInputError, QueueFullError
from sam2_plus.app.gpu_slots import GpuSlots, describe_wait
from sam2_plus.app.jobs import JobUpdate, run_job
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.preview import preview_prompt
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.media import rle
from sam2_plus.media.export import read_results_json
from sam2_plus.service import TrackOutputs

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")
H, W = 32, 48
REFUSED_WITHIN = 2.0  # seconds, upload included: the bound for a refusal while jobs run
BOX_PROMPTS = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [4, 4, 20, 20]}]}]})


def write_y4m(path: Path, frames: int, width: int = 2, height: int = 2) -> Path:
    """A raw YUV4MPEG2 video of black frames: a small file holding (and claiming) very many frames."""
    frame = b"FRAME\n" + bytes(width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2))
    with open(path, "wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode())
        file.write(frame * frames)
    return path


# --------------------------------------------------------------------------- GpuSlots


def test_slots_serve_in_order_report_the_wait_and_bound_the_waiting():
    slots = GpuSlots(slots=1, max_waiting=2)
    order, reports = [], {1: [], 2: []}

    def job(n: int) -> None:
        with slots.held(reports[n].append):
            order.append(n)

    with slots.held():
        threads = [threading.Thread(target=job, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
            deadline = time.monotonic() + 10
            while slots.waiting < n_started(threads, thread) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert slots.waiting == 2 and slots.busy == 1
        with pytest.raises(QueueFullError, match=r"Queue is full: 2 jobs waiting for the GPU, the most allowed "
                                                 r"\(SAM2PLUS_QUEUE_SIZE\)\. Try again in a few minutes"):
            with slots.held():
                pass
    for thread in threads:
        thread.join(10)
    assert order == [1, 2] and slots.busy == 0 and slots.waiting == 0
    assert reports[1][0] == 0 and reports[2][0] == 1  # jobs ahead, reported while waiting
    assert describe_wait(0) == "Waiting for the GPU (next in line)…"
    assert describe_wait(2) == "Waiting for the GPU (2 jobs ahead)…"


def n_started(threads: list[threading.Thread], thread: threading.Thread) -> int:
    return threads.index(thread) + 1


def test_a_waiting_job_that_gives_up_leaves_its_place():
    slots = GpuSlots(slots=1, max_waiting=1)

    def give_up(ahead: int) -> None:
        raise KeyboardInterrupt  # what a cancelled event's thread may get

    with slots.held():
        with pytest.raises(KeyboardInterrupt):
            with slots.held(give_up):
                pass
        assert slots.waiting == 0
    with slots.held():
        assert slots.busy == 1


def test_a_track_click_is_checked_before_it_waits_for_the_gpu(tmp_path):
    """The UI's Track: a session whose model lacks an object's granularity is refused while the only GPU slot is
    busy, without joining the line for it."""
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(3)])
    session = AppSession.open(clip, AppLimits(), root=tmp_path / "sessions")
    session.set_task("box")
    session.click(BOX, 0, 5, 5)
    session.click(BOX, 0, 20, 20)
    slots, waited = GpuSlots(slots=1, max_waiting=1), []
    try:
        with slots.held():
            started = time.monotonic()
            with pytest.raises(AppInputError, match=r"has the box granularity, which sam2\.1-tiny cannot track"):
                next(session.tracking_job(TrackOptions("sam2.1-tiny"), AppLimits(),
                                          slots.runner(run_job, waited.append)))
            assert time.monotonic() - started < REFUSED_WITHIN
            assert slots.waiting == 0 and not waited and not session.tracking
    finally:
        session.close()


# --------------------------------------------------------------------------- short calls (previews)


def run_in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def lending_job(slots: GpuSlots, events: list, frames: int, after_frame=lambda k: None) -> threading.Thread:
    """A job holding a slot for `frames` frames, lending it before each (as the service's `between_steps`)."""

    def job() -> None:
        with slots.held() as lend:
            for k in range(frames):
                lend()
                events.append(f"frame {k}")
                after_frame(k)

    return run_in_thread(job)


def short_call(slots: GpuSlots, name: str, events: list, reports: list | None = None, body=lambda: None):
    def call() -> None:
        with slots.short_call() as turn:
            for wait in turn:
                if reports is not None:
                    reports.append(wait.describe())
            events.append(name)
            body()

    return run_in_thread(call)


def joined(*threads: threading.Thread) -> bool:
    for thread in threads:
        thread.join(10)
    return not any(thread.is_alive() for thread in threads)


def test_a_short_call_during_a_job_runs_at_the_jobs_next_frame():
    slots, events, reports = GpuSlots(slots=1, max_waiting=4), [], []
    in_frame_1 = threading.Event()

    def after(k: int) -> None:
        if k == 1:  # the call comes while the job computes frame 1
            in_frame_1.set()
            assert wait_for(lambda: slots.calls_waiting == 1 and reports, 10)

    job = lending_job(slots, events, 4, after)
    assert in_frame_1.wait(10)
    call = short_call(slots, "call", events, reports)
    assert joined(job, call)
    assert events == ["frame 0", "frame 1", "call", "frame 2", "frame 3"]
    assert reports[0] == ("Waiting for the GPU: a tracking job is running; the preview runs after its current "
                          "frame (next in line)…")
    assert slots.busy == 0 and slots.calls_waiting == 0


def test_a_job_lends_only_to_the_calls_waiting_when_it_reaches_a_frame():
    """The starvation bound: a call that comes while the job lends waits for the job's next frame, so a stream
    of clicks slows the job by their own time and never stops it."""
    slots, events = GpuSlots(slots=1, max_waiting=4), []
    after_frame_0 = threading.Event()

    def after(k: int) -> None:
        if k == 0:
            after_frame_0.set()
            assert wait_for(lambda: slots.calls_waiting == 2, 10)

    def a_body() -> None:  # C comes while the job lends to A (and B waits its turn)
        short_call(slots, "C", events)
        assert wait_for(lambda: slots.calls_waiting == 2, 10)

    job = lending_job(slots, events, 3, after)
    assert after_frame_0.wait(10)
    a = short_call(slots, "A", events, body=a_body)
    assert wait_for(lambda: slots.calls_waiting == 1, 10)
    b = short_call(slots, "B", events)
    assert joined(job, a, b) and wait_for(lambda: "C" in events, 10)
    assert events == ["frame 0", "A", "B", "frame 1", "C", "frame 2"]


def test_a_job_that_ends_releases_the_waiting_short_calls_before_the_next_job():
    """The job ends (or is stopped) before its next frame, or never lends (ZeroGPU, `lending=False`): the calls
    then take the free slot, ahead of a job that waited for it; and they said what they wait for."""
    for lending, waits_for in ((True, "after its current frame"), (False, "when it ends")):
        slots, events, reports = GpuSlots(slots=1, max_waiting=4, lending=lending), [], []
        release = threading.Event()

        def first_job() -> None:
            with slots.held():
                release.wait(10)
                events.append("job 1 ends")

        def second_job() -> None:
            with slots.held():
                events.append("job 2")

        jobs_ = [run_in_thread(first_job)]
        assert wait_for(lambda: slots.busy == 1, 10)
        jobs_.append(run_in_thread(second_job))
        assert wait_for(lambda: slots.waiting == 1, 10)
        calls = [short_call(slots, "call 1", events, reports)]
        assert wait_for(lambda: slots.calls_waiting == 1, 10)
        calls.append(short_call(slots, "call 2", events))
        assert wait_for(lambda: slots.calls_waiting == 2 and reports, 10)
        release.set()
        assert joined(*jobs_, *calls)
        assert events == ["job 1 ends", "call 1", "call 2", "job 2"]
        assert reports[0] == f"Waiting for the GPU: a tracking job is running; the preview runs {waits_for} (next " \
                             "in line)…"
        assert slots.busy == 0 and slots.calls_waiting == 0 and slots.waiting == 0


def test_short_calls_are_bounded_and_one_that_goes_away_leaves_its_place(monkeypatch):
    """At most `max_waiting` short calls wait (a further one is refused at once); a call whose page goes away
    while it waits leaves the line; one whose page went quiet when its turn came does not hold the job up."""
    monkeypatch.setattr(gpu_slots, "CLAIM_SECONDS", 0.2)
    slots = GpuSlots(slots=1, max_waiting=1)
    with slots.held() as lend:
        with slots.short_call() as gone:
            assert next(iter(gone)).ahead == 0 and slots.calls_waiting == 1
            with pytest.raises(QueueFullError, match=r"Queue is full: 1 preview waiting for the GPU, the most "
                                                     r"allowed \(SAM2PLUS_QUEUE_SIZE\)\. Try again in a moment"):
                with slots.short_call():
                    pass
        assert slots.calls_waiting == 0

        with slots.short_call() as quiet:  # not iterated while the job lends: the job goes on
            started = time.monotonic()
            lend()
            assert time.monotonic() - started < 2 and slots.calls_waiting == 1
            turn = iter(quiet)
            threading.Timer(0.1, lend).start()  # the job's next frame: the call is back, it takes its turn
            assert wait_for(lambda: next(turn, None) is None, 10)
    assert slots.busy == 0 and slots.calls_waiting == 0
    with slots.short_call() as free:  # a free slot: no wait, no report
        assert list(free) == [] and slots.busy == 1


def test_a_short_call_behind_other_previews_says_how_many_are_ahead():
    slots = GpuSlots(slots=1, max_waiting=4)
    with slots.short_call() as running:
        assert list(running) == []  # the free slot
        with slots.short_call() as first, slots.short_call() as second:
            assert next(iter(first)).describe() == "Waiting for the GPU: other previews are running (next in line)…"
            assert next(iter(second)).describe() == "Waiting for the GPU: other previews are running (1 ahead)…"
    assert slots.busy == 0 and slots.calls_waiting == 0


def test_only_a_job_in_this_process_is_given_the_lender():
    """On ZeroGPU (`lending=False`) the job runs in a worker process, which gets its arguments pickled: the
    runner passes no lender there."""
    given = []

    def run(*args, **kwargs):
        given.append(kwargs)
        yield JobUpdate()

    for lending in (True, False):
        assert len(list(GpuSlots(1, 1, lending=lending).runner(run, lambda ahead: None)("spec", "models"))) == 1
    assert isinstance(given[0]["between_steps"], gpu_slots.Lender) and given[1] == {}


def test_a_preview_runs_between_two_frames_of_a_tracking_job(tmp_path):
    """Through the service: the job (run_job in its worker thread, holding the only slot) lends the model before
    each prompt and each frame; a preview that comes during frame 1 runs right after it, on the same model."""
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(4)])
    slots, events = GpuSlots(slots=1, max_waiting=4), []

    def on_frame(k: int) -> None:
        events.append(f"frame {k}")
        if k == 1:
            assert wait_for(lambda: slots.calls_waiting == 1, 10)

    session = AppSession.open(clip, AppLimits(), root=tmp_path / "sessions", models=StandInModels(QuickPredictor(on_frame)))
    try:
        session.click(POSITIVE, 0, 10, 10)
        request = session.preview_request(session.selected, 0, TrackOptions(MICRO))
        job = run_in_thread(lambda: list(session.tracking_job(TrackOptions(MICRO), AppLimits(),
                                                              slots.runner(run_job, lambda ahead: None))))
        assert wait_for(lambda: "frame 1" in events, 10)
        preview = short_call(slots, "preview", events,
                             body=lambda: events.append(preview_prompt(request, session.models).frame_idx))
        assert joined(job, preview)
        assert events == ["frame 0", "frame 1", "preview", 0, "frame 2", "frame 3"]
        assert session.results.frames_done == 4
    finally:
        session.close()


def test_the_service_calls_between_steps_before_each_prompt_and_each_frame(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(3)])
    events = []

    class Logged(QuickPredictor):
        def add_new_points_or_box(self, state, frame_idx, obj_id, **kwargs):
            events.append(f"prompt {obj_id}")
            return super().add_new_points_or_box(state, frame_idx, obj_id, **kwargs)

    models = StandInModels(Logged(lambda k: events.append(k)))
    prompts = json.dumps({"objects": [{"id": i, "task": "mask", "prompts": [{"frame": 1, "box": [4, 4, 20, 20]}]}
                                      for i in (1, 2)]})
    request = service.prepare_request(clip, prompts, model=MICRO)
    service.run_tracking(request, between_steps=lambda: events.append("|"), models=models)
    assert events == ["|", "prompt 1", "|", "prompt 2",  # prompts, then backward from frame 1, then forward
                      "|", 1, "|", 0, "|", "|", 1, "|", 2, "|"]


def test_previews_between_the_frames_leave_the_jobs_results_unchanged(tmp_path, seeded_weights):
    """The micro model (on the GPU where there is one: its pipelined propagation keeps a frame in transit while
    the model is lent): a preview before every prompt and frame of a 2-object job changes none of its results,
    and each preview is the one it would be alone."""
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(6)])
    prompts = json.dumps({"objects": [
        {"id": 1, "task": "mask", "prompts": [{"frame": 2, "box": [4, 4, 24, 20]}]},
        {"id": 2, "task": "mask", "prompts": [{"frame": 2, "points": [[36, 20]]},
                                              {"frame": 4, "box": [30, 10, 46, 30]}]}]})
    request = service.prepare_request(clip, prompts, model=MICRO)
    one_click = service.prepare_request(clip, json.dumps({"objects": [
        {"id": 7, "task": "mask", "prompts": [{"frame": 5, "points": [[10, 10]]}]}]}), model=MICRO)
    alone = preview_prompt(one_click)
    previews = []
    service.run_tracking(request, TrackOutputs(results_json=tmp_path / "alone.json"))
    service.run_tracking(request, TrackOutputs(results_json=tmp_path / "lent.json"),
                         between_steps=lambda: previews.append(preview_prompt(one_click)))
    assert len(previews) == 3 + (3 + 1) + (4 + 1)  # each prompt; frames 2-0 back, 2-5 forward, each pass's end
    for preview in previews:
        assert np.array_equal(preview.masks, alone.masks) and np.allclose(preview.scores, alone.scores)
    (_, without), (_, with_previews) = (read_results_json(tmp_path / f"{name}.json") for name in ("alone", "lent"))
    assert [r.frame_idx for r in with_previews] == list(range(6))
    for a, b in zip(without, with_previews):
        assert np.array_equal(a.masks, b.masks) and np.allclose(a.scores, b.scores), a.frame_idx


# --------------------------------------------------------------------------- bounded checks


def test_a_file_claiming_millions_of_frames_is_refused_without_reading_them(tmp_path):
    """24 MB holding 2 M frames: the whole packet scan took about 30 s; the scan stops past twice the limits."""
    video = write_y4m(tmp_path / "many.y4m", 2_000_000)
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"the video has more than 3600 frames; this app takes up to 1800 "
                                         r"\(SAM2PLUS_MAX_FRAMES\)"):
        AppLimits(max_seconds=1e6).check_video(video)
    with pytest.raises(ValueError, match=r"the video is more than 121\.0 s long; this app takes videos up to 60 s"):
        AppLimits().check_video(video)
    assert time.monotonic() - started < REFUSED_WITHIN


def test_a_video_a_little_over_the_limits_gets_its_exact_length(tmp_path):
    video = write_y4m(tmp_path / "short.y4m", 30)
    with pytest.raises(ValueError, match=r"the video has 30 frames; this app takes up to 25"):
        AppLimits(max_frames=25).check_video(video)


def test_rle_counts_longer_than_the_mask_needs_are_refused_before_parsing(monkeypatch):
    parsed = []
    monkeypatch.setattr(rle, "parse_counts_string", lambda text, pixels: parsed.append(len(text)) or [])
    with pytest.raises(rle.RLEError, match=r"RLE 'counts' has 20000000 characters; a 32x48 mask takes at most "
                                           r"4611"):
        rle.decode_rle({"size": [H, W], "counts": "0" * 20_000_000})
    with pytest.raises(rle.RLEError, match=r"RLE 'counts' has 1538 run lengths; a 32x48 mask takes at most 1537"):
        rle.decode_rle({"size": [H, W], "counts": [1] * 1538})
    assert parsed == []


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (32, 48), (480, 640)])
def test_every_mask_fits_the_counts_bound(size):
    """The bound never refuses a real mask: empty, full, checkerboard (the most runs) and random ones."""
    height, width = size
    generator = np.random.default_rng(0)
    checker = np.indices(size).sum(axis=0) % 2 == 1
    for mask in (np.zeros(size, bool), np.ones(size, bool), checker, generator.random(size) > 0.5):
        encoded = rle.encode_rle(mask)
        assert len(encoded["counts"]) <= rle.max_counts_length(height, width, compressed=True)
        assert len(rle.mask_to_counts(mask)) <= rle.max_counts_length(height, width, compressed=False)
        assert np.array_equal(rle.decode_rle(encoded), mask)


def test_the_longest_counts_a_full_hd_mask_allows_are_parsed_in_under_two_seconds():
    """Within the bound, the string is parsed in numpy: 10 M characters (2 M five-character numbers, the most a
    1920x1080 mask allows) took 10 to 70 s in a Python loop (tests/rle_oracle.py)."""
    started = time.monotonic()
    with pytest.raises(rle.RLEError, match=r"RLE run lengths sum to \d+, but size 1080x1920 needs 2073600"):
        rle.decode_rle({"size": [1080, 1920], "counts": "ZZZZ0" * 2_000_000})
    assert time.monotonic() - started < REFUSED_WITHIN


def test_the_numpy_parse_of_counts_matches_the_loop_oracle():
    """Random strings (valid characters, some invalid ones): the same run lengths or the same refusal, except
    that numbers larger than the mask, or more run lengths than it has pixels, are refused at once."""
    generator = np.random.default_rng(1)
    for _ in range(3000):
        codes = generator.integers(0, 64, generator.integers(0, 30))
        text = "".join(chr(48 + int(code)) for code in codes)
        if text and generator.random() < 0.05:
            text = text[:-1] + "~"
        pixels = int(generator.choice([1, 15, 1000, 10 ** 6]))
        expected, got = parse_or_refuse(string_to_counts, text), parse_or_refuse(
            lambda t: rle.parse_counts_string(t, pixels), text)
        if isinstance(expected, list) and isinstance(got, str):
            assert (("larger than" in got and max(map(abs, expected)) > pixels)
                    or ("run lengths; a mask of" in got and len(expected) > pixels + 1)), (text, expected, got)
        else:
            assert got == expected, (text, pixels)


def parse_or_refuse(parse, text: str) -> list[int] | str:
    try:
        return parse(text)
    except rle.RLEError as error:
        return str(error)


# --------------------------------------------------------------------------- the app, every GPU slot busy


def test_bad_requests_are_refused_at_once_while_the_gpu_is_busy(tmp_path, monkeypatch):
    """One GPU slot, held by a job whose stand-in predictor waits to be released: bad prompts, a too-long
    video, a 20 MB RLE mask and a file of 2 M frames are each refused in under 2 s (before this change they
    waited for the slot, and the last two took about 20 and 30 s more); a valid job waits and says so; a job
    over the waiting bound is refused; once released, the waiting jobs complete."""
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(3)])
    long_clip = write_clip(tmp_path / "long.mp4", [pattern_frame(i, H, W) for i in range(6)])
    many = write_y4m(tmp_path / "many.y4m", 2_000_000)
    huge_rle = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [
        {"frame": 0, "mask": {"size": [H, W], "counts": "0" * 20_000_000}}]}]})
    entered, release = threading.Event(), threading.Event()
    predictor = QuickPredictor(on_frame=lambda frame: entered.is_set() or (entered.set(), release.wait(120)))
    parsed, parse = [], rle.parse_counts_string
    monkeypatch.setattr(rle, "parse_counts_string",
                        lambda text, pixels: parsed.append(len(text)) or parse(text, pixels))
    refusals = [
        (clip, '{"objects": [', r"Invalid prompts: the prompts are not valid JSON"),
        (long_clip, BOX_PROMPTS, r"the video has 6 frames; this app takes up to 4 \(SAM2PLUS_MAX_FRAMES\)"),
        (clip, huge_rle, r"Invalid prompts: .*RLE 'counts' has 20000000 characters; a 32x48 mask takes at most "
                         r"4611"),
        (many, BOX_PROMPTS, r"the video has more than 8 frames; this app takes up to 4"),
    ]
    limits = AppLimits(max_frames=4, gpu_concurrency=1, queue_size=1)
    with pytest.MonkeyPatch.context() as patch, \
            launch_app(limits, patch, tmp_path / "app-tmp", models=StandInModels(predictor)) as url:
        clients = [Client(url, verbose=False) for _ in range(3)]
        try:
            first = clients[0].submit(handle_file(str(clip)), BOX_PROMPTS, "{}", api_name="/track")
            assert entered.wait(60)  # the only GPU slot is taken
            for video, prompts, message in refusals:
                started = time.monotonic()
                with pytest.raises(AppError, match=message):
                    clients[1].predict(handle_file(str(video)), prompts, "{}", api_name="/track")
                took = time.monotonic() - started
                print(f"refused in {took:.2f} s: {message[:50]}")
                assert took < REFUSED_WITHIN, (message, took)
            assert 20_000_000 not in parsed  # the 20 MB RLE string was never parsed

            second = clients[1].submit(handle_file(str(clip)), BOX_PROMPTS, "{}", api_name="/track")
            assert wait_for(lambda: progress_text(second) == "Waiting for the GPU (next in line)…")
            started = time.monotonic()
            with pytest.raises(AppError, match=r"Queue is full: 1 job waiting for the GPU, the most allowed "
                                               r"\(SAM2PLUS_QUEUE_SIZE\)"):
                clients[2].predict(handle_file(str(clip)), BOX_PROMPTS, "{}", api_name="/track")
            assert time.monotonic() - started < REFUSED_WITHIN
        finally:
            release.set()
        for job in (first, second):
            _, _, results_json = job.result(timeout=60)
            assert [r.frame_idx for r in read_results_json(results_json)[1]] == [0, 1, 2]
        for client in clients:
            client.close()


def progress_text(job) -> str:
    units = job.status().progress_data or []
    return units[-1].desc if units and units[-1].desc else ""


