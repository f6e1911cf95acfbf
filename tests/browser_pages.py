"""The browser tests' Chromium: Debian's /usr/bin/chromium driven by Playwright for Python (Playwright's own
browsers are never downloaded). Screenshots go to test-artifacts/browser/ (kept by CI, ignored by git)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def open_page(url: str) -> Iterator:
    """A page of the app at `url`, once its frame view is there; a screenshot of it at the end (last.png), and
    no JavaScript error may have happened."""
    from playwright import sync_api

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.locator("#frame-view").wait_for(state="attached", timeout=60_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
            browser.close()
        assert not errors, errors


def click_frame(page, fx: float, fy: float) -> None:
    """Click at a fraction of the shown frame."""
    click_picture(page, "#frame-view", fx, fy)


def click_picture(page, selector: str, fx: float, fy: float, settled: bool = True) -> None:
    """Click at a fraction of the picture of the image component `selector` (the picture is centred and shrunk to
    fit, never enlarged), once a picture has loaded there (`settled`: and no newer one is loading, which a live
    picture always has): Gradio ignores a click on a picture that has not loaded (it maps the click through the
    picture's natural size, 0 until then)."""
    wait_for_picture(page, selector, settled)  # the status line can change before the new picture has loaded
    image = page.locator(f"{selector} img")
    box = image.bounding_box()
    width, height = page.evaluate("(s) => { const i = document.querySelector(s + ' img'); "
                                  "return [i.naturalWidth, i.naturalHeight]; }", selector)
    scale = min(box["width"] / width, box["height"] / height, 1)
    left, top = (box["width"] - width * scale) / 2, (box["height"] - height * scale) / 2
    image.click(position={"x": left + fx * width * scale, "y": top + fy * height * scale})


def wait_for_picture(page, selector: str, settled: bool = True, timeout: float = 60_000) -> None:
    """Until the image component `selector` shows a loaded picture (`settled`: and no newer one is loading)."""
    page.wait_for_function("([s, settled]) => { const i = document.querySelector(s + ' img'); "
                           "return i !== null && (i.complete || !settled) && i.naturalWidth > 0; }",
                           arg=[selector, settled], timeout=timeout)


def upload_video(page, path) -> None:
    """Choose `path` in the video input's file chooser. Its own input, not the page's first: while the page is
    still loading its components under load, the first file input may be another one's, or one about to be
    replaced, and the file is then silently lost."""
    page.locator("#video-input input[type=file]").set_input_files(str(path))


def open_tab(page, name: str) -> None:
    """Show one of the settings tabs (Examples, Object, Find, Exports, Model) by its name."""
    page.get_by_role("tab", name=name, exact=True).click()


def wait_text(page, selector: str, text: str, timeout: float) -> None:
    """Wait (up to `timeout` ms) until the element of `selector` is there and its text includes `text`."""
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return e !== null && "
                           "e.innerText.includes(t); }", arg=[selector, text], timeout=timeout)
