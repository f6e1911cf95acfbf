"""Issue 28, "A removed object is not removed" and "Point objects", walked in a real browser (Playwright for
Python, Debian's /usr/bin/chromium) on the shared app, with the stand-in predictors of tests/app_fakes.py:

- an object removed while its run tracks has no rows in the results JSON from the frame the removal took
  effect on, no "lost" flag on the timeline (its row is greyed, "removed"), and the summary does not count it;
- a point object whose result has no mask pixel under a presence of 0.99995 (as SAM 2++'s point task may give):
  the preview draws the predicted point, and the prompted frame's JSON says visible;
- a brush stroke on a box object is refused with a message naming what to do, and nothing is converted.

Screenshots: test-artifacts/browser/28-objects-*.png."""

from __future__ import annotations

from functools import partial

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_fakes import GranularPredictor, HeldFrame, QuickPredictor
import browser_pages
from browser_pages import ARTIFACTS, CHROMIUM, click_frame, open_page, upload_video, wait_for_picture
from media_clips import pattern_frame, write_clip
from sam2_plus.media.render import color_for_id
from sam2_plus.media.rle import decode_rle

H, W = 64, 96
TIMEOUT = 120_000  # ms, on a busy 2-core machine

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def page(app_server):
    with open_page(app_server) as page:
        yield page


def shot(page, what: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"28-objects-{what}.png"), full_page=True)


wait_text = partial(browser_pages.wait_text, timeout=TIMEOUT)  # this file's wait


def load_clip(page, tmp_path: Path, frames: int) -> None:
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(frames)], fps=10)
    upload_video(page, clip)
    wait_text(page, "#status", f"{frames} frames")


def track_to_the_end(page) -> None:
    page.get_by_role("button", name="Track", exact=True).click()
    wait_text(page, "#track-progress", "Done")
    sync_api.expect(page.get_by_role("button", name="Track", exact=True)).to_be_enabled(timeout=TIMEOUT)


def results_json(page) -> dict:
    links = page.locator("#downloads a[href]")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    href = next(h for h in hrefs if "sam2plus_results.json" in h)
    return json.loads(page.request.get(href).body())


def shown_frame(page) -> np.ndarray:
    """The frame view's image as served (RGB)."""
    wait_for_picture(page, "#frame-view", timeout=TIMEOUT)
    src = page.locator("#frame-view img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))


def test_an_object_removed_mid_run_leaves_the_timeline_the_results_and_the_summary(page, server_models, tmp_path):
    """Two objects; the run (0.3 s a frame) is held before frame 6 while object 2 is removed."""
    frames, held = 14, 6
    pacing = HeldFrame(held, 0.3)
    server_models.use(make=lambda *key: QuickPredictor(on_frame=pacing))
    load_clip(page, tmp_path, frames)
    click_frame(page, 0.3, 0.4)
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    page.get_by_role("button", name="Add object").click()
    wait_text(page, "#status", "Added object 2")
    click_frame(page, 0.7, 0.6)
    wait_text(page, "#status", "Preview of object 2 on frame 0")

    page.get_by_role("button", name="Track", exact=True).click()
    assert pacing.there.wait(120)  # frames 0-5 are tracked: the removal takes effect on frame 6
    page.get_by_role("button", name="Remove selected").click()  # object 2
    wait_text(page, "#status", "Removed object 2")
    shot(page, "removed-while-tracking")
    pacing.go_on.set()
    wait_text(page, "#track-progress", "Done")
    page.locator("#timeline img").wait_for(timeout=TIMEOUT)

    # the timeline: no flag at all (before: "lost" on frame 6); its row is greyed from frame 6 on
    wait_text(page, "#flag-note", "No frame is flagged.")
    page.get_by_role("button", name="Next flagged frame ▶").click()
    wait_text(page, "body", "no flagged frame after frame")  # a toast
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "28-objects-removed-timeline.png"))

    # the results JSON: object 2 on frames 0-5 only (visible there), object 1 on every frame
    document = results_json(page)
    rows = {entry["frame"]: {o["id"]: o for o in entry["objects"]} for entry in document["frames"]}
    assert sorted(rows) == list(range(frames)) and all(1 in objects for objects in rows.values())
    assert [t for t in range(frames) if 2 in rows[t]] == list(range(held))
    assert all(rows[t][2]["visible"] and rows[t][2]["flags"] == [] for t in range(held))
    assert all(o["flags"] == [] for objects in rows.values() for o in objects.values())

    # the summary: one object tracked; object 2 removed, from frame 6
    summary = page.get_by_label("Summary").input_value()
    assert f"tracked {frames} of {frames} frames, frames 0-{frames - 1}; 1 object: 1 (mask)" in summary, summary
    assert f"removed during the run: object 2 (mask), absent from frame {held} on" in summary, summary
    assert "review: 0 flags" in summary, summary
    page.get_by_label("Summary").scroll_into_view_if_needed()
    shot(page, "removed-summary")


def test_a_point_object_s_preview_draws_the_point_and_its_frame_is_visible(page, server_models, tmp_path):
    """The stand-in's point task gives a heatmap without a pixel above zero and a presence of 0.99995."""
    frames = 4
    server_models.use(make=lambda *key: GranularPredictor())
    load_clip(page, tmp_path, frames)
    page.get_by_label("point", exact=True).check()
    click_frame(page, 0.5, 0.5)  # the view is the video enlarged by a whole factor: (48, 32) in the video
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    image = shown_frame(page)
    scale = image.shape[1] // W
    assert image.shape[:2] == (H * scale, W * scale)
    # the point's disc (radius 6 video pixels) in object 1's colour around the click's marker (whose radius is
    # a 60th of the view's shorter side); WebP blurs the colours a little
    cy, cx = 32 * scale, 48 * scale
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    distance = np.hypot(yy - cy, xx - cx)
    marker = round(image.shape[0] / 60) + 4
    ring = (distance > marker + 2) & (distance < 5 * scale)
    close = (np.abs(image.astype(int) - color_for_id(1)).max(axis=-1) < 40)
    assert close[ring].mean() > 0.9, close[ring].mean()
    assert close[distance > 7 * scale].mean() < 0.01  # nothing of that colour elsewhere
    page.locator("#frame-view").scroll_into_view_if_needed()
    shot(page, "point-preview")

    track_to_the_end(page)
    first = results_json(page)["frames"][0]
    entry = first["objects"][0]
    assert first["frame"] == 0 and entry["id"] == 1
    assert entry["visible"] is True and entry["score"] == pytest.approx(0.99995, abs=1e-5), entry
    assert entry["point"] == pytest.approx([48, 32], abs=0.5) and not decode_rle(entry["mask"]).any()  # no mask pixel, yet visible
    assert entry["flags"] == []
    shot(page, "point-tracked")


def test_a_brush_stroke_on_a_box_object_is_refused_not_converted(page, server_models, tmp_path):
    server_models.use(make=lambda *key: GranularPredictor())
    load_clip(page, tmp_path, 3)
    page.get_by_label("box", exact=True).check()
    page.get_by_label("Brush mask").check()
    canvas = page.locator("#mask-editor canvas").first
    canvas.wait_for(timeout=TIMEOUT)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    for step in range(1, 13):
        page.mouse.move(box["x"] + box["width"] * (0.4 + 0.02 * step), box["y"] + box["height"] * (0.4 + 0.015 * step),
                        steps=3)
    page.mouse.up()
    page.get_by_role("button", name="Use the painted mask").click()
    wait_text(page, "#status", "object 1 has the box granularity, which takes no mask: draw a box with the "
                               "'Box (two clicks)' tool, or set its granularity to mask")
    body = page.locator("body").inner_text()
    assert "object 1 (id 1) · box · no prompt yet" in body  # no box was made of the stroke
    assert page.locator("#mask-editor").is_visible()  # the stroke is still there to use once it is a mask object
    shot(page, "brush-on-box-refused")

    page.get_by_label("mask", exact=True).check()
    page.wait_for_function("() => document.body.innerText.includes('object 1 (id 1) · mask · no prompt yet')",
                           timeout=TIMEOUT)
    page.get_by_role("button", name="Use the painted mask").click()
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    assert "object 1 (id 1) · mask · prompt on frame 0" in page.locator("body").inner_text()
    shot(page, "brush-on-mask-taken")
