"""Issue 28, layout: at 1366x768 the frame view, the object list with each object's granularity, Track with its
progress and the review timeline with its buttons are on one screen; on a phone (400x800) the page follows the
work: video, frame, objects (then their settings), Track, review, downloads.
Screenshots: test-artifacts/browser/28-layout-*.png."""

from __future__ import annotations

from functools import partial

import pytest

import browser_pages
from browser_pages import ARTIFACTS, CHROMIUM, click_frame, open_page, upload_video, wait_for_picture
from media_clips import pattern_frame, write_clip

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium")

FRAMES, HEIGHT, WIDTH = 8, 360, 640
TIMEOUT = 120_000  # ms
ONE_SCREEN = ("#frame-view img", "#objects", "#objects-list", "#granularity", "#track", "#track-progress",
              "#timeline img", "#review button >> nth=0", "#review button >> nth=1")
WORK_ORDER = ("#video-box", "#frame-view", "#objects", "#settings", "#track", "#timeline", "#downloads")


wait_text = partial(browser_pages.wait_text, timeout=TIMEOUT)  # this file's wait


def on_screen(page, selector: str) -> dict:
    """The element's box, which must lie in the viewport as the page opened (no scrolling)."""
    box = page.locator(selector).first.bounding_box()
    view = page.viewport_size
    assert box is not None and box["width"] > 0 and box["height"] > 0, selector
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= view["width"] + 1 and box["y"] + box["height"] <= view["height"] + 1, \
        (selector, box, view)
    return box


def tracked_two_objects(page, tmp_path) -> None:
    """A 640x360 clip, a mask object and a box object prompted on frame 0, tracked."""
    clip = write_clip(tmp_path / "wide.mp4", [pattern_frame(i, HEIGHT, WIDTH) for i in range(FRAMES)], fps=10)
    upload_video(page, clip)
    wait_text(page, "#status", f"{FRAMES} frames")
    click_frame(page, 0.3, 0.5)
    wait_text(page, "#status", "Preview of object 1")
    page.get_by_role("button", name="Add object").click()
    wait_text(page, "#status", "Added object 2")
    page.locator("#granularity").get_by_label("box", exact=True).check()
    page.get_by_label("Box (two clicks)").check()
    click_frame(page, 0.6, 0.4)
    wait_text(page, "#status", "first corner set")
    click_frame(page, 0.9, 0.9)
    wait_text(page, "#status", "Preview of object 2")
    page.get_by_role("button", name="Track", exact=True).click()
    wait_text(page, "#track-progress", "Done")
    page.locator("#timeline img").wait_for(timeout=TIMEOUT)


def test_frame_objects_track_and_review_share_one_screen(app_server, server_models, tmp_path):
    from app_fakes import QuickPredictor

    server_models.use(QuickPredictor())
    with open_page(app_server) as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        tracked_two_objects(page, tmp_path)
        page.evaluate("() => window.scrollTo(0, 0)")
        wait_for_picture(page, "#frame-view", timeout=TIMEOUT)
        for selector in ONE_SCREEN:
            on_screen(page, selector)
        listed = page.locator("#objects-list").inner_text()
        assert "object 1" in listed and "mask" in listed and "object 2" in listed and "box" in listed, listed
        page.screenshot(path=str(ARTIFACTS / "28-layout-1366x768.png"))

        page.set_viewport_size({"width": 400, "height": 800})
        page.locator("#timeline img").scroll_into_view_if_needed()
        tops = [page.locator(selector).first.bounding_box()["y"] for selector in WORK_ORDER]
        assert tops == sorted(tops), dict(zip(WORK_ORDER, tops))
        assert page.locator("#frame-view img").bounding_box()["width"] >= 0.95 * 400 - 16
        page.screenshot(path=str(ARTIFACTS / "28-layout-400x800.png"), full_page=True)
