"""Work is not lost (issue 28), without Gradio: a job in a thread of its own (`DetachedJob`) runs to its end and
lands its results in the session whether or not a page follows it; a reloaded page takes its session back by
its browser's token within the grace (`PageTokens`), never another browser's nor an open tab's; a new video
or the video's x asks first only when something would go, and the x keeps the objects for the next video.

As found: a reloaded page showed a blank page while its job ran on unseen (Gradio stops iterating a gone
page's generator, so the job's results never reached the session); an example replaced twenty minutes of
results without asking; the x deleted every object while an upload kept them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app_fakes import QuickPredictor, StandInModels
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.app import jobs, workdirs
from sam2_plus.app.detached import DetachedJob
from sam2_plus.app.editing import POSITIVE
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.jobs import JobUpdate
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.rejoin import MAX_TOKENS, PageTokens, valid_tokens
from sam2_plus.app.session import NO_VIDEO, AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.service import TrackProgress

H, W, T = 32, 48, 6
OPTIONS = TrackOptions(MICRO, False)  # tracked by the stand-in QuickPredictor

pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("kept") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)],
                      fps=10)


@pytest.fixture
def session(clip):
    session = AppSession.open(clip, AppLimits())
    session.click(POSITIVE, 0, 20, 15)
    yield session
    session.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Gate:
    """A stand-in predictor's pacing: it stops before frame `at` until opened."""

    def __init__(self, at: int) -> None:
        self.at, self.reached, self.opened = at, threading.Event(), threading.Event()

    def __call__(self, frame_idx: int) -> None:
        if frame_idx == self.at:
            self.reached.set()
            assert self.opened.wait(30)


def progress(done: int) -> TrackProgress:
    return TrackProgress("tracking", done, 10, float(done))


# --------------------------------------------------------------------------- the job outlives its page


def test_a_job_nobody_follows_runs_to_its_end_and_its_results_land_in_the_session(session):
    gate = Gate(at=3)
    session.models = StandInModels(QuickPredictor(on_frame=gate))
    job = session.start_job(OPTIONS, AppLimits())
    assert session.tracking and session.job is job and session.last_options == OPTIONS
    page = job.follow(poll=0.05)
    assert next(page).progress is not None  # the page that pressed Track follows it ...
    assert gate.reached.wait(30)
    page.close()  # ... and goes (what Gradio does to a reloaded page's event)
    gate.opened.set()
    assert job.wait(30) and job.error is None
    assert not session.tracking and session.results is job.result
    assert session.results.frames_done == T and not session.results.stopped
    assert all(Path(p).is_file() for p in session.results.files.downloads())


def test_a_page_that_follows_later_starts_from_the_jobs_state_now_and_sees_its_end(session, monkeypatch):
    gate = Gate(at=4)
    session.models = StandInModels(QuickPredictor(on_frame=gate))
    monkeypatch.setattr(jobs, "LIVE_FRAME_INTERVAL", 0.0)
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL", 0.0)
    job = session.start_job(OPTIONS, AppLimits())
    assert gate.reached.wait(30)
    time.sleep(0.3)  # the frames before the gate reach the job's state
    rejoined = job.follow(poll=0.05)
    now = next(rejoined)
    assert now.progress.phase == "tracking" and now.frame is not None and now.frame_idx is not None
    gate.opened.set()
    list(rejoined)  # to the end
    assert job.done and session.results.frames_done == T


def test_following_merges_what_came_meanwhile_and_raises_the_jobs_error():
    step, sent = threading.Event(), []

    def updates():
        yield JobUpdate(progress=progress(1))
        yield JobUpdate(progress=progress(2), frame="frame 2", frame_idx=2)
        yield JobUpdate(progress=progress(3))
        sent.append(3)
        assert step.wait(10)
        raise RuntimeError("out of memory")

    job = DetachedJob(updates())
    while not sent:
        time.sleep(0.01)
    follower = job.follow(poll=0.05)
    merged = next(follower)  # three updates came before the page looked: one, the newest, with the frame
    assert (merged.progress.frames_done, merged.frame, merged.frame_idx) == (3, "frame 2", 2)
    step.set()
    with pytest.raises(RuntimeError, match="out of memory"):
        next(follower)
    assert job.done and job.result is None and isinstance(job.error, RuntimeError)


def test_an_input_error_is_raised_by_start_job_and_nothing_starts(clip):
    session = AppSession.open(clip, AppLimits())  # object 1 has no prompt
    with pytest.raises(AppInputError, match="no prompt yet"):
        session.start_job(OPTIONS, AppLimits())
    assert not session.tracking and session.job is None
    session.close()


# --------------------------------------------------------------------------- a reloaded page rejoins


@pytest.fixture
def files():
    clock = Clock()
    files = workdirs.SessionFiles(reconnect_seconds=10, clock=clock)
    files.watch_heartbeats()
    files.clock = clock
    return files


def load_page(pages: PageTokens, files: workdirs.SessionFiles, page: str, tokens=()) -> list[str]:
    """A page loads (its heartbeat opens, then its load event): returns the tokens its browser keeps."""
    files.heartbeat_opened(page)
    return pages.rejoin(list(tokens), page).tokens


def with_video(pages, files, page: str, clip) -> AppSession:
    session = AppSession.open(clip, AppLimits())
    files.add(page, session.close, needs_heartbeat=True)
    pages.attach(page, session)
    return session


def test_a_reloaded_page_takes_its_session_back_and_the_grace_no_longer_reaches_it(files, clip):
    pages = PageTokens(files, away_wait=0)
    tokens = load_page(pages, files, "tab-1")
    assert len(tokens) == 1 and tokens == [pages.token_of("tab-1")]
    session = with_video(pages, files, "tab-1", clip)
    files.heartbeat_closed("tab-1")  # reloading
    files.heartbeat_opened("tab-2")
    found = pages.rejoin(tokens, "tab-2")
    assert found.session is session and found.tokens == tokens and not found.ended
    assert pages.token_of("tab-2") == tokens[0] and pages.token_of("tab-1") is None
    files.clock.now = 60.0  # the old page's grace is over: the session now belongs to the new page
    files.expire()
    assert not session.closed
    session.release()  # Gradio drops the old page's gr.State an hour later: the new page still holds it
    assert not session.closed
    files.heartbeat_closed("tab-2")  # the new page goes too, for good
    files.clock.now = 80.0
    files.expire()
    assert session.closed


def test_an_open_tab_and_another_browser_never_get_the_session(files, clip):
    pages = PageTokens(files, away_wait=0.2)
    first = load_page(pages, files, "tab-1")
    session = with_video(pages, files, "tab-1", clip)
    second = pages.rejoin(first, "tab-2")  # a second tab of the same browser while the first is open
    assert second.session is None and not second.ended and second.tokens[0] == first[0] and len(second.tokens) == 2
    other = load_page(pages, files, "other-browser")  # no token: nothing to take
    files.heartbeat_closed("tab-1")
    assert pages.rejoin(other, "other-browser-reload").session is None
    assert pages.rejoin(["made-up"], "guess").session is None
    assert pages.rejoin(second.tokens, "tab-1-reloaded").session is session  # the browser's reload does
    session.close()


def test_a_reload_seen_before_its_old_page_went_waits_for_it(files, clip):
    pages = PageTokens(files, away_wait=5)
    tokens = load_page(pages, files, "tab-1")
    session = with_video(pages, files, "tab-1", clip)
    threading.Timer(0.3, files.heartbeat_closed, args=("tab-1",)).start()  # the server notices a bit later
    started = time.monotonic()
    assert pages.rejoin(tokens, "tab-2").session is session
    assert 0.2 < time.monotonic() - started < 3
    session.close()


def test_after_the_grace_the_page_starts_clean_and_is_told_once(files, clip):
    pages = PageTokens(files, away_wait=0)
    tokens = load_page(pages, files, "tab-1")
    session = with_video(pages, files, "tab-1", clip)
    files.heartbeat_closed("tab-1")
    files.clock.now = 11.0
    files.expire()
    assert session.closed
    later = pages.rejoin(tokens, "tab-2")
    assert later.session is None and later.ended and tokens[0] not in later.tokens
    assert not pages.rejoin(tokens, "tab-3").ended  # said once


def test_a_page_with_a_video_of_its_own_keeps_it(files, clip):
    pages = PageTokens(files, away_wait=0)
    tokens = load_page(pages, files, "tab-1")
    old = with_video(pages, files, "tab-1", clip)
    files.heartbeat_closed("tab-1")
    files.heartbeat_opened("tab-2")
    mine = with_video(pages, files, "tab-2", clip)  # a video loaded before the page's load event ran
    assert pages.rejoin(tokens, "tab-2").session is None and pages.token_of("tab-2") not in tokens
    old.close(), mine.close()


def test_the_tokens_a_browser_sends_are_checked():
    assert valid_tokens(None) == [] and valid_tokens("abc") == [] and valid_tokens({"a": 1}) == []
    assert valid_tokens(["a", 3, "", "x" * 65, "b"]) == ["a", "b"]
    assert valid_tokens([str(i) for i in range(20)]) == [str(i) for i in range(20 - MAX_TOKENS, 20)]


def test_session_files_move_a_closer_to_the_page_that_took_it_over(tmp_path):
    clock = Clock()
    files = workdirs.SessionFiles(reconnect_seconds=5, clock=clock)
    files.watch_heartbeats()
    folder = workdirs.WorkDir.create("sessions", tmp_path)
    files.heartbeat_opened("old")
    files.add("old", folder.close, needs_heartbeat=True)
    assert files.here("old") and not files.away("old")
    files.heartbeat_closed("old")
    assert files.away("old") and not files.here("old")
    files.heartbeat_opened("new")
    files.move(folder.close, "new")
    clock.now = 5.0
    assert files.expire() == 0 and folder.path.is_dir() and files.ended("old")
    files.heartbeat_closed("new")
    clock.now = 10.0
    assert files.expire() == 1 and not folder.path.exists()


# --------------------------------------------------------------------------- asked first; the x keeps the objects


def test_a_new_video_asks_first_only_when_something_would_go(clip):
    fresh = AppSession.open(clip, AppLimits())
    assert fresh.replacing_question() == "" and fresh.clearing_question() == ""  # nothing to lose
    fresh.click(POSITIVE, 0, 10, 10)
    fresh.click(POSITIVE, 2, 10, 10)
    question = fresh.replacing_question()
    assert question.startswith("Replace the video?") and "prompts (on 2 frames)" in question
    assert "results" not in question and fresh.clearing_question() == ""  # the x keeps the prompts
    fresh.models = StandInModels(QuickPredictor())
    assert fresh.start_job(OPTIONS, AppLimits()).wait(30)
    assert "The tracking results and downloads go." in fresh.replacing_question()
    assert fresh.clearing_question().startswith("Clear the video? The tracking results and downloads go.")
    fresh.clear_video()
    assert fresh.replacing_question() == "" and fresh.clearing_question() == ""  # cleared: nothing left to lose


def test_a_running_job_is_named_in_the_question(session):
    gate = Gate(at=1)
    session.models = StandInModels(QuickPredictor(on_frame=gate))
    job = session.start_job(OPTIONS, AppLimits())
    assert gate.reached.wait(30)
    assert "The running tracking job stops." in session.replacing_question()
    assert "The running tracking job stops." in session.clearing_question()
    gate.opened.set()
    assert job.wait(30)


def test_the_x_keeps_the_objects_for_the_next_video_as_an_upload_does(clip, tmp_path):
    old = AppSession.open(clip, AppLimits())
    old.click(POSITIVE, 0, 10, 10)
    old.add_object("car")
    old.set_task("box")
    old.click("Box (two clicks)", 3, 5, 5)
    old.click("Box (two clicks)", 3, 30, 20)
    old.set_effect("blur")
    old.models = StandInModels(QuickPredictor())
    assert old.start_job(OPTIONS, AppLimits()).wait(30) and old.results is not None
    folder = old.workdir
    old.clear_video()
    assert old.cleared and old.closed and not folder.exists() and old.results is None
    with pytest.raises(AppInputError, match=NO_VIDEO):
        old.frame(0)
    new = AppSession.open(clip, AppLimits())
    note = new.keep_objects_of(old)
    assert "Kept the 2 object(s) and 2 of their 2 prompted frames" in note
    assert [(o.name, o.task, o.frames()) for o in new.objects.values()] == [("object 1", "mask", [0]),
                                                                         ("car", "box", [3])]
    assert {obj_id: e.name for obj_id, e in new.effects.items()} == {2: "blur"} and new.selected == 2
    other = AppSession.open(write_clip(tmp_path / "wide.mp4", [pattern_frame(i, H, W + 16) for i in range(T)]),
                            AppLimits())
    assert f"the video is {W + 16}x{H}, not {W}x{H}" in other.keep_objects_of(old)  # as an upload says it
    new.close(), other.close()


def test_the_x_during_a_job_stops_it_and_drops_its_results(session):
    gate = Gate(at=2)
    session.models = StandInModels(QuickPredictor(on_frame=gate))
    job = session.start_job(OPTIONS, AppLimits())
    assert gate.reached.wait(30)
    session.clear_video()
    assert not session.closed and session.stop.is_set()  # the files go when the job has stopped
    gate.opened.set()
    assert job.wait(30) and session.closed and session.results is None and not session.workdir.exists()
    assert [o.frames() for o in session.objects.values()] == [[0]]
