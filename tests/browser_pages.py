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
    """Click at a fraction of the shown frame (the image is centred and shrunk to fit, never enlarged)."""
    # the status line can change before the new frame has loaded (then its natural size is 0)
    page.wait_for_function("() => { const i = document.querySelector('#frame-view img'); "
                           "return i !== null && i.complete && i.naturalWidth > 0; }", timeout=60_000)
    image = page.locator("#frame-view img")
    box = image.bounding_box()
    width, height = page.evaluate("() => { const i = document.querySelector('#frame-view img'); "
                                  "return [i.naturalWidth, i.naturalHeight]; }")
    scale = min(box["width"] / width, box["height"] / height, 1)
    left, top = (box["width"] - width * scale) / 2, (box["height"] - height * scale) / 2
    image.click(position={"x": left + fx * width * scale, "y": top + fy * height * scale})


def open_tab(page, name: str) -> None:
    """Show one of the settings tabs (Examples, Object, Find, Exports, Model) by its name."""
    page.get_by_role("tab", name=name, exact=True).click()


def wait_text(page, selector: str, text: str, timeout: float) -> None:
    """Wait (up to `timeout` ms) until the element of `selector` is there and its text includes `text`."""
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return e !== null && "
                           "e.innerText.includes(t); }", arg=[selector, text], timeout=timeout)
