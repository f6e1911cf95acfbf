"""Effects in a real browser (Playwright for Python, Debian's /usr/bin/chromium, as tests/test_app_browser.py):
choose an object's effect and the background's, track, play the effect MP4 in the result player, and
download the cut-out, whose alpha is the tracked mask. The stand-in predictor of tests/app_fakes.py does the
tracking, so this takes seconds; screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app_fakes import QuickPredictor, launch_app
from media_clips import pattern_frame, write_clip
from sam2_plus import service
from sam2_plus.app import preview
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.alpha import read_alpha_video
from sam2_plus.media.export import read_results_json

sync_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
H, W, T = 64, 96, 8
TIMEOUT = 120_000  # ms, on a busy 2-core machine

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "get_predictor", lambda *args, **kwargs: QuickPredictor())
        patch.setattr(preview, "get_predictor", lambda *args, **kwargs: QuickPredictor())
        with launch_app(AppLimits(), patch, tmp_path_factory.mktemp("app-tmp")) as url:
            yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames = [pattern_frame(i, H, W) for i in range(T)]
    return write_clip(tmp_path_factory.mktemp("browser") / "clip.mp4", frames, fps=10, audio_codec="aac")


def wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s).innerText.includes(t)", arg=[selector, text],
                           timeout=TIMEOUT)


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_effect_video_plays_and_the_cutout_downloads(app_url, clip, tmp_path):
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(app_url)
            page.locator("input[type=file]").first.set_input_files(str(clip))
            wait_text(page, "#status", f"{T} frames, {W}x{H}")
            image = page.locator("#frame-view img")
            box = image.bounding_box()  # the view is the video enlarged by a whole factor, centred
            image.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.5})
            wait_text(page, "#status", "Preview of object 1 on frame 0")

            choose(page, "Effect of the selected object", "pixelate")
            wait_text(page, "#status", "object 1: effect pixelate")
            choose(page, "Background effect", "erase")
            page.get_by_role("button", name="Track", exact=True).click()
            wait_text(page, "#track-progress", "Done")
            played = play_result(page)
            page.screenshot(path=str(ARTIFACTS / "effects-tracked.png"), full_page=True)
            files = download(page, tmp_path)
        finally:
            browser.close()
    assert not errors, errors
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
