"""Issue 28, "Work is easy to lose", in Chromium (Playwright driving Debian's /usr/bin/chromium) against the app
launched in-process with a stand-in predictor (tests/app_fakes.py QuickPredictor, paced per frame).

As found: an example thumbnail clicked after a run replaced the video, the downloads and the review without
asking; reloading the page mid-run gave a blank page while the job ran on unseen; nothing warned before
leaving; the video's x deleted every object while a new upload kept them. Each test walks one of these and
shows the fixed behaviour; screenshots test-artifacts/browser/28-kept-*.png."""

from __future__ import annotations

from functools import partial

import time
from pathlib import Path

import pytest

from app_fakes import QuickPredictor, StandInModels, launch_app
import browser_pages
from browser_pages import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, click_frame, open_page, open_tab, upload_video
from media_clips import pattern_frame, write_clip
from sam2_plus.app.settings import AppLimits

sync_api = pytest.importorskip("playwright.sync_api")

H, W = 64, 96
RECONNECT = 15.0  # seconds of grace: long enough for a reload on a busy machine, short enough to wait out once
WAIT = 60_000  # ms

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]


class Pace:
    """The stand-in predictor's time per frame (0.3 s while a test needs a run it can act during)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, frame_idx: int) -> None:
        time.sleep(self.seconds)


class Dialogs:
    """The page's dialogs (confirm, beforeunload): recorded, then accepted or dismissed as `accept` says."""

    def __init__(self, page) -> None:
        self.seen: list[tuple[str, str]] = []
        self.accept = False
        page.on("dialog", self._answer)

    def _answer(self, dialog) -> None:
        self.seen.append((dialog.type, dialog.message))
        dialog.accept() if self.accept else dialog.dismiss()

    def wait(self, page, count: int, timeout: float = 30.0) -> None:
        """Until `count` dialogs came (Playwright hands them over while the page is being waited on)."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(self.seen) >= count, self.seen

    def of_type(self, kind: str) -> list[str]:
        return [message for type_, message in self.seen if type_ == kind]


@pytest.fixture(scope="module")
def pace() -> Pace:
    return Pace()


@pytest.fixture(scope="module")
def app_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-tmp")


@pytest.fixture(scope="module")
def app_url(pace, app_tmp):
    predictor = QuickPredictor(on_frame=pace)
    with pytest.MonkeyPatch.context() as patch:
        with launch_app(AppLimits(reconnect_seconds=RECONNECT), patch, app_tmp, heartbeat=0.5,
                        models=StandInModels(predictor)) as url:
            yield url


@pytest.fixture(autouse=True)
def quick(pace):
    pace.seconds = 0.0


@pytest.fixture
def page(app_url):
    with open_page(app_url) as page:
        yield page


def clip(tmp_path: Path, frames: int, name: str = "clip.mp4") -> Path:
    return write_clip(tmp_path / name, [pattern_frame(i, H, W) for i in range(frames)], fps=10)


def shot(page, what: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"28-kept-{what}.png"), full_page=True)


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


wait_text = partial(browser_pages.wait_text, timeout=WAIT)  # this file's wait


def upload(page, path: Path, frames: int) -> None:
    upload_video(page, path)
    wait_text(page, "#status", f"{frames} frames, {W}x{H}")


def prompt_and_track(page) -> None:
    click_frame(page, 0.5, 0.5)
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    page.get_by_role("button", name="Track", exact=True).click()


def results_on_page(page) -> dict:
    """What the page shows of the last results: the download names, the summary, the review, the legend."""
    links = page.locator("#downloads a[href]")
    return {"downloads": sorted(Path(links.nth(i).get_attribute("href").split("?")[0]).name
                                for i in range(links.count())),
            "summary": page.get_by_label("Summary").input_value(),
            "review": page.locator("#timeline img").count() == 1 and page.locator("#review").is_visible(),
            "legend": text(page, "#objects-list"),
            "progress": text(page, "#track-progress")}


def pick_example(page, index: int) -> None:
    """Click an example thumbnail without moving the mouse over it: Gradio's thumbnails play on mouseover and
    pause on mouseout, and a pause before the play started is an unhandled rejection in Gradio's own code."""
    page.locator("#examples button.gallery-item").nth(index).dispatch_event("click")


def test_an_example_after_a_run_asks_first_and_declining_keeps_everything(page, tmp_path):
    dialogs = Dialogs(page)
    pick_example(page, 0)  # nothing on the page: no question
    wait_text(page, "#status", "40 frames, 320x240")
    page.get_by_role("button", name="Clear", exact=True).click()  # no prompt, no results: no question either
    page.locator("#video-input input[type=file]").wait_for(state="attached", timeout=WAIT)
    upload(page, clip(tmp_path, 6), 6)
    assert dialogs.seen == []
    prompt_and_track(page)
    wait_text(page, "#track-progress", "Done")
    page.locator("#timeline img").wait_for(timeout=WAIT)
    before = results_on_page(page)
    assert len(before["downloads"]) == 3 and before["review"] and "prompt on frame 0" in before["legend"]
    shot(page, "example-before")

    pick_example(page, 1)  # after a run: asked, declined
    wait_text(page, "#status", "Kept the current video.")
    (question,) = dialogs.of_type("confirm")
    assert question.startswith("Replace the video? The tracking results and downloads go.")
    assert "prompts (on 1 frame)" in question and "Cancel keeps everything" in question
    assert results_on_page(page) == before
    page.wait_for_function("() => { const v = document.querySelector('#result-video video'); "
                           "return v !== null && v.readyState >= 2; }", timeout=WAIT)
    assert page.locator("#frame-view img").count() == 1 and "6 frames" not in text(page, "#status")
    shot(page, "example-declined")
    page.get_by_role("button", name="Clear", exact=True).click()  # the video's x: asked too, declined
    dialogs.wait(page, 2)
    assert dialogs.of_type("confirm")[-1].startswith("Clear the video? The tracking results and downloads go.")
    page.get_by_role("button", name="Clear", exact=True).wait_for(timeout=WAIT)  # the video is back
    assert results_on_page(page) == before

    dialogs.accept = True
    pick_example(page, 1)  # asked again, accepted: the example replaces the video
    wait_text(page, "#status", "30 frames, 320x180")
    assert len(dialogs.of_type("confirm")) == 3
    status = text(page, "#status")
    assert "Kept the 1 object(s) and 0 of their 1 prompted frames" in status and "not 96x64" in status
    after = results_on_page(page)
    assert after["downloads"] == [] and not after["review"] and after["summary"] == ""
    shot(page, "example-accepted")


def test_a_reload_mid_run_warns_rejoins_the_job_and_shows_its_results(page, tmp_path, pace, app_url):
    frames = 40  # 12 s at 0.3 s a frame: running through two reloads
    dialogs = Dialogs(page)
    upload(page, clip(tmp_path, frames), frames)
    pace.seconds = 0.3
    prompt_and_track(page)
    wait_text(page, "#track-progress", "Tracking: 3 /")
    dialogs.accept = True  # leave
    reloaded = time.monotonic()
    page.reload()
    assert dialogs.of_type("beforeunload") == [""]  # the page asked before leaving the run
    page.locator("#frame-view").wait_for(state="attached", timeout=WAIT)
    wait_text(page, "#status", "Rejoined your earlier session")
    print(f"rejoined the running job {time.monotonic() - reloaded:.1f} s after the reload")
    assert "its running tracking job" in text(page, "#status")
    page.wait_for_function("() => document.querySelector('#frame-view').innerText.includes('(live)')", timeout=WAIT)
    page.locator("#timeline img").wait_for(timeout=WAIT)
    progress = text(page, "#track-progress")
    assert "Tracking: " in progress and f"/ {frames} frames" in progress, progress
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    sync_api.expect(page.get_by_role("button", name="Track", exact=True)).to_be_disabled()
    assert "prompt on frame 0" in text(page, "#objects-list")
    shot(page, "rejoined-running")

    stranger = page.context.browser.new_context()  # another browser (its own localStorage): a page of its own
    other = stranger.new_page()
    other.goto(app_url)
    other.locator("#frame-view").wait_for(state="attached", timeout=WAIT)
    other.wait_for_timeout(2000)
    assert "Rejoined" not in text(other, "#status") and other.locator("#frame-view img").count() == 0
    stranger.close()

    page.locator("#intro").click()  # a user gesture: Chromium asks before unload only after one
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_enabled()  # still running
    dialogs.seen.clear()
    page.reload()  # the rejoined page warns too while the job runs
    assert dialogs.of_type("beforeunload") == [""]
    page.locator("#frame-view").wait_for(state="attached", timeout=WAIT)
    wait_text(page, "#track-progress", "Done", timeout=120_000)
    page.wait_for_function("() => { const v = document.querySelector('#result-video video'); "
                           "return v !== null && v.readyState >= 2; }", timeout=WAIT)
    page.locator("#timeline img").wait_for(timeout=WAIT)
    done = results_on_page(page)
    assert done["downloads"] == ["sam2plus_overlay.mp4", "sam2plus_results.json", "sam2plus_results.zip"]
    assert f"Done: {frames} frames tracked" in done["progress"] and "frames" in done["summary"] and done["review"]
    sync_api.expect(page.get_by_role("button", name="Track", exact=True)).to_be_enabled(timeout=WAIT)
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    shown = page.locator("#frame-slider input[type=number]").input_value()  # the last live frame's results
    shot(page, "rejoined-done")

    page.locator("#intro").click()
    dialogs.seen.clear()
    page.reload()  # idle: no warning; the finished results come back at once
    assert dialogs.seen == []
    page.locator("#frame-view").wait_for(state="attached", timeout=WAIT)
    wait_text(page, "#status", "its tracking results")
    page.locator("#timeline img").wait_for(timeout=WAIT)
    assert results_on_page(page)["downloads"] == done["downloads"]
    assert page.locator("#frame-slider input[type=number]").input_value() == shown  # the frame view as it was
    assert page.locator("#frame-view img").count() == 1
    shot(page, "rejoined-finished")


def test_clearing_the_video_keeps_the_objects_for_the_next_video(page, tmp_path):
    dialogs = Dialogs(page)
    upload(page, clip(tmp_path, 6), 6)
    click_frame(page, 0.3, 0.3)
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    page.get_by_role("button", name="Add object").click()
    wait_text(page, "#status", "Added object 2")
    open_tab(page, "Object")
    name = page.get_by_label("Name of the selected object (Enter to rename)")
    name.fill("car")
    name.press("Enter")
    page.get_by_label("box", exact=True).check()
    page.get_by_label("Effect of the selected object").click()
    page.get_by_role("option", name="blur", exact=True).click()
    wait_text(page, "#status", "car: effect blur")

    page.get_by_role("button", name="Clear", exact=True).click()  # the video's x: nothing would go, no question
    wait_text(page, "#status", "The video is cleared; its 2 object(s) and their prompts wait for the next video.")
    assert dialogs.seen == []
    legend = text(page, "#objects-list")
    assert "object 1 (id 1) · mask · prompt on frame 0" in legend and "car (id 2) · box · no prompt yet" in legend
    shot(page, "cleared")

    upload(page, clip(tmp_path, 6, "next.mp4"), 6)
    assert "Kept the 2 object(s) and 1 of their 1 prompted frames" in text(page, "#status")
    assert page.get_by_label("car (id 2)").is_checked()
    assert page.get_by_label("Effect of the selected object").input_value() == "blur"
    assert "car (id 2) · box" in text(page, "#objects-list")
    shot(page, "cleared-next-video")


def test_after_the_grace_the_page_starts_clean_and_says_so(app_url, app_tmp, tmp_path):
    """A closed tab's session goes after the grace; the browser's next page says so. A second tab opened while
    the first is open does not take the first one's session."""
    sessions = app_tmp / "sam2plus-app" / "sessions"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1300})
        page = context.new_page()
        page.goto(app_url)
        page.locator("#frame-view").wait_for(state="attached", timeout=WAIT)
        before = set(sessions.iterdir()) if sessions.is_dir() else set()
        upload(page, clip(tmp_path, 4), 4)
        (folder,) = set(sessions.iterdir()) - before
        second = context.new_page()
        second.goto(app_url)
        second.locator("#frame-view").wait_for(state="attached", timeout=WAIT)
        second.wait_for_timeout(4000)
        assert "Rejoined" not in text(second, "#status") and second.locator("#frame-view img").count() == 0
        second.close()
        page.close()  # the tab goes, for good
        deadline = time.monotonic() + RECONNECT + 20
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not folder.exists()
        later = context.new_page()
        later.goto(app_url)
        wait_text(later, "#status", "Your earlier session on this page ended")
        assert later.locator("#frame-view img").count() == 0
        later.screenshot(path=str(ARTIFACTS / "28-kept-ended.png"), full_page=True)
        browser.close()
