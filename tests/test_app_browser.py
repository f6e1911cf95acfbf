"""The app in a real browser: Playwright for Python driving Debian's Chromium (/usr/bin/chromium; Playwright's
own browsers are never downloaded) against the app launched in-process on 127.0.0.1 with seeded weights.

Upload a video, click a point (object 1), draw a box with two clicks (object 2), brush a mask (object 3),
track, then check that the result video plays (readyState >= 2) and that the downloads are served.
Screenshots of every step go to test-artifacts/ (kept by CI, ignored by git)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from browser_pages import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, click_frame, open_page, open_tab, upload_video,
                           wait_for_picture)
from media_clips import decode_all_with_pyav, pattern_frame, write_clip
from app_fakes import StandInModels
from micro_model import MICRO
from sam2_plus.app.settings import AppLimits

sync_api = pytest.importorskip("playwright.sync_api")

MODEL_SECONDS = 600_000  # ms: a preview or a tracking run on a busy 2-core CPU
RECONNECT = 1.0  # seconds a closed page keeps its files (short here, for the closing test)
H, W, T = 64, 96, 3

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def app_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-tmp")


MODELS = StandInModels()  # the app's: the real models unless a test gives it stand-ins (`models`)


@pytest.fixture(scope="module")
def app_url(app_tmp):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAM2PLUS_WEIGHTS", "seeded")
        patch.setenv("SAM2PLUS_APP_TMP", str(app_tmp))
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        patch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # notice a closed page within a second
        import app

        demo = app.build_demo(AppLimits(reconnect_seconds=RECONNECT), MODELS)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("browser") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)],
                      fps=10)


@pytest.fixture
def page(app_url):
    with open_page(app_url) as page:
        yield page


@pytest.fixture
def models(app_url):
    yield MODELS
    MODELS.use()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_status(page, text: str, timeout: float = MODEL_SECONDS) -> None:
    page.wait_for_function("text => document.querySelector('#status').innerText.includes(text)", arg=text,
                           timeout=timeout)


def paint(page) -> None:
    canvas = page.locator("#mask-editor canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.40, box["y"] + box["height"] * 0.40)
    page.mouse.down()
    for step in range(1, 13):
        x, y = box["x"] + box["width"] * (0.40 + 0.02 * step), box["y"] + box["height"] * (0.40 + 0.015 * step)
        page.mouse.move(x, y, steps=3)
    page.mouse.up()


def test_prompt_every_way_track_and_download(page, clip):
    started = time.monotonic()
    assert "Untrained test weights" in page.locator("body").inner_text()
    open_tab(page, "Model")
    page.get_by_label("Model").click()
    page.get_by_role("option", name=MICRO).click()
    upload_video(page, clip)
    wait_status(page, f"{T} frames, {W}x{H}", timeout=60_000)
    shot(page, "01-uploaded")

    click_frame(page, 0.3, 0.3)  # object 1: a positive click
    wait_status(page, "Preview of object 1 on frame 0")
    shot(page, "02-point-preview")

    page.get_by_role("button", name="Add object").click()  # object 2: a box from two clicks
    wait_status(page, "Added object 2", timeout=60_000)
    page.get_by_label("Box (two clicks)").check()
    click_frame(page, 0.55, 0.2)
    wait_status(page, "first corner set", timeout=60_000)
    shot(page, "03-first-corner")
    click_frame(page, 0.9, 0.6)
    wait_status(page, "Preview of object 2 on frame 0")
    shot(page, "04-box-preview")

    page.get_by_role("button", name="Add object").click()  # object 3: a brushed mask
    wait_status(page, "Added object 3", timeout=60_000)
    page.get_by_label("Brush mask").check()
    page.locator("#mask-editor canvas").first.wait_for(timeout=60_000)
    paint(page)
    shot(page, "05-painted")
    page.get_by_role("button", name="Use the painted mask").click()
    wait_status(page, "Preview of object 3 on frame 0")
    shot(page, "06-mask-preview")
    legend = page.locator("body").inner_text()
    assert "object 3 (id 3) · mask · prompt on frame 0" in legend

    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Done')",
                           timeout=MODEL_SECONDS)
    page.wait_for_function("() => { const v = document.querySelector('#result-video video'); "
                           "return v !== null && v.readyState >= 2 && v.error === null; }", timeout=60_000)
    video = page.evaluate("() => { const v = document.querySelector('#result-video video'); "
                          "return [v.readyState, v.videoWidth, v.videoHeight, v.duration]; }")
    assert video[0] >= 2 and (video[1], video[2]) == (W, H) and video[3] > 0
    shot(page, "07-tracked")

    links = page.locator("#downloads a[href]")
    hrefs = {Path(links.nth(i).get_attribute("href").split("?")[0]).name: links.nth(i).get_attribute("href")
             for i in range(links.count())}
    assert {"sam2plus_results.zip", "sam2plus_results.json", "sam2plus_overlay.mp4"} <= set(hrefs)
    for href in hrefs.values():
        response = page.request.get(href)
        assert response.ok and len(response.body()) > 0
    print(f"browser flow: {time.monotonic() - started:.0f} s")


def test_stop_keeps_the_frames_tracked_so_far(page, tmp_path, models):
    """A stand-in that takes a quarter second a frame, then a second from frame 3 on (the micro model would finish
    before Stop is clicked, and so could a quick stand-in on a loaded machine)."""
    from app_fakes import QuickPredictor

    frames = 16
    predictor = QuickPredictor(on_frame=lambda frame_idx: time.sleep(0.25 if frame_idx < 3 else 1.0))
    open_stand_in_clip(page, tmp_path, models, predictor, frames, "longer.mp4")

    page.get_by_role("button", name="Track", exact=True).click()
    # at least 2 frames tracked (the page may skip a count: a busy page gets the newest progress only)
    page.wait_for_function("() => { const m = document.querySelector('#track-progress').innerText"
                           ".match(/Tracking: (\\d+) \\//); return m !== null && Number(m[1]) >= 2; }",
                           timeout=MODEL_SECONDS)
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Stopped')",
                           timeout=MODEL_SECONDS)
    done = int(page.locator("#track-progress").inner_text().split("Stopped: ")[1].split(" of ")[0])
    assert 2 <= done < frames
    page.wait_for_function("() => { const v = document.querySelector('#result-video video'); "
                           "return v !== null && v.readyState >= 2; }", timeout=60_000)
    duration = page.evaluate("() => document.querySelector('#result-video video').duration")
    assert abs(duration - done / 10) < 0.05  # the overlay holds exactly the tracked frames
    assert page.locator("#downloads a[href]").count() == 3
    sync_api.expect(page.get_by_role("button", name="Track", exact=True)).to_be_enabled(timeout=60_000)
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    shot(page, "08-stopped")


def track_ready(page) -> None:
    """Track is enabled again, Stop disabled, and nothing shows a bare "Error"."""
    sync_api.expect(page.get_by_role("button", name="Track", exact=True)).to_be_enabled(timeout=60_000)
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=60_000)
    assert "Error" not in page.locator("#result-video").inner_text()


def test_track_works_again_after_each_kind_of_refusal(page, tmp_path, models):
    """A refused Track (no prompt yet; the weights unavailable) says why where the progress shows and leaves
    Track usable: the next Track, once the cause is gone, tracks."""
    from app_fakes import QuickPredictor
    from sam2_plus import service

    def unavailable(*key):
        raise service.CheckpointError("cannot reach the Hugging Face Hub for the checkpoint")

    clip = write_clip(tmp_path / "refusals.mp4", [pattern_frame(i, H, W) for i in range(4)], fps=10)
    page.get_by_role("button", name="Add object").click()  # before any video: one warning, no error pills
    wait_status(page, "Upload a video or pick an example first", timeout=60_000)
    assert "Error" not in page.locator("body").inner_text()
    upload_video(page, clip)
    wait_status(page, "4 frames", timeout=60_000)
    page.get_by_role("button", name="Track", exact=True).click()  # object 1 has no prompt yet
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('no prompt yet')",
                           timeout=60_000)
    track_ready(page)
    shot(page, "11-refused-no-prompt")

    models.use(make=unavailable)
    click_frame(page, 0.5, 0.5)
    wait_status(page, "Preview: ", timeout=60_000)  # the preview says the weights are unavailable
    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Hugging Face')",
                           timeout=60_000)
    track_ready(page)
    shot(page, "12-refused-weights")

    models.use(make=lambda *key: QuickPredictor())
    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Done')",
                           timeout=MODEL_SECONDS)
    track_ready(page)
    shot(page, "13-tracked-after-refusals")

    page.get_by_label("box", exact=True).check()  # a granularity SAM 2.1 lacks: said when the model is chosen
    open_tab(page, "Model")
    page.get_by_label("Model").click()
    page.get_by_role("option", name="sam2.1-tiny").click()
    wait_status(page, "has the box granularity, which sam2.1-tiny cannot track", timeout=60_000)
    shot(page, "14-model-lacks-the-granularity")


def click_timeline(page, x: float) -> None:
    """Click the timeline image at pixel column `x` of the image (vertically in its first row)."""
    image = page.locator("#timeline img")
    box = image.bounding_box()
    width, height = page.evaluate("() => { const i = document.querySelector('#timeline img'); "
                                  "return [i.naturalWidth, i.naturalHeight]; }")
    scale = min(box["width"] / width, box["height"] / height)
    left, top = (box["width"] - width * scale) / 2, (box["height"] - height * scale) / 2
    image.click(position={"x": left + x * scale, "y": top + 25 * scale})


def frame_slider_value(page) -> int:
    return int(page.locator("#frame-slider input[type=number]").input_value())


def open_stand_in_clip(page, tmp_path, models, predictor, frames: int, name: str) -> None:
    """The app tracks with `predictor` (a stand-in, given to the app's `models`); a clip of `frames` frames is loaded
    and object 1 is clicked near the frame's centre."""
    models.use(predictor)
    clip = write_clip(tmp_path / name, [pattern_frame(i, H, W) for i in range(frames)], fps=10)
    upload_video(page, clip)
    wait_status(page, f"{frames} frames", timeout=60_000)
    click_frame(page, 0.5, 0.5)
    wait_status(page, "Preview of object 1 on frame 0", timeout=60_000)


def test_a_flag_on_the_timeline_takes_the_view_to_its_frame(page, tmp_path, models):
    """The object is absent on frames 5-7 (a stand-in predictor): the timeline flags frame 5 (lost) and 8
    (reappeared); a click on the lost flag's mark and the flag buttons move the frame slider there."""
    from app_fakes import VanishingPredictor
    from sam2_plus.app.timeline import TimelineLayout

    frames = 12
    open_stand_in_clip(page, tmp_path, models, VanishingPredictor({5, 6, 7}), frames, "vanishing.mp4")
    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Done')",
                           timeout=MODEL_SECONDS)
    page.locator("#timeline img").wait_for(timeout=60_000)
    shot(page, "09-timeline")

    click_timeline(page, TimelineLayout(num_frames=frames, rows=1).x_of(5) + 3)  # beside the mark: it snaps
    page.wait_for_function("() => document.querySelector('#flag-note').innerText.includes('Frame 5 is flagged')",
                           timeout=60_000)
    assert frame_slider_value(page) == 5
    assert "object 1: lost" in page.locator("#flag-note").inner_text()
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "10-timeline-flag-clicked.png"))

    page.get_by_role("button", name="Next flagged frame ▶").click()
    page.wait_for_function("() => document.querySelector('#flag-note').innerText.includes('Frame 8 is flagged')",
                           timeout=60_000)
    assert frame_slider_value(page) == 8 and "reappeared" in page.locator("#flag-note").inner_text()
    page.get_by_role("button", name="◀ Previous flagged frame").click()
    page.wait_for_function("() => document.querySelector('#flag-note').innerText.includes('Frame 5 is flagged')",
                           timeout=60_000)
    assert frame_slider_value(page) == 5


def test_closing_the_page_removes_the_session_files(app_url, app_tmp, clip):
    """The session's folder (its copy of the video, its results) goes once the page has been closed for the
    reconnect grace (SAM2PLUS_RECONNECT_SECONDS), not an hour later when Gradio drops the closed session's
    state. (A page that reconnects within the grace keeps it: tests/test_app_lifecycle.py.)"""
    sessions = app_tmp / "sam2plus-app" / "sessions"

    def folders() -> set[Path]:
        return set(sessions.iterdir()) if sessions.is_dir() else set()

    before = folders()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(app_url)
        upload_video(page, clip)
        wait_status(page, f"{T} frames, {W}x{H}", timeout=60_000)
        opened = folders() - before
        assert len(opened) == 1 and (next(iter(opened)) / "video.mp4").is_file()
        page.close()
        deadline = time.monotonic() + 30
        while folders() & opened and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.close()
    assert not folders() & opened


def test_tracking_shows_its_progress_and_live_frames_and_takes_a_removal(page, tmp_path, models):
    """During a run (a stand-in predictor, 0.5 s a frame, held before frame 6 until the test lets it go): a bar
    of the frames done with the rate; live frames labelled with their number, the frame slider following them; a
    click on the frame refused at once (no preview queued behind the run); an object removed mid-run is absent
    from the next frames of the results."""
    import json

    from app_fakes import HeldFrame, QuickPredictor

    frames, held = 16, 6
    pacing = HeldFrame(held, 0.5)
    open_stand_in_clip(page, tmp_path, models, QuickPredictor(on_frame=pacing), frames, "live.mp4")
    page.get_by_role("button", name="Add object").click()
    wait_status(page, "Added object 2", timeout=60_000)
    click_frame(page, 0.7, 0.6)
    wait_status(page, "Preview of object 2 on frame 0", timeout=60_000)

    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => { const v = document.querySelector('#frame-view').innerText.match(/Tracking: frame "
                           "(\\d+)/); const s = document.querySelector('#frame-slider input[type=number]'); "
                           "return v !== null && v[1] !== '0' && s.value === v[1]; }", timeout=60_000)
    bar = page.locator("#track-progress progress")
    assert int(bar.get_attribute("max")) == frames and 0 < int(bar.get_attribute("value")) < frames
    # the rate and the time left come once 3 frames and 2 s were tracked (before: "estimating the time left…")
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('left') && !document.querySelector('#track-progress').innerText.includes('estimating')",
                           timeout=30_000)
    text = page.locator("#track-progress").inner_text()
    assert "Tracking: " in text and ("frames/s" in text or "s/frame" in text) and "estimating" not in text, text
    assert "Preview" not in page.locator("#status").inner_text()
    shot(page, "15-live-progress")

    clicked = time.monotonic()
    click_frame(page, 0.5, 0.5)
    wait_status(page, "tracking is running", timeout=10_000)
    assert time.monotonic() - clicked < 5 and "Tracking: " in page.locator("#track-progress").inner_text()
    assert pacing.there.wait(60)  # frames 0-5 are out: the removal applies from frame 6 on
    page.get_by_role("button", name="Remove selected").click()  # object 2
    wait_status(page, "Removed object 2", timeout=10_000)
    pacing.go_on.set()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Done')",
                           timeout=MODEL_SECONDS)
    track_ready(page)
    assert "tracking is running" not in page.locator("#status").inner_text()
    assert "Tracking: frame" not in page.locator("#frame-view").inner_text()
    shot(page, "16-removed-mid-run")

    href = next(page.locator("#downloads a[href]").nth(i).get_attribute("href")
                for i in range(page.locator("#downloads a[href]").count())
                if "sam2plus_results.json" in page.locator("#downloads a[href]").nth(i).get_attribute("href"))
    visible = {entry["frame"]: {o["id"]: o["visible"] for o in entry["objects"]}
               for entry in json.loads(page.request.get(href).body())["frames"]}
    assert sorted(visible) == list(range(frames)) and all(v[1] for v in visible.values())
    # object 2 has no rows from frame 6 on (the frames before keep it, visible), and the summary does not count it
    assert [t for t in range(frames) if 2 in visible[t]] == list(range(held)), visible
    assert all(visible[t][2] for t in range(held))
    summary = page.get_by_label("Summary").input_value()
    assert "1 object: 1 (mask)" in summary and f"object 2 (mask), absent from frame {held} on" in summary, summary


def within(page, selector: str) -> dict:
    """The element's box; it must lie within the viewport (no scrolling to reach it)."""
    box = page.locator(selector).first.bounding_box()
    view = page.viewport_size
    assert box is not None and box["x"] >= 0 and box["y"] >= 0, selector
    assert box["x"] + box["width"] <= view["width"] + 1 and box["y"] + box["height"] <= view["height"] + 1, (selector,
                                                                                                            box)
    return box


def test_the_layout_is_built_around_the_frame_and_plays_the_results(page, tmp_path, models):
    """At 1366x768 the frame view (filling its column at the video's aspect ratio), the prompt tools, the object
    list and Track are on one screen; at 400 px the frame view is as wide as the page. Play steps the frame slider
    through the tracked frames and pauses after the last."""
    from app_fakes import QuickPredictor

    models.use(make=lambda *key: QuickPredictor())
    frames, height, width = 8, 360, 640
    clip = write_clip(tmp_path / "wide.mp4", [pattern_frame(i, height, width) for i in range(frames)], fps=10)
    page.set_viewport_size({"width": 1366, "height": 768})
    upload_video(page, clip)
    wait_status(page, f"{frames} frames", timeout=60_000)
    wait_for_picture(page, "#frame-view", timeout=60_000)
    view = within(page, "#frame-view img")
    column = page.locator("#frame-column").bounding_box()
    assert view["width"] >= 0.95 * column["width"] and abs(view["width"] / view["height"] - width / height) < 0.02
    for selector in ("#tool", "#objects", "#track", "#status", "#frame-slider"):
        within(page, selector)
    page.screenshot(path=str(ARTIFACTS / "layout-1366.png"))

    page.get_by_label("Brush mask").check()  # the brush paints in the frame view's place
    page.locator("#mask-editor canvas").first.wait_for(timeout=60_000)
    assert not page.locator("#frame-view").is_visible()
    canvas = within(page, "#mask-editor canvas")
    page.mouse.move(canvas["x"] + canvas["width"] * 0.4, canvas["y"] + canvas["height"] * 0.4)
    page.mouse.down()  # a short stroke: a busy machine paints slowly
    page.mouse.move(canvas["x"] + canvas["width"] * 0.5, canvas["y"] + canvas["height"] * 0.5, steps=4)
    page.mouse.up()
    page.get_by_role("button", name="Use the painted mask").click()
    wait_status(page, "Preview of object 1 on frame 0")
    assert page.locator("#frame-view").is_visible() and not page.locator("#mask-editor").is_visible()
    page.get_by_label("Brush mask").check()  # again: the strokes did not stay
    page.locator("#mask-editor canvas").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Use the painted mask").click()
    wait_status(page, "nothing is painted", timeout=10_000)
    page.get_by_label("Positive click").check()

    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Done')",
                           timeout=MODEL_SECONDS)
    track_ready(page)
    page.locator("#frame-slider input[type=number]").fill("2")
    page.locator("#frame-slider input[type=number]").press("Enter")
    page.get_by_role("button", name="▶ Play").click()
    page.get_by_role("button", name="⏸ Pause").wait_for(timeout=10_000)
    page.get_by_role("button", name="▶ Play").wait_for(timeout=60_000)  # paused after the last frame
    assert frame_slider_value(page) == frames - 1

    page.set_viewport_size({"width": 400, "height": 800})
    page.locator("#frame-view").scroll_into_view_if_needed()
    box = page.locator("#frame-view img").bounding_box()
    assert box["width"] >= 0.95 * 400, box
    page.screenshot(path=str(ARTIFACTS / "layout-400.png"))


def test_edgetam_tracks_an_example_clip_and_downloads(page, tmp_path):
    """EdgeTAM (the real network with stand-in weights, through transformers) chosen on the page: a click on the
    first 8 frames of an example clip (its real-size network takes about a second a frame here), Track, the
    results served."""
    example = Path(__file__).resolve().parents[1] / "examples" / "crossing.mp4"
    clip = write_clip(tmp_path / "crossing-8.mp4", decode_all_with_pyav(example)[:8])
    open_tab(page, "Model")
    page.get_by_label("Model").click()
    page.get_by_role("option", name="edgetam", exact=True).click()
    upload_video(page, clip)
    wait_status(page, "8 frames, 320x180", timeout=60_000)
    click_frame(page, 0.3, 0.5)
    wait_status(page, "Preview of object 1 on frame 0")
    page.get_by_role("button", name="Track", exact=True).click()
    page.wait_for_function("() => document.querySelector('#track-progress').innerText.includes('Done')",
                           timeout=MODEL_SECONDS)
    shot(page, "20-edgetam-tracked")
    links = page.locator("#downloads a[href]")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    names = {Path(href.split("?")[0]).name for href in hrefs}
    assert {"sam2plus_results.zip", "sam2plus_results.json", "sam2plus_overlay.mp4"} <= names
    for href in hrefs:
        response = page.request.get(href)
        assert response.ok and len(response.body()) > 0
