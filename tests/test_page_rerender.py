"""Issue 28, "Effects and exports only by re-tracking or by script", in a real browser (Playwright for Python,
Debian's /usr/bin/chromium, as tests/test_app_browser.py): track with the stand-in predictor of
tests/app_fakes.py (counted), then change the object's effect and its strength and pick the YOLO and CVAT
formats: each change re-renders the results from the stored masks with a progress bar, the result video and
the downloads change (the ZIP has the formats' files), and no predictor is asked for; erasing the background
previews the cut-out on a checkerboard. Screenshots: test-artifacts/browser/28-rerender-*.png."""

from __future__ import annotations

from functools import partial

import io
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from app_fakes import QuickPredictor
import browser_pages
from conftest import SERVER_MODELS
from browser_pages import ARTIFACTS, CHROMIUM, click_frame, open_page, open_tab, upload_video, wait_for_picture
from media_clips import write_clip
from sam2_plus.app.rerender import CHECKER_GREYS

H, W, T = 120, 160, 40
TIMEOUT = 120_000  # ms, on a busy 2-core machine
BOX = (0.25, 0.25, 0.6, 0.75)  # the object's box, as fractions of the frame

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]


class CountingPredictors:
    """A model provider of stand-ins: a QuickPredictor each call; counts the calls and the frames tracked."""

    def __init__(self) -> None:
        self.calls = self.frames = 0
        self.seconds_per_frame = 0.0

    def video_predictor(self, *key) -> QuickPredictor:
        self.calls += 1
        return QuickPredictor(on_frame=self.tracked)

    def tracked(self, frame_idx: int) -> None:
        self.frames += 1
        time.sleep(self.seconds_per_frame)

    @property
    def used(self) -> tuple[int, int]:
        return self.calls, self.frames


@pytest.fixture(scope="module")
def predictors(app_server):
    counting = CountingPredictors()
    models = SERVER_MODELS[0]
    models.use(make=counting.video_predictor)  # previews and tracking
    yield counting
    models.use()


def striped_frame(index: int) -> np.ndarray:
    """Colour ramps under fine moving stripes: a blur or an erased background shows at a glance."""
    yy, xx = np.mgrid[:H, :W]
    stripes = ((xx + yy + 2 * index) // 4 % 2 * 90).astype(np.uint8)
    ramps = np.stack([xx * 160 // W, yy * 160 // H, 160 - xx * 160 // W], axis=-1).astype(np.uint8)
    return ramps + stripes[..., None]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("page-rerender") / "clip.mp4", [striped_frame(i) for i in range(T)],
                      fps=10)


wait_text = partial(browser_pages.wait_text, timeout=TIMEOUT)  # this file's wait


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"28-rerender-{name}.png"), full_page=True)


def watch_progress(page) -> None:
    """Record every text and bar the re-render progress shows (window.rerenderSeen)."""
    page.evaluate("""() => {
        window.rerenderSeen = [];
        const target = document.querySelector('#rerender-progress');
        new MutationObserver(() => window.rerenderSeen.push({text: target.innerText,
            bar: target.querySelector('progress') !== null})).observe(target, {subtree: true, childList: true,
            characterData: true});
    }""")


ZIP_LINK = "#downloads a[href*='sam2plus_results.zip']"


def shown(page) -> tuple[str, str]:
    """The results ZIP's link and the result video's source."""
    return page.evaluate("""link => [document.querySelector(link).href,
                                     document.querySelector('#result-video video').currentSrc]""", ZIP_LINK)


def rerendered(page, before: tuple[str, str]) -> tuple[str, str]:
    """Wait for a re-render to end with a new results ZIP (`before`: what `shown` was), its video ready."""
    page.wait_for_function("""([link, before]) => { const v = document.querySelector('#result-video video');
        const zip = document.querySelector(link);
        return document.querySelector('#rerender-progress').innerText.includes('Re-rendered') && zip !== null
            && zip.href !== before && v !== null && v.readyState >= 2; }""", arg=[ZIP_LINK, before[0]],
                           timeout=TIMEOUT)
    return shown(page)


def downloaded(page, name: str) -> bytes:
    link = page.locator(f"#downloads a[href*='{name}']").first
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    return response.body()


def first_frame(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_effects_and_formats_after_tracking_rerender_without_the_model(predictors, app_server, clip):
    pytest.importorskip("playwright.sync_api")
    with open_page(app_server) as page:
        upload_video(page, clip)
        wait_text(page, "#status", f"{T} frames, {W}x{H}")
        page.get_by_label("Box (two clicks)").check()
        click_frame(page, *BOX[:2])
        wait_text(page, "#status", "first corner set")
        click_frame(page, *BOX[2:])
        wait_text(page, "#status", "Preview of object 1 on frame 0")
        page.get_by_role("button", name="Track", exact=True).click()
        wait_text(page, "#track-progress", "Done")
        page.wait_for_function("() => { const v = document.querySelector('#result-video video'); "
                               "return v !== null && v.readyState >= 2; }", timeout=TIMEOUT)
        tracked = shown(page)
        overlay = first_frame(downloaded(page, "sam2plus_overlay.mp4"))
        used = predictors.used
        assert used[1] == T and page.locator("#effect-strength").is_hidden()
        shot(page, "tracked")

        watch_progress(page)
        started = time.monotonic()
        open_tab(page, "Object")
        choose(page, "Effect of the selected object", "blur")
        wait_text(page, "#status", "object 1: effect blur")
        blurred = rerendered(page, tracked)
        first_seconds = time.monotonic() - started
        strength = page.locator("#effect-strength input[type=number]")
        assert strength.is_visible() and strength.input_value() == "12"
        strength.fill("40")
        strength.press("Tab")  # the slider's release
        stronger = rerendered(page, blurred)
        open_tab(page, "Exports")
        page.get_by_label("yolo-seg", exact=True).check()
        with_yolo = rerendered(page, stronger)
        page.get_by_label("cvat", exact=True).check()
        final = rerendered(page, with_yolo)
        wait_text(page, "#rerender-progress", "the model was not used")
        seen = page.evaluate("() => window.rerenderSeen")
        shot(page, "effects")

        assert predictors.used == used  # no predictor asked for, no frame tracked
        videos = [tracked[1], blurred[1], stronger[1], with_yolo[1], final[1]]
        assert all(video.split("?")[0].endswith("sam2plus_effect.mp4") for video in videos[1:])
        assert "sam2plus_overlay.mp4" in videos[0] and len(set(videos[:3])) == 3  # the formats keep the video
        assert any(s["bar"] and "Re-rendering:" in s["text"] for s in seen), seen
        with zipfile.ZipFile(io.BytesIO(downloaded(page, "sam2plus_results.zip"))) as archive:
            names = set(archive.namelist())
        assert {"cvat/annotations.xml", "yolo-seg/data.yaml", "sam2plus_effect.mp4"} <= names
        assert f"yolo-seg/labels/train/frame_{T - 1:06d}.txt" in names
        effect = first_frame(downloaded(page, "sam2plus_effect.mp4"))
        x0, y0, x1, y1 = (int(f * s) for f, s in zip(BOX, (W, H, W, H)))
        inside = (slice(y0 + 6, y1 - 6), slice(x0 + 6, x1 - 6))
        # blurred: the stripes inside the box are gone; outside, the frame is as tracked (no background effect)
        assert effect[inside].std(axis=(0, 1)).mean() < 0.5 * overlay[inside].std(axis=(0, 1)).mean()
        assert np.abs(effect[:, : x0 - 8].astype(int) - overlay[:, : x0 - 8]).mean() < 3

        assert page.locator("#cutout-preview").is_hidden()
        open_tab(page, "Object")
        choose(page, "Background effect", "erase")
        rerendered(page, final)
        wait_for_picture(page, "#cutout-preview", timeout=TIMEOUT)
        page.locator("#cutout-preview").scroll_into_view_if_needed()
        shot(page, "cutout")
        preview = page.request.get(page.locator("#cutout-preview img").get_attribute("src")).body()
        assert predictors.used == used
    image = np.asarray(Image.open(io.BytesIO(preview)).convert("RGB"))
    scale = image.shape[1] // W
    corner = image[: 4 * scale, : 4 * scale].reshape(-1, 3)
    assert {tuple(p) for p in corner} <= {(g, g, g) for g in CHECKER_GREYS} and len({tuple(p) for p in corner}) == 2
    centre = image[(y0 + y1) // 2 * scale, (x0 + x1) // 2 * scale]
    assert tuple(centre) not in {(g, g, g) for g in CHECKER_GREYS}  # the object shows, blurred
    print(f"first re-render after the effect's choice: {first_seconds:.1f} s for {T} frames")


def test_an_effect_changed_during_a_run_is_applied_to_its_results(predictors, app_server, clip, monkeypatch):
    pytest.importorskip("playwright.sync_api")
    monkeypatch.setattr(predictors, "seconds_per_frame", 0.15)  # a run of about 6 s
    with open_page(app_server) as page:
        upload_video(page, clip)
        wait_text(page, "#status", f"{T} frames, {W}x{H}")
        click_frame(page, 0.4, 0.5)
        wait_text(page, "#status", "Preview of object 1 on frame 0")
        before = predictors.frames
        page.get_by_role("button", name="Track", exact=True).click()
        wait_text(page, "#track-progress", "Tracking:")
        used = predictors.calls
        open_tab(page, "Object")
        choose(page, "Effect of the selected object", "pixelate")
        wait_text(page, "#rerender-progress", "Tracking is running: its results get these effects")
        shot(page, "during-run")
        assert page.locator("#result-video video").count() == 0  # the run has no results yet
        wait_text(page, "#track-progress", "Done")
        wait_text(page, "#rerender-progress", "Re-rendered")
        page.wait_for_function("() => { const v = document.querySelector('#result-video video'); return v !== null "
                               "&& v.currentSrc.includes('sam2plus_effect.mp4') && v.readyState >= 2; }",
                               timeout=TIMEOUT)
        assert predictors.calls == used and predictors.frames == before + T  # the run's frames, once
        block = page.locator("#effect-block input[type=number]")
        block.fill("300")
        block.press("Tab")
        refusal = "object 1's pixelate block: must be an integer from 2 to 256, got 300"
        wait_text(page, "#status", refusal)
        page.wait_for_function("t => [...document.querySelectorAll('.toast-body')].some(e => e.innerText.includes(t))",
                               arg=refusal, timeout=TIMEOUT)
        page.wait_for_function("() => document.querySelector('#effect-block input[type=number]').value === '16'",
                               timeout=TIMEOUT)  # the block kept
        shot(page, "refused")
        assert page.locator(".error").count() == 0 and predictors.calls == used
