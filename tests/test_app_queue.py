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
from app_fakes import QuickPredictor, launch_app, wait_for
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from media_clips import pattern_frame, write_clip
from rle_oracle import string_to_counts

from sam2_plus import service
from sam2_plus.app.editing import BOX
from sam2_plus.app.errors import AppInputError, QueueFullError
from sam2_plus.app.gpu_slots import GpuSlots, describe_wait
from sam2_plus.app.jobs import run_job
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.media import rle
from sam2_plus.media.export import read_results_json

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
    monkeypatch.setattr(service, "get_predictor", lambda *args, **kwargs: predictor)
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
    with pytest.MonkeyPatch.context() as patch, launch_app(limits, patch, tmp_path / "app-tmp") as url:
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


