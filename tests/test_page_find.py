"""Issue 30, the Find panel in Chromium (Playwright, Debian's /usr/bin/chromium) on the shared app at 1366x768:
the shapes example clip -> Find tab: Everything, keyframe interval 15, keep finding -> Find objects -> Add all ->
three objects listed -> one removed -> Track -> the object entering on frame 15 is listed, and the timeline marks
it "new" at its first frame (12: tracked back from the keyframe it was found on). Stand-ins: ScriptedFinder
(tests/discovery_fakes.py) and EnteringPredictor (tests/app_fakes.py).

Screenshots: test-artifacts/browser/30-app-*.png."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import browser_pages
from app_fakes import EnteringPredictor
from browser_pages import ARTIFACTS, CHROMIUM, open_page, open_tab

H, W, FRAMES = 240, 320, 36  # examples/shapes.mp4
TIMEOUT = 120_000  # ms, on a busy 2-core machine

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")
wait_text = partial(browser_pages.wait_text, timeout=TIMEOUT)


def shot(page, what: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"30-app-{what}.png"))


def square(x: int, y: int, side: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y:y + side, x:x + side] = True
    return mask


def test_find_everything_remove_one_track_and_the_timeline_marks_the_new_object(app_server, server_models):
    from discovery_fakes import ScriptedFinder

    first = [(square(20, 20, 60), 0.95, ""), (square(200, 30, 50), 0.9, ""), (square(40, 150, 40), 0.85, "")]
    finder = ScriptedFinder({0: first, 15: [first[0], (square(230, 160, 50), 0.9, "")]})
    server_models.use(EnteringPredictor())
    server_models.use_finder(finder)
    with open_page(app_server) as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        open_tab(page, "Examples")
        # examples sorted by name: bounce, crossing, shapes; clicked without a mouseover (test_page_kept.py)
        page.locator("#examples button.gallery-item").nth(2).dispatch_event("click")
        wait_text(page, "#status", f"{FRAMES} frames")
        for name in ("Examples", "Object", "Find", "Exports", "Model"):  # every tab fits beside the others
            assert page.get_by_role("tab", name=name, exact=True).is_visible(), name
        open_tab(page, "Find")
        page.locator("#find-mode").get_by_text("Everything", exact=True).click()
        page.locator("#find-interval input").fill("15")
        page.locator("#find-interval input").press("Enter")
        page.locator("#find-keep input").check()
        shot(page, "panel")

        page.get_by_role("button", name="Find objects", exact=True).click()
        wait_text(page, "#status", "Found 3 object(s) on frame 0 (normal)")
        shot(page, "found")
        page.get_by_role("button", name="Add all", exact=True).click()
        wait_text(page, "#status", "Added object 1 (proposal 1), object 2 (proposal 2), object 3 (proposal 3)")
        listed = page.locator("#objects-list").inner_text()
        assert listed.count("found: score") == 3, listed
        page.locator("#objects").get_by_text("object 2 (id 2)").click()
        page.get_by_role("button", name="Remove selected", exact=True).click()
        sync_api.expect(page.locator("#objects-list")).not_to_contain_text("object 2")
        shot(page, "listed")

        page.get_by_role("button", name="Track", exact=True).click()
        wait_text(page, "#track-progress", f"Done: {FRAMES} frames tracked.")
        wait_text(page, "#status", "New objects found while tracking: object 4 from frame 12.")
        listed = page.locator("#objects-list").inner_text()
        assert "object 4" in listed and "prompt on frame 15" in listed and "object 2" not in listed, listed
        page.locator("#frame-slider input[type=number]").fill("12")
        page.locator("#frame-slider input[type=number]").press("Enter")
        wait_text(page, "#flag-note", "New on this frame: object 4.")
        page.locator("#timeline").scroll_into_view_if_needed()
        shot(page, "timeline")
    assert finder.calls == [0, 15, 30]  # the page's Find, then the job's keyframes but frame 0
