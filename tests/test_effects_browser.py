"""Effects through the app: in a real browser (Playwright for Python, Debian's /usr/bin/chromium, as
tests/test_app_browser.py) choose an object's effect and the background's, track, play the effect MP4 in the
result player, and download the cut-out, whose alpha is the tracked mask; through /track (gradio_client) the
options JSON's effects put the effect files into the results ZIP. The stand-in predictor of tests/app_fakes.py
does the tracking, so this takes seconds; screenshots go to test-artifacts/browser/."""

from __future__ import annotations

from functools import partial

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from app_fakes import QuickPredictor
import browser_pages
from conftest import SERVER_MODELS
from browser_pages import ARTIFACTS, CHROMIUM, click_frame, open_page, open_tab, upload_video
from media_clips import write_clip
from micro_model import MICRO
from sam2_plus.media.alpha import read_alpha_video
from sam2_plus.media.export import read_results_json

H, W, T = 64, 96, 8
TIMEOUT = 120_000  # ms, on a busy 2-core machine

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")


@pytest.fixture(scope="module")
def app_url(app_server):
    models = SERVER_MODELS[0]
    models.use(QuickPredictor())  # previews too
    yield app_server
    models.use()


def textured_frame(index: int) -> np.ndarray:
    """Colour ramps under a checkerboard that moves, so that the screenshots show what the effects do."""
    yy, xx = np.mgrid[:H, :W]
    checks = ((xx + 2 * index) // 6 + yy // 6) % 2 * 60
    return np.stack([xx * 255 // W, yy * 255 // H, 255 - xx * 255 // W], axis=-1).astype(np.uint8) // 2 + \
        checks[..., None].astype(np.uint8) + 40


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames = [textured_frame(i) for i in range(T)]
    return write_clip(tmp_path_factory.mktemp("browser") / "clip.mp4", frames, fps=10, audio_codec="aac")


wait_text = partial(browser_pages.wait_text, timeout=TIMEOUT)  # this file's wait


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_track_api_returns_the_effect_files_in_the_results_zip(app_url, clip):
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[30, 30]]}]}]}
    options = {"model": MICRO, "effects": {"objects": {"1": "blur"}, "background": "erase", "cutout": ["png"]}}
    overlay, results_zip, _ = Client(app_url, verbose=False).predict(
        handle_file(str(clip)), json.dumps(prompts), json.dumps(options), api_name="/track")
    assert Path(overlay).name == "sam2plus_overlay.mp4"
    with zipfile.ZipFile(results_zip) as archive:
        names = set(archive.namelist())
    assert {"sam2plus_effect.mp4", f"cutout/{T - 1:05d}.png"} <= names and "sam2plus_cutout.webm" not in names


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium")
def test_effect_video_plays_and_the_cutout_downloads(app_url, clip, tmp_path):
    pytest.importorskip("playwright.sync_api")
    started = time.monotonic()
    with open_page(app_url) as page:
        upload_video(page, clip)
        wait_text(page, "#status", f"{T} frames, {W}x{H}")
        page.get_by_label("Box (two clicks)").check()
        click_frame(page, 0.2, 0.2)
        wait_text(page, "#status", "first corner set")
        click_frame(page, 0.6, 0.85)
        wait_text(page, "#status", "Preview of object 1 on frame 0")

        open_tab(page, "Object")
        choose(page, "Effect of the selected object", "pixelate")
        wait_text(page, "#status", "object 1: effect pixelate")
        choose(page, "Background effect", "erase")
        page.get_by_role("button", name="Track", exact=True).click()
        wait_text(page, "#track-progress", "Done")
        played = play_result(page)
        page.screenshot(path=str(ARTIFACTS / "effects-tracked.png"), full_page=True)
        files = download(page, tmp_path)
    assert played["src"].split("?")[0].endswith("sam2plus_effect.mp4")
    assert played["duration"] > 0 and played["time"] > 0 and (played["width"], played["height"]) == (W, H)
    _, results = read_results_json(files["sam2plus_results.json"])
    cutout = list(read_alpha_video(files["sam2plus_cutout.webm"]))
    assert len(cutout) == T
    for t, rgba in enumerate(cutout):
        error = np.abs(rgba[..., 3].astype(int) - results[t].masks[0] * 255)
        assert error.mean() < 3
    print(f"effects in the browser: {time.monotonic() - started:.0f} s")


def play_result(page) -> dict:
    """Play the result video (muted, as autoplay rules want) until its clock moves; its facts."""
    page.wait_for_function("() => { const v = document.querySelector('#result-video video'); "
                           "return v !== null && v.readyState >= 2 && v.error === null; }", timeout=TIMEOUT)
    page.evaluate("() => { const v = document.querySelector('#result-video video'); v.muted = true; "
                  "return v.play(); }")
    page.wait_for_function("() => document.querySelector('#result-video video').currentTime > 0", timeout=TIMEOUT)
    return page.evaluate("() => { const v = document.querySelector('#result-video video'); return {src: "
                         "v.currentSrc, duration: v.duration, time: v.currentTime, width: v.videoWidth, "
                         "height: v.videoHeight}; }")


def download(page, folder: Path) -> dict[str, Path]:
    """Every file of the downloads list, fetched through its link."""
    links = page.locator("#downloads a[href]")
    files = {}
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        response = page.request.get(href)
        assert response.ok
        path = folder / Path(href.split("?")[0]).name
        path.write_bytes(response.body())
        files[path.name] = path
    assert {"sam2plus_effect.mp4", "sam2plus_cutout.webm", "sam2plus_results.zip"} <= set(files)
    return files
