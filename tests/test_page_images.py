"""Issue 29, the page's image half in Chromium (Playwright, Debian's /usr/bin/chromium) on the shared app, with
the stand-ins of tests/app_fakes.py (QuickPredictor and its QuickImagePredictor: three candidates for a click)
and a SquareFinder here (Find objects' masks, the Find panel's finder):

(a) an image upload -> a click -> its three candidates under the frame view -> another one picked -> Segment ->
    the cut-out PNG downloaded: RGBA, its alpha the picked candidate's mask;
(b) a frame of a video -> Find objects -> two proposals picked on the frame view -> Track -> the results JSON
    has the two objects, each the proposal's mask on that frame.

Screenshots: test-artifacts/browser/29-appimage-*.png."""

from __future__ import annotations

from functools import partial

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import browser_pages
from app_fakes import QuickImagePredictor, QuickPredictor, StandInModels
from browser_pages import ARTIFACTS, CHROMIUM, click_frame, open_page, upload_video
from media_clips import pattern_frame, write_clip
from sam2_plus import service
from sam2_plus.media.rle import decode_rle

H, W = 64, 96
TIMEOUT = 120_000  # ms, on a busy 2-core machine

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian Chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")
wait_text = partial(browser_pages.wait_text, timeout=TIMEOUT)  # this file's wait


def shot(page, what: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"29-appimage-{what}.png"), full_page=True)


class Clicks(QuickImagePredictor):
    """QuickImagePredictor keeping each decoded click (model pixels) in `seen`."""

    seen: list = []

    def decode(self, coords, labels, boxes=None, mask_input=None, multimask_output=True):
        Clicks.seen.append((coords.clone(), labels.clone(), self.size))
        return super().decode(coords, labels, boxes, mask_input, multimask_output)


class Recording(QuickPredictor):
    def image_predictor(self):
        return Clicks()


def expected_candidates(image: Path):
    """The candidates the page computed for the last click, recomputed here the same way (the preview's code on
    the same image, click and stand-in)."""
    from sam2_plus.app.preview import preview_with_features

    coords, labels, (height, width) = Clicks.seen[-1]
    x, y = (coords[0, 0] / QuickImagePredictor.image_size * torch_size(width, height)).tolist()
    document = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[x, y]]}]}]}
    request = service.prepare_request(image, json.dumps(document), model="sam2++")
    return preview_with_features(request, models=StandInModels(Recording())).candidates


def open_image(page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#image-input").click()
    chooser.value.set_files(str(path))


def torch_size(width: int, height: int):
    import torch

    return torch.tensor([width, height], dtype=torch.float32)


def test_an_image_click_three_candidates_another_picked_and_its_cutout_downloaded(app_server, server_models,
                                                                                  tmp_path):
    server_models.use(Recording())
    image = tmp_path / "photo.png"
    Image.fromarray(pattern_frame(5, H, W)).save(image)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with open_page(app_server) as page:
        open_image(page, broken)  # a precise message, and the page goes on
        wait_text(page, "#status", "The image cannot be used: broken.png")
        open_image(page, image)
        wait_text(page, "#status", f"Image {W}x{H}")
        sync_api.expect(page.get_by_role("button", name="Segment", exact=True)).to_be_enabled()
        click_frame(page, 0.4, 0.5)
        wait_text(page, "#status", "Preview of object 1 on frame 0")
        thumbnails = page.locator("#candidates button.thumbnail-item")
        sync_api.expect(thumbnails).to_have_count(3, timeout=TIMEOUT)
        captions = page.locator("#candidates").inner_text()
        assert "1: IoU 0.90 (the clicks' own) ✓ in use" in captions and "2: IoU 0.80" in captions, captions
        shot(page, "image-candidates")

        thumbnails.nth(1).click()
        wait_text(page, "#status", "Preview of object 1 on frame 0")
        wait_text(page, "#candidates", "2: IoU 0.80 ✓ in use")
        shot(page, "image-picked")

        page.get_by_role("button", name="Segment", exact=True).click()
        wait_text(page, "#track-progress", "Done: 1 of 1 object(s) segmented on the image.")
        link = page.locator('#downloads a[download="obj_1.png"]')
        with page.expect_download() as download:
            link.click()
        cutout = np.asarray(Image.open(download.value.path()))
        shot(page, "image-segmented")

    picked = expected_candidates(image)
    assert picked.masks.shape == (3, H, W)
    assert cutout.shape == (H, W, 4), cutout.shape  # RGBA
    np.testing.assert_array_equal(cutout[..., 3] > 0, picked.masks[1])
    assert not np.array_equal(picked.masks[1], picked.masks[0])
    np.testing.assert_array_equal(cutout[..., :3][picked.masks[1]], pattern_frame(5, H, W)[picked.masks[1]])


class Failing:
    def find(self, image, backbone=None, frame_idx=None):
        raise RuntimeError("out of luck")


class SquareFinder:
    """The Find panel's finder: the given squares (x, y, side, score) on any frame."""

    def __init__(self, squares):
        self.squares = squares

    def find(self, image, backbone=None, frame_idx=None):
        from sam2_plus.discovery.found import Found

        found = []
        for x, y, side, score in self.squares:
            mask = np.zeros(image.shape[:2], bool)
            mask[y:y + side, x:x + side] = True
            found.append(Found(mask, score))
        return found


def test_a_video_frame_find_objects_two_proposals_picked_then_tracked(app_server, server_models, tmp_path):
    squares = [(4, 4, 20, 0.9), (52, 36, 24, 0.85), (30, 40, 12, 0.8)]  # x, y, side, predicted IoU
    server_models.use(QuickPredictor())
    server_models.use_finder(Failing())
    frames = 4
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(frames)], fps=10)
    with open_page(app_server) as page:
        upload_video(page, clip)
        wait_text(page, "#status", f"{frames} frames")
        page.locator("#frame-slider input[type=number]").fill("1")
        page.locator("#frame-slider input[type=number]").press("Enter")
        page.get_by_role("button", name="Find objects", exact=True).click()  # the model fails: said, page usable
        wait_text(page, "#status", "Find objects failed (RuntimeError: out of luck)")
        server_models.use_finder(SquareFinder(squares))
        page.get_by_role("button", name="Find objects", exact=True).click()
        wait_text(page, "#status", "Found 3 object(s) on frame 1 (normal)")
        sync_api.expect(page.get_by_role("button", name="Add all", exact=True)).to_be_visible()
        shot(page, "video-proposals")

        # the largest first: 1 is the 24 px square, 2 the 20 px one
        click_frame(page, (52 + 12) / W, (36 + 12) / H)
        wait_text(page, "#status", "Preview of object 1 on frame 1")
        click_frame(page, (4 + 10) / W, (4 + 10) / H)
        wait_text(page, "#status", "Preview of object 2 on frame 1")
        listed = page.locator("#objects-list").inner_text()
        assert "object 1" in listed and "object 2" in listed and "frame 1" in listed, listed
        shot(page, "video-two-picked")

        page.get_by_role("button", name="Track", exact=True).click()
        wait_text(page, "#track-progress", f"Done: {frames} frames tracked.")
        links = page.locator("#downloads a[href]")
        href = next(links.nth(i).get_attribute("href") for i in range(links.count())
                    if "sam2plus_results.json" in links.nth(i).get_attribute("href"))
        results = json.loads(page.request.get(href).body())
        shot(page, "video-tracked")

    on_frame = {o["id"]: decode_rle(o["mask"]) for o in next(f for f in results["frames"] if f["frame"] == 1)["objects"]}
    assert sorted(on_frame) == [1, 2]
    for obj_id, (x, y, side, _) in ((1, squares[1]), (2, squares[0])):
        expected = np.zeros((H, W), bool)
        expected[y:y + side, x:x + side] = True
        np.testing.assert_array_equal(on_frame[obj_id], expected)
