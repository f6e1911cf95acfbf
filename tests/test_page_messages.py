"""Issue 28, "Quiet or confusing moments", walked in Chromium as they were found, with the fixed behaviour:

- adding the prompts said nothing for a minute: the progress line now names each prompt ("object 2 of 2 ... on
  frame 0"), with a stand-in predictor that takes a while for each prompt;
- nothing said how long Track would take: after the first preview (measured) the page estimates it;
- offline, the header promised the Hugging Face Hub and the first click answered in Python-API words: the header
  now says the checkpoints cannot be downloaded and names SAM2PLUS_WEIGHTS and its values, and so does the click;
- a .txt upload passed with at most a passing toast: the status line says why it was refused;
- the frame box kept 99999 after refusing it: it shows the frame of the view again;
- a model note stayed after another model was chosen, a note after a move to another frame: each action now
  sets or clears the status line;
- "task" where the page says granularity: the page's words;
- the API page's JavaScript example fetched a path of the server: it fetches this app's URL of the clip.

Screenshots: test-artifacts/browser/28-messages-*.png."""

from __future__ import annotations

from functools import partial

import re
import time
from pathlib import Path

import pytest

from app_fakes import QuickImagePredictor, QuickPredictor, StandInModels, free_port, launch_app
import browser_pages
from browser_pages import ARTIFACTS, CHROMIUM, click_frame, open_page, open_tab, upload_video
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.app import settings
from sam2_plus.app.estimate import SPEEDS
from sam2_plus.app.settings import AppLimits

sync_api = pytest.importorskip("playwright.sync_api")

H, W = 64, 96
PROMPT_SECONDS = 1.5  # the stand-in's time for one prompt (a preview, or a job's prompting step)
# A model that lacks the box granularity, by its place in the settings (the name alone builds no network)
MASK_ONLY = settings.MODELS[1]

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]


class SlowImages(QuickImagePredictor):
    """QuickImagePredictor whose every prompt takes PROMPT_SECONDS (the previews of clicks)."""

    def decode(self, *args, **kwargs):
        time.sleep(PROMPT_SECONDS)
        return super().decode(*args, **kwargs)


class SlowPrompts(QuickPredictor):
    """QuickPredictor whose every prompt takes PROMPT_SECONDS (a real model runs its image encoder there), in
    tracking and in previews."""

    def _prompt(self, state, frame_idx, obj_id, mask, task):
        time.sleep(PROMPT_SECONDS)
        return super()._prompt(state, frame_idx, obj_id, mask, task)

    def image_predictor(self):
        return SlowImages()


MODELS = StandInModels()  # the app's: the real models unless a test gives it stand-ins (`models`)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch, \
            launch_app(AppLimits(), patch, tmp_path_factory.mktemp("messages-app"), models=MODELS) as url:
        yield url


@pytest.fixture
def models(app_url):
    yield MODELS
    MODELS.use()


@pytest.fixture
def page(app_url):
    with open_page(app_url) as page:
        yield page


def shot(page, what: str) -> Path:
    path = ARTIFACTS / f"28-messages-{what}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


wait_text = partial(browser_pages.wait_text, timeout=60_000)  # this file's wait


def choose_model(page, name: str) -> None:
    open_tab(page, "Model")
    page.get_by_label("Model").click()
    page.get_by_role("option", name=name, exact=True).click()


def load_clip(page, path: Path, frames: int) -> None:
    upload_video(page, path)
    wait_text(page, "#status", f"{frames} frames")


def test_adding_the_prompts_says_each_one_and_track_is_estimated_before_it_is_pressed(page, tmp_path, models):
    """Two objects prompted on frame 0 with a stand-in that takes PROMPT_SECONDS a prompt: after the first preview
    the page estimates Track from that preview's time (this machine, this model); during Track the progress line
    names each prompt as it is added; after the run the estimate comes from the run's own speed."""
    frames = 12
    SPEEDS.clear()
    models.use(make=lambda *key: SlowPrompts())
    choose_model(page, MICRO)
    load_clip(page, write_clip(tmp_path / "slow.mp4", [pattern_frame(i, H, W) for i in range(frames)], fps=10),
              frames)
    wait_text(page, "#estimate", "estimated after the first preview")
    click_frame(page, 0.3, 0.3)
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    wait_text(page, "#estimate", "Estimate: about")
    estimate = text_of(page, "#estimate")
    took = float(re.search(r"the last preview took ([\d.]+) s", estimate).group(1))
    assert PROMPT_SECONDS <= took < 4 * PROMPT_SECONDS, estimate
    assert f"here with {MICRO}" in estimate and f"for this video ({frames} frames) with 1 object;" in estimate
    assert "measured on this machine" in estimate

    page.get_by_role("button", name="Add object").click()
    wait_text(page, "#status", "Added object 2")
    click_frame(page, 0.7, 0.6)
    wait_text(page, "#status", "Preview of object 2 on frame 0")
    wait_text(page, "#estimate", "with 2 objects")
    per_frame = float(re.search(r"about ([\d.]+) s/frame", text_of(page, "#estimate")).group(1))
    assert per_frame > took  # two objects take longer a frame than one preview
    shot(page, "estimate")

    page.get_by_role("button", name="Track", exact=True).click()
    wait_text(page, "#track-progress", "Adding the prompts: object 1 of 2 (id 1) on frame 0, prompt 1 of 2")
    wait_text(page, "#track-progress", "Adding the prompts: object 2 of 2 (id 2) on frame 0, prompt 2 of 2")
    bar = page.locator("#track-progress progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("1", "2")
    shot(page, "prompting")
    wait_text(page, "#track-progress", "Done", timeout=120_000)
    wait_text(page, "#estimate", "the last run tracked 2 objects at")
    shot(page, "estimate-after-run")


def test_refusals_say_why_and_each_action_sets_the_status_line(page, tmp_path, models):
    """A .txt upload; a model that lacks an object's granularity (in the page's words), then one that has it (the
    note goes); a frame number outside the video (the box shows the view's frame again); a move to another frame
    (the note goes)."""
    frames = 8
    models.use(make=lambda *key: QuickPredictor())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    upload_video(page, notes)
    wait_text(page, "#status", "notes.txt (text/plain) is not a video: upload a video file")
    shot(page, "txt-refused")

    choose_model(page, MICRO)
    load_clip(page, write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(frames)], fps=10),
              frames)
    page.get_by_label("box", exact=True).check()
    page.get_by_label("Box (two clicks)").check()
    click_frame(page, 0.2, 0.2)
    wait_text(page, "#status", "first corner set")
    click_frame(page, 0.6, 0.7)
    wait_text(page, "#status", "Preview of object 1 on frame 0")
    choose_model(page, MASK_ONLY)
    wait_text(page, "#status", f"object 1 (id 1) has the box granularity, which {MASK_ONLY} cannot track (it takes "
                               "the mask granularity only): choose sam2++, or give object 1 (id 1) the mask "
                               "granularity")
    assert "task" not in text_of(page, "#status")
    shot(page, "granularity")
    choose_model(page, MICRO)  # the note of the other model goes
    page.wait_for_function("() => !document.querySelector('#status').innerText.includes('granularity')",
                           timeout=60_000)

    box = page.locator("#frame-slider input[type=number]")
    box.fill("3")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#frame-slider input[type=range]').value === '3'",
                           timeout=60_000)
    box.fill("99999")
    box.press("Enter")
    wait_text(page, "#status", f"Frames go from 0 to {frames - 1}: back to frame 3.")
    page.wait_for_function("() => document.querySelector('#frame-slider input[type=number]').value === '3'",
                           timeout=60_000)
    shot(page, "frame-reset")
    box.fill("5")
    box.press("Enter")  # a move to another frame ends the note about the last one
    page.wait_for_function("() => document.querySelector('#status').innerText.trim() === ''", timeout=60_000)
    assert page.locator("#frame-slider input[type=range]").input_value() == "5"
    click_frame(page, 0.5, 0.5)  # and the next action says its own
    wait_text(page, "#status", "first corner set")


def test_the_api_pages_javascript_example_fetches_a_url_of_this_app(page, app_url):
    """The JavaScript snippet fetches the example clip from this app (a Blob it then uploads), not a path of
    the server; the browser gets the clip there."""
    page.locator("button.show-api").click()
    page.get_by_text("JavaScript", exact=True).first.click()
    wait_text(page, "body", "await response_0.blob()")
    snippet = text_of(page, "body")
    url = re.search(r'fetch\("([^"]+)"\)', snippet).group(1)
    clip = Path(__file__).resolve().parents[1] / "examples" / "shapes.mp4"
    assert url == f"{app_url}gradio_api/file={clip}"
    size = page.evaluate("async (u) => (await (await fetch(u)).blob()).size", url)
    assert size == clip.stat().st_size
    shot(page, "api-javascript")


def test_offline_the_header_and_the_first_click_name_the_setting(tmp_path, monkeypatch):
    """SAM2PLUS_WEIGHTS unset (the hub), no checkpoint in the cache, the hub unreachable: the header says the
    official checkpoints cannot be downloaded here and names SAM2PLUS_WEIGHTS and its values; the first click
    (the real message of the weights, without building a network) names the setting, not checkpoint=..."""
    from huggingface_hub import constants

    from sam2_plus import weights
    from sam2_plus.config import load_config

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: "test: no network")
    offline = StandInModels(make=lambda model, *rest: weights.download_checkpoint(load_config(model)))
    monkeypatch.delenv("SAM2PLUS_WEIGHTS", raising=False)
    monkeypatch.setenv("SAM2PLUS_APP_TMP", str(tmp_path / "app"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    import app

    demo = app.build_demo(AppLimits(), offline)
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with open_page(f"http://127.0.0.1:{port}/") as page:
            intro = text_of(page, "#intro")
            assert "Weights: the official checkpoints cannot be downloaded here (cannot reach " \
                   "https://huggingface.co: test: no network)" in intro
            assert "Set SAM2PLUS_WEIGHTS to the path of a checkpoint file, or to seeded" in intro
            assert "official checkpoint from the Hugging Face Hub" not in intro
            shot(page, "offline-header")
            load_clip(page, write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(4)]), 4)
            click_frame(page, 0.5, 0.5)
            wait_text(page, "#status", "Preview: The model weights are not available: cannot reach")
            said = text_of(page, "#status")
            assert "SAM2PLUS_WEIGHTS=/path/to/" in said and "SAM2PLUS_WEIGHTS=seeded" in said
            assert "checkpoint=" not in said
            shot(page, "offline-click")
    finally:
        demo.close()
