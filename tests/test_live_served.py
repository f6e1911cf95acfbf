"""Live tracking through a served app (slow): examples/live_from_file.py streams a clip through /live_frame and
saves the files of /live_stop; and the Live tab in Chromium with its fake camera (a .y4m made from an example
clip) gets a box on the live picture, shows the object for at least 10 frames, stops, and gives an MP4 that plays.
The app runs in-process on 127.0.0.1 with the streaming stand-in predictor (app_fakes.StreamingPredictor)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path

import av
import numpy as np
import pytest

from app_fakes import StandInModels, StreamingPredictor, launch_app
from browser_pages import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, click_picture
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.render import color_for_id

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "live_from_file.py"
CLIP = REPO / "examples" / "shapes.mp4"
LIMITS = AppLimits(live_seconds=60.0, live_frames=300)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch, \
            launch_app(LIMITS, patch, tmp_path_factory.mktemp("live-app"),
                       models=StandInModels(make=lambda *key: StreamingPredictor())) as url:
        yield url


def load_example():
    spec = importlib.util.spec_from_file_location("live_from_file", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as video:
        return [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]


def reddish(image: np.ndarray) -> int:
    """Pixels tinted towards object 1's colour (red, `color_for_id(1)`): the overlay's mask over the clip's grey
    and teal. The clip has a red shape of its own, counted too: compare with a picture before the prompt."""
    assert color_for_id(1) == (230, 25, 75)
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(((r - g > 50) & (r - b > 30)).sum())


DRAWN = 1000  # more reddish pixels than before the prompt: the mask of the 60x50 box (3000 pixels) is drawn


def test_the_script_streams_a_file_prompts_a_box_and_saves_the_files(live_app, tmp_path, capsys):
    out = tmp_path / "out"
    status = load_example().main([live_app, str(CLIP), "--box", "20", "20", "80", "70", "--frames", "12",
                                  "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "frame 11:" in printed and "12 frames tracked" in printed
    frames = decoded(out / "overlay.mp4")
    assert len(frames) == 12
    with zipfile.ZipFile(out / "results.zip") as archive:
        assert sum(name.startswith("masks/obj_1/") for name in archive.namelist()) == 12
    results = json.loads((out / "results.json").read_text())
    assert [obj["id"] for obj in results["objects"]] == [1]


def test_a_prompt_outside_the_frame_is_refused_with_the_prompts_wording(live_app, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from PIL import Image

    image = tmp_path / "frame.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(image)
    client = Client(live_app, verbose=False)
    bad = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [0, 0, 90, 20]}]}]})
    with pytest.raises(AppError, match="box"):
        client.predict(handle_file(str(image)), bad, "", api_name="/live_frame")
    _, status = client.predict(handle_file(str(image)), "", "", api_name="/live_frame")  # goes on
    assert status["processed"] == 1 and status["objects"] == {}
    client.predict(api_name="/live_stop")  # its GPU slot back for the next test


def y4m_clip(source: Path, folder: Path, seconds: float = 4.0) -> Path:
    """The first `seconds` of `source` as a .y4m (Chromium's fake camera plays it in a loop)."""
    target = folder / (source.stem + ".y4m")
    with av.open(str(source)) as inp, av.open(str(target), "w", format="yuv4mpegpipe") as out:
        stream = inp.streams.video[0]
        video = out.add_stream("rawvideo", rate=int(round(stream.average_rate)))
        video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
        for frame in inp.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                break
            for packet in video.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return target


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"live-{name}.png"), full_page=True)


def live_frame_number(page) -> int:
    found = re.search(r"Live: frame (\d+)", page.locator("#live-status").inner_text())
    return int(found.group(1)) if found else -1


def click_view(page, x: float, y: float, size: tuple[int, int]) -> None:
    """Click at pixel (x, y) of the live picture (a camera frame of `size`)."""
    click_picture(page, "#live-view", x / size[0], y / size[1], settled=False)


def test_the_live_tab_with_a_fake_camera(live_app, tmp_path):
    from playwright import sync_api

    camera = y4m_clip(CLIP, tmp_path)
    with av.open(str(camera)) as probe:
        size = (probe.streams.video[0].width, probe.streams.video[0].height)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fake_camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-video-capture={camera}"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_camera)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(live_app)
            page.get_by_role("tab", name="Live").click()
            _start_camera(page)
            page.wait_for_function("document.querySelector('#live-status')?.innerText.includes('Live: frame')",
                                   timeout=60_000)
            shot(page, "streaming")
            inline = "document.querySelector('#live-view img')?.src.startsWith('data:image/jpeg;base64,')"
            page.wait_for_function(inline, timeout=60_000)  # the picture comes with the answer, not fetched
            baseline = max(reddish(_live_picture(page, size)) for _ in range(5))
            page.locator("#live-tool").get_by_label("Box (two clicks)").check()
            click_view(page, 20, 20, size)
            page.wait_for_function("document.querySelector('#live-status')?.innerText.includes('first corner')",
                                   timeout=60_000)
            click_view(page, 80, 70, size)
            page.wait_for_function("document.querySelector('#live-status')?.innerText.includes('prompted on frame')",
                                   timeout=60_000)
            prompted = live_frame_number(page)
            drawn = _drawn_frames(page, prompted, size, baseline)
            shot(page, "tracking")
            page.locator("#live-stop").click()
            with page.expect_download(timeout=120_000) as download:
                page.locator("#live-files a[href*='overlay']").first.click(timeout=120_000)
            overlay = tmp_path / "overlay.mp4"
            download.value.save_as(overlay)
            shot(page, "stopped")
            assert not errors, errors
        finally:
            if browser.contexts and browser.contexts[0].pages:
                shot(browser.contexts[0].pages[0], "last")
            browser.close()
    assert drawn >= 10
    frames = decoded(overlay)
    assert len(frames) > 10
    assert reddish(frames[-1]) > reddish(frames[0]) + DRAWN  # not drawn on the first frame, drawn on the last


def _start_camera(page) -> None:
    """Gradio's webcam: allow it (the fake UI grants it), then its record button starts the stream."""
    camera = page.locator("#live-camera")
    access = camera.get_by_text("Click to Access Webcam")
    if access.count():
        access.first.click()
    camera.locator("button[aria-label*='ecord'], button:has-text('Record')").first.click(timeout=30_000)


def _live_picture(page, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    picture = page.locator("#live-view img").screenshot()
    return np.asarray(Image.open(BytesIO(picture)).convert("RGB").resize(size))


def _drawn_frames(page, prompted: int, size: tuple[int, int], baseline: int, needed: int = 10,
                  timeout: float = 60.0) -> int:
    """How many distinct live frames after `prompted` the page showed with the object drawn on them (the live
    picture's pixels, the frame number of the status line), until `needed` or `timeout`."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < needed and time.monotonic() < deadline:
        number = live_frame_number(page)
        if number > prompted and number not in seen and reddish(_live_picture(page, size)) > baseline + DRAWN:
            seen.add(number)
        time.sleep(0.05)
    return len(seen)
