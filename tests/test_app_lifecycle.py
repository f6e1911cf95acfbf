"""A session's files over real network events, against the app launched in-process on 127.0.0.1 and driven
over raw HTTP (tests/raw_client.py) or gradio_client: a heartbeat that drops and comes back with the same
session, one that never comes back, a session that never had one, the REST route's job folder, and a client
killed mid-job. Short heartbeat (0.3 s) and reconnect grace (RECONNECT seconds) keep them quick; tracking is
the stand-in QuickPredictor, slowed per frame where a job must still run when the client goes.

As found (issue 16): the unload event removed a session's folder the moment its heartbeat dropped, so a tab
that reconnected had state pointing at a deleted video and every action failed with a bare {"error": null};
a video loaded by a session whose heartbeat was already gone stayed forever; the REST route's folder stayed
until the next API call; an API client killed mid-job left its job running to the end for nobody."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from app_fakes import QuickPredictor, StandInModels, launch_app, wait_for
from media_clips import pattern_frame, write_clip
from raw_client import RawSession, read_until_done

from micro_model import MICRO
from sam2_plus.app.editing import POSITIVE
from sam2_plus.app.session import ENDED
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.export import read_results_json

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")
H, W, T = 32, 48, 40
HEARTBEAT = 0.3  # seconds: Gradio notices a dropped heartbeat within about this
RECONNECT = 2.0  # seconds of grace (SAM2PLUS_RECONNECT_SECONDS)
GONE = HEARTBEAT + RECONNECT + 3.0  # long enough for the app to end a session that went away
PROMPTS = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [4, 4, 20, 20]}]}]})


# Track's other inputs as the page sends them by default (the background, its parameters, the feather, the
# cut-outs and the export formats: rerender.parse_scene)
PAGE_SCENE = ("none", 12.0, "#000000", 0.3, 0.0, ["webm", "png"], [])
# run_track's inputs after the frame, the model, motion-aware and show-results: Find's density and the Find tab
# as the page sends them by default (find_panel.parse_find_choices; keep finding off)
FIND_OFF = ("normal", "Everything", "", 15, 0.3, 0.8, 0.9, False)


class Frames:
    """The stand-in predictor's pacing: the frames it tracked, each taking `seconds`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.seen: list[int] = []

    def __call__(self, frame_idx: int) -> None:
        self.seen.append(frame_idx)
        time.sleep(self.seconds)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        assert wait_for(lambda: len(self.seen) >= count, timeout), self.seen




@pytest.fixture(scope="module")
def frames() -> Frames:
    return Frames()


@pytest.fixture(scope="module")
def app_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-tmp")


@pytest.fixture(scope="module")
def app_url(app_tmp, frames):
    predictor = QuickPredictor(on_frame=frames)
    limits = AppLimits(reconnect_seconds=RECONNECT, gpu_concurrency=2)
    with pytest.MonkeyPatch.context() as patch:
        with launch_app(limits, patch, app_tmp, heartbeat=HEARTBEAT, models=StandInModels(predictor)) as url:
            yield url


@pytest.fixture(autouse=True)
def quick(frames):
    frames.seconds, frames.seen[:] = 0.0, []


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("lifecycle") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)])


def folders(app_tmp: Path, kind: str) -> set[Path]:
    folder = app_tmp / "sam2plus-app" / kind
    return set(folder.iterdir()) if folder.is_dir() else set()


def load_video(session: RawSession, clip: Path, app_tmp: Path) -> Path:
    """Load `clip` in the session; returns the session's new folder."""
    before = folders(app_tmp, "sessions")
    outcome = session.call("load_video", None, session.upload(clip), "")  # "": not declined
    assert outcome.success, outcome.raw
    (folder,) = folders(app_tmp, "sessions") - before
    assert (folder / "video.mp4").is_file()
    return folder


def show_frame(session: RawSession, frame: int):
    return session.call("show_frame", None, frame, True, POSITIVE)


def test_a_session_that_reconnects_within_the_grace_keeps_its_files(app_url, app_tmp, clip):
    session = RawSession(app_url)
    session.open_heartbeat()
    folder = load_video(session, clip, app_tmp)
    session.drop_heartbeat()
    time.sleep(HEARTBEAT * 4)  # Gradio has noticed and run the unload event: the folder used to go here
    assert (folder / "video.mp4").is_file()
    session.open_heartbeat()  # the same session back
    time.sleep(RECONNECT + 1.0)  # past the grace counted from the drop
    outcome = show_frame(session, 3)
    assert outcome.success and outcome.data[0] is not None and not outcome.logs, outcome.raw
    assert (folder / "video.mp4").is_file()
    session.close()
    assert wait_for(lambda: not folder.exists(), GONE)  # gone for good now: the files go


def test_a_session_back_after_the_grace_is_told_in_one_line_to_load_the_video_again(app_url, app_tmp, clip):
    session = RawSession(app_url)
    session.open_heartbeat()
    folder = load_video(session, clip, app_tmp)
    session.drop_heartbeat()
    assert wait_for(lambda: not folder.exists(), GONE)
    session.open_heartbeat()
    shown = show_frame(session, 3)  # was: {"error": null} and a MediaError in the log
    assert shown.success and shown.logs == [ENDED], shown.raw
    added = session.call("handler", None, 0, True)  # Add object
    assert added.success and added.logs == [ENDED] and f"⚠️ {ENDED}" in added.data, added.raw
    refused = session.call("start", None, *PAGE_SCENE)  # Track
    assert not refused.success and refused.error == ENDED, refused.raw
    reloaded = load_video(session, clip, app_tmp)  # loading the video again works
    assert show_frame(session, 1).success
    session.close()
    assert wait_for(lambda: not reloaded.exists(), GONE)


def test_sessions_without_a_heartbeat_leave_nothing_behind(app_url, app_tmp, clip):
    """A video loaded by a session that never opened a heartbeat, and one loaded after the session's heartbeat
    had been gone past the grace (an upload still in the queue when the tab went away)."""
    never = RawSession(app_url)
    folder = load_video(never, clip, app_tmp)
    assert wait_for(lambda: not folder.exists(), GONE)

    late = RawSession(app_url)
    late.open_heartbeat()
    late.drop_heartbeat()
    time.sleep(GONE)
    before = folders(app_tmp, "sessions")
    assert late.call("load_video", None, late.upload(clip), "").success
    assert folders(app_tmp, "sessions") <= before  # its folder went at once
    never.close(), late.close()


def test_a_rest_route_job_leaves_no_folder_once_its_results_are_served(app_url, app_tmp, clip):
    """POST /gradio_api/call/track, then GET its results: the results are Gradio's copies, the job's folder
    is gone (it used to stay until the next API call's sweep)."""
    session = RawSession(app_url)
    video = session.upload(clip)
    with httpx.Client(base_url=app_url, timeout=120) as http:
        posted = http.post("gradio_api/call/track", json={"data": [video, PROMPTS, "{}"]})
        event_id = posted.json()["event_id"]
        with http.stream("GET", f"gradio_api/call/track/{event_id}") as response:
            lines = list(response.iter_lines())
        assert "event: complete" in lines, lines
        overlay, results_zip, results_json = json.loads(lines[lines.index("event: complete") + 1][5:])
        assert not folders(app_tmp, "api")
        downloaded = http.get(results_json["url"])
    downloaded.raise_for_status()
    path = app_tmp / "results.json"
    path.write_bytes(downloaded.content)
    assert [r.frame_idx for r in read_results_json(path)[1]] == list(range(T))
    session.close()


CLIENT = """
import json, sys
from gradio_client import Client, handle_file
url, clip, prompts = sys.argv[1:]
Client(url, verbose=False).predict(handle_file(clip), prompts, "{}", api_name="/track")
"""


def test_an_api_client_killed_mid_job_stops_its_job_and_its_folder_goes(app_url, app_tmp, clip, frames):
    """gradio_client in a process killed (SIGKILL) during a 40-frame job of 0.15 s per frame: the job stops
    after the current frame once the client has been gone for the grace (it used to run to the end)."""
    frames.seconds = 0.15
    client = subprocess.Popen([sys.executable, "-c", CLIENT, app_url, str(clip), PROMPTS])
    try:
        frames.wait_for(3)
        client.kill()
    finally:
        client.wait(30)
    killed_at = len(frames.seen)
    assert wait_for(lambda: not folders(app_tmp, "api"), GONE)
    stopped_at = len(frames.seen)
    time.sleep(1.0)
    print(f"client killed at frame {killed_at}; the job stopped after {stopped_at} of {T} frames")
    assert len(frames.seen) == stopped_at < T  # stopped, and well before the end
    assert stopped_at - killed_at <= (HEARTBEAT + RECONNECT + 2.0) / frames.seconds


def run_through_a_heartbeat_blip(app_url: str, session: RawSession, frames: Frames, event: str, *inputs):
    """Run `event` and drop the session's heartbeat for 3 heartbeat intervals once 3 frames were tracked;
    returns how the event ended."""
    with httpx.Client(base_url=app_url, timeout=120) as http:
        session.join(http, event, *inputs)
        outcome = []
        reader = threading.Thread(target=lambda: outcome.append(read_until_done(http, session.session_hash)))
        reader.start()
        frames.wait_for(3)
        session.drop_heartbeat()
        time.sleep(HEARTBEAT * 3)
        session.open_heartbeat()
        reader.join(120)
    (done,) = outcome
    return done


def test_an_api_client_whose_heartbeat_blips_keeps_its_job_and_results(app_url, app_tmp, clip, frames):
    frames.seconds = 0.05
    session = RawSession(app_url)
    session.open_heartbeat()
    done = run_through_a_heartbeat_blip(app_url, session, frames, "track", session.upload(clip), PROMPTS, "{}")
    assert done.success, done.raw
    assert frames.seen == list(range(T))
    assert not folders(app_tmp, "api")  # the call is over: its results are Gradio's copies
    session.close()


def test_a_browser_tab_gone_mid_track_stops_its_job_and_its_files_go(app_url, app_tmp, clip, frames):
    """A tab killed while Track runs (its queue stream and heartbeat gone): the job stops after the current
    frame and the session's folder goes once the grace has passed."""
    session = RawSession(app_url)
    session.open_heartbeat()
    folder = load_video(session, clip, app_tmp)
    clicked = session.call("on_click", None, 0, True, POSITIVE, event_data={"index": [20, 20], "value": None})
    assert clicked.success and not clicked.logs, clicked.raw
    frames.seconds = 0.15
    http = httpx.Client(base_url=app_url, timeout=120)
    session.join(http, "run_track", None, 0, MICRO, False, True, *FIND_OFF)

    def read_until_killed() -> None:
        try:
            read_until_done(http, session.session_hash)
        except (httpx.HTTPError, RuntimeError, AssertionError):  # its stream closed under it: the tab is gone
            pass

    reading = threading.Thread(target=read_until_killed, daemon=True)
    reading.start()
    frames.wait_for(3)
    http.close()  # the tab is gone: its queue stream ...
    session.drop_heartbeat()  # ... and its heartbeat
    assert wait_for(lambda: not folder.exists(), GONE)
    stopped_at = len(frames.seen)
    time.sleep(1.0)
    assert len(frames.seen) == stopped_at < T
    session.close()


def test_a_browser_tab_whose_heartbeat_blips_mid_track_keeps_its_job(app_url, app_tmp, clip, frames):
    session = RawSession(app_url)
    session.open_heartbeat()
    folder = load_video(session, clip, app_tmp)
    assert session.call("on_click", None, 0, True, POSITIVE, event_data={"index": [20, 20], "value": None}).success
    frames.seconds = 0.05
    done = run_through_a_heartbeat_blip(app_url, session, frames, "run_track", None, 0, MICRO, False, True,
                                        *FIND_OFF)
    assert done.success, done.raw
    assert frames.seen == list(range(T)) and list(folder.glob("job-*/sam2plus_overlay.mp4"))  # its results
    session.close()


def test_the_sweeper_runs_while_the_server_does(tmp_path):
    """Building the app (as importing it does) starts no sweeper thread; launching starts one; closing stops it
    (before, every build started one that ran until the process ended)."""
    import app

    def sweepers() -> int:
        return sum(thread.name == "sam2plus-sweeper" and thread.is_alive() for thread in threading.enumerate())

    before = sweepers()
    app.build_demo(AppLimits())
    assert sweepers() == before
    with pytest.MonkeyPatch.context() as patch, launch_app(AppLimits(), patch, tmp_path):
        assert sweepers() == before + 1
    assert wait_for(lambda: sweepers() == before, 10), sweepers()
