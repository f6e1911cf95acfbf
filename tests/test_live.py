"""The live session's logic without Gradio and without a network (app_fakes.StreamingPredictor): frames in, the
newest processed and late ones dropped, prompts from clicks on the live picture, bounds, bad input, and at Stop
the files a tracking job writes."""

from __future__ import annotations

import json
import time
import zipfile

import av
import numpy as np
import pytest

from app_fakes import StandInModels, StreamingPredictor, wait_for
from micro_model import MICRO
from sam2_plus.app.editing import BOX, POSITIVE
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.live import LiveSpec, run_live
from sam2_plus.app.live_inbox import LivePrompt
from sam2_plus.app.gpu_time import live_gpu_seconds
from sam2_plus.app.live_page import live_cost
from sam2_plus.app.live_session import LiveSession, LiveStats
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.render import color_for_id
from sam2_plus.prompt_rules import FramePrompt
from sam2_plus.weights import WeightsSource

HEIGHT, WIDTH = 48, 64


def picture(number: int) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    image[:, number % WIDTH] = 200  # each frame differs
    return image


def start(tmp_path, predictor=None, **bounds) -> LiveSession:
    models = StandInModels(predictor or StreamingPredictor())
    spec = LiveSpec(tmp_path / "live", MICRO, WeightsSource("seeded"), **bounds)
    spec.folder.mkdir()
    return LiveSession(spec, lambda checked, on_wait: run_live(checked, models))


def send(session: LiveSession, number: int) -> None:
    assert session.wait_for(session.put_frame(picture(number)), timeout=10)


def drawn_pixels(image: np.ndarray, number: int) -> int:
    """Pixels of the drawn picture of frame `number` that differ from the frame (an object drawn on it)."""
    return int((np.abs(image.astype(int) - picture(number).astype(int)).sum(axis=2) > 30).sum())


def test_a_box_on_the_live_picture_is_tracked_drawn_and_written_like_a_job(tmp_path):
    session = start(tmp_path)
    try:
        for number in range(1, 4):
            send(session, number)
        assert session.click(10, 8, BOX) == "first corner set: click the opposite corner"
        assert session.click(30, 28, BOX) == "Object 1 prompted on frame 2"
        assert wait_for(lambda: session.note.startswith("object 1 prompted"), 10)
        for number in range(4, 16):
            send(session, number)
        shown = session.view()
        assert drawn_pixels(shown, 15) > 100  # the box's mask drawn on the newest frame
        assert session.stats().processed == 15 and session.stats().frame_idx == 14
        files = session.stop(timeout=60)
    finally:
        session.close()
    assert files is not None and files.frames == 15 and files.objects == {1: "mask"}
    with av.open(str(files.overlay)) as video:
        frames = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
    assert len(frames) == 15
    color = np.array(color_for_id(1))
    tinted = lambda frame: int((np.abs(frame[12:24, 14:26].astype(int) - color).sum(axis=2) < 200).sum())
    assert tinted(frames[0]) == 0 and tinted(frames[-1]) > 50  # not before the prompt, drawn after it
    with zipfile.ZipFile(files.export) as archive:
        names = archive.namelist()
    assert "masks/obj_1/00014.png" in names and "masks/obj_1/00002.png" in names
    assert "masks/obj_1/00001.png" not in names  # before its prompt the object has no result
    results = json.loads(files.results_json.read_text())
    assert [obj["id"] for obj in results["objects"]] == [1]


def test_frames_that_come_while_the_model_is_busy_are_dropped_and_the_newest_is_processed(tmp_path):
    predictor = StreamingPredictor(on_push=lambda frame_idx: time.sleep(0.1))
    session = start(tmp_path, predictor)
    try:
        numbers = []
        for number in range(1, 21):
            numbers.append(session.put_frame(picture(number)))
            time.sleep(0.01)
        assert session.wait_for(numbers[-1], timeout=10)  # the last frame sent is processed
        stats = session.stats()
    finally:
        session.stop(timeout=60)
    assert stats.sent == 20 and predictor.pushed == stats.processed < 10
    assert "dropped" in stats.describe() and f"{20 - stats.processed} dropped" in stats.describe()


def test_a_session_ends_at_its_frame_limit_and_says_so(tmp_path):
    session = start(tmp_path, max_frames=3)
    try:
        for number in range(1, 4):
            send(session, number)
        assert wait_for(lambda: session.files is not None, 10)
        assert session.put_frame(picture(9)) == 0  # ignored once ended
        assert "limit of 3 frames" in session.describe() and "3 frames in the files" in session.describe()
        with pytest.raises(AppInputError, match="has ended"):
            session.send_prompt(1, "mask", None)
    finally:
        session.close()


def test_a_session_ends_at_its_time_limit(tmp_path):
    session = start(tmp_path, max_seconds=0.3)
    try:
        send(session, 1)
        assert wait_for(lambda: session.files is not None, 10)
        assert "limit of 0.3 seconds" in session.ended and session.files.frames == 1
    finally:
        session.close()


def test_bad_input_gets_a_precise_message_and_the_session_goes_on(tmp_path):
    session = start(tmp_path, history=2)
    try:
        with pytest.raises(AppInputError, match="no live picture yet"):
            session.click(5, 5, POSITIVE)
        send(session, 1)
        with pytest.raises(AppInputError, match=r"the click \(64, 5\) is outside the picture \(64x48 pixels\)"):
            session.click(64, 5, POSITIVE)
        with pytest.raises(AppInputError, match="a camera frame is 32x48, but the frames so far are 64x48: press Stop"):
            session.put_frame(np.zeros((HEIGHT, 32, 3), np.uint8))
        with pytest.raises(AppInputError, match="no object yet"):
            session.remove_selected()
        session.click(5, 5, POSITIVE)  # on frame 0, applied before the next frame is pushed
        for number in range(2, 5):
            send(session, number)
        assert wait_for(lambda: session.note.startswith("object 1 prompted on frame 0"), 10)
        session.inbox.put_prompt(LivePrompt(2, "mask", FramePrompt.of(0, [[5, 5]])))  # frame 0 is 3 frames old
        assert wait_for(lambda: session.note.startswith("⚠️ frame 0 is not held"), 10)
        send(session, 5)  # still running
        assert "⚠️ frame 0 is not held" in session.describe()
    finally:
        session.stop(timeout=60)


def test_freezing_keeps_the_picture_for_prompts_and_drops_the_camera_frames(tmp_path):
    session = start(tmp_path)
    try:
        send(session, 1)
        session.frozen = True
        assert session.put_frame(picture(2)) == 0
        session.click(20, 20, POSITIVE)
        assert wait_for(lambda: session.note == "object 1 prompted on frame 0", 10)
        assert "frozen" in session.describe()
        assert drawn_pixels(session.view(), 1) > 20  # the prompt's result drawn on the frozen picture
    finally:
        session.stop(timeout=60)


def test_while_the_loop_waits_for_the_gpu_the_status_says_so(tmp_path):
    models = StandInModels(StreamingPredictor())
    spec = LiveSpec(tmp_path / "live", MICRO, WeightsSource("seeded"))
    spec.folder.mkdir()

    def waiting_first(checked, on_wait):
        on_wait(1)
        time.sleep(0.3)
        yield from run_live(checked, models)

    session = LiveSession(spec, waiting_first)
    try:
        assert wait_for(lambda: session.describe() == "Waiting for the GPU (1 job ahead)…", 5)
        send(session, 1)
        assert session.describe().startswith("Live: frame 0")
    finally:
        session.stop(timeout=60)


def test_a_frame_must_be_an_rgb_picture(tmp_path):
    session = start(tmp_path)
    try:
        for bad, message in [(None, "a camera frame must be an HxWx3 uint8 RGB numpy array, got NoneType"),
                             (np.zeros((4, 4), np.uint8), r"got ndarray \(4, 4\) uint8"),
                             (np.zeros((4, 4, 3), np.float32), "got ndarray .* float32"),
                             (np.zeros((1, 4, 3), np.uint8), "a camera frame of 4x1 pixels is too small")]:
            with pytest.raises(AppInputError, match=message):
                session.put_frame(bad)
        assert session.stats().sent == 0
    finally:
        session.stop(timeout=60)


def test_the_status_line_says_rates_latency_and_drops():
    stats = LiveStats(sent=30, processed=12, sent_rate=15.04, processed_rate=6.01, latency=0.1234, frame_idx=11)
    assert stats.describe() == ("Live: frame 11 · 6.0 frames/s processed of 15.0 sent · latency 123 ms · "
                                "18 dropped")
    waiting = LiveStats(3, 0, 1.0, 0.0, None, None)
    assert waiting.describe() == "Live: 3 frames sent, waiting for the model's first result…"


def test_the_page_says_what_a_live_session_costs_on_zero_gpu():
    limits = AppLimits(live_seconds=60.0, live_frames=600)
    assert live_gpu_seconds(60.0, 600) == 152  # ZeroGPU's start, the session, its files written
    assert "asks for 152 s of your GPU quota (its 60 s" in live_cost(limits, zero_gpu=True)
    assert "holds one of the app's GPU slots" in live_cost(limits, zero_gpu=False)
    assert limits.describe_live() == ("A live session ends after 60 s or 600 processed frames, whichever comes "
                                      "first; Stop ends it sooner.")
    assert AppLimits.from_env({"SAM2PLUS_LIVE_SECONDS": "30", "SAM2PLUS_LIVE_FRAMES": "90"}).live_frames == 90


def test_the_real_streaming_predictor_runs_a_live_session(tmp_path, seeded_weights):
    """The micro model (stand-in weights) through the same loop: every frame pushed, the box's object tracked from
    its frame on, and the files a job's."""
    from sam2_plus.provider import ModelCache

    spec = LiveSpec(tmp_path / "live", MICRO, WeightsSource("seeded"))
    spec.folder.mkdir()
    session = LiveSession(spec, lambda checked, on_wait: run_live(checked, ModelCache()))
    try:
        for number in range(1, 13):
            send(session, number)
            if number == 3:
                session.click(10, 8, BOX)
                session.click(30, 28, BOX)
        assert session.describe().startswith("Live: frame 11") and "object 1 prompted on frame 2" in session.note
        files = session.stop(timeout=120)
    finally:
        session.close()
    assert session.error is None and files.frames == 12 and files.objects == {1: "mask"}
    with av.open(str(files.overlay)) as video:
        assert sum(1 for _ in video.decode(video=0)) == 12
    results = json.loads(files.results_json.read_text())
    assert [obj["id"] for obj in results["objects"]] == [1]


def test_the_live_picture_goes_to_the_page_inline():
    """The page's live picture is a JPEG data URL in the event's answer: a picture the browser had to fetch
    could be replaced before it loaded, and clicks on a picture that has not loaded are ignored."""
    import base64
    from io import BytesIO

    from PIL import Image

    from sam2_plus.app.live_picture import LivePicture

    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, :32] = (230, 25, 75)
    data = LivePicture(type="numpy").postprocess(picture)
    prefix = "data:image/jpeg;base64,"
    assert data.path is None and data.url.startswith(prefix)
    decoded = np.asarray(Image.open(BytesIO(base64.b64decode(data.url[len(prefix):]))).convert("RGB"))
    assert decoded.shape == picture.shape and np.abs(decoded.astype(int) - picture).mean() < 4
    assert LivePicture().get_block_name() == "image" and LivePicture().postprocess(None) is None
