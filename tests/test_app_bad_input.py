"""Bad media and bad prompts through the public API (/track) of the app launched in-process on 127.0.0.1, with
its limits set by the environment variables it reads. Each request gets a gr.Error with a precise message,
and the app then serves a valid request. Paths inside the prompts or options JSON are never opened.
(The prompts parser and the video probe themselves are tested in test_prompts*.py and test_media_*.py.)"""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from app_fakes import QuickPredictor, StandInModels, launch_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from media_clips import pattern_frame, write_clip
from PIL import Image

from sam2_plus.app.settings import AppLimits
from sam2_plus.media.export import read_results_json

H, W, T = 48, 64, 6
ENV_LIMITS = {"SAM2PLUS_MAX_SIDE": "128", "SAM2PLUS_MAX_SECONDS": "2", "SAM2PLUS_MAX_FRAMES": "25",
              "SAM2PLUS_MAX_UPLOAD_MB": "0.03"}
BOX = {"objects": [{"id": 7, "task": "box", "prompts": [{"frame": 1, "box": [8, 8, 40, 30]}]}]}
pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-media")
    good = write_clip(folder / "good.mp4", [pattern_frame(i, H, W) for i in range(T)], fps=10)
    zero = folder / "zero.mp4"
    zero.write_bytes(b"")
    text = folder / "text.mp4"
    text.write_text("This is a text file renamed to .mp4.\n" * 10)
    fast_start = write_clip(folder / "fast.mp4", [pattern_frame(i, H, W) for i in range(20)],
                            options={"movflags": "faststart"})  # the index first, so the frame data is cut
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(fast_start.read_bytes()[: fast_start.stat().st_size * 6 // 10])
    noise = np.random.default_rng(0).integers(0, 256, (T, 120, 120, 3), dtype=np.uint8)
    return {
        "good": good, "zero": zero, "text": text, "truncated": truncated,
        "wide": write_clip(folder / "wide.mp4", [pattern_frame(i, 96, 160) for i in range(T)]),
        "long": write_clip(folder / "long.mp4", [pattern_frame(i % 64, 32, 32) for i in range(24)], fps=8),
        "many": write_clip(folder / "many.mp4", [pattern_frame(i, 32, 32) for i in range(30)], fps=20),
        "big": write_clip(folder / "big.mp4", list(noise), options={"crf": "0"}),
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV_LIMITS.items():
            patch.setenv(name, value)
        with launch_app(AppLimits.from_env(), patch, tmp_path_factory.mktemp("app-tmp"),
                        models=StandInModels(QuickPredictor())) as url:
            client = Client(url, verbose=False)
            yield client
            client.close()


def track(client: Client, video: Path, prompts, options=None):
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return client.predict(handle_file(str(video)), text, json.dumps(options or {"model": "sam2++"}),
                          api_name="/track")


def assert_serves(client: Client, media: dict[str, Path]) -> None:
    """A valid request after the bad one gets its full results."""
    _, _, results_json = track(client, media["good"], BOX)
    header, results = read_results_json(results_json)
    assert header["objects"] == [{"id": 7, "task": "box"}] and [r.frame_idx for r in results] == list(range(T))


@pytest.mark.parametrize("name, message", [
    ("zero", r"The video cannot be used: zero\.mp4: the file is empty \(0 bytes\)"),
    ("text", r"The video cannot be used: text\.mp4: not a readable video file"),
    ("truncated", r"The video cannot be used: truncated\.mp4: the video data is truncated or corrupt"),
    ("wide", r"the video is 160x96; this app takes up to 128 px on the longer side \(SAM2PLUS_MAX_SIDE\)"),
    ("long", r"the video is 3\.0 s long; this app takes videos up to 2 s \(SAM2PLUS_MAX_SECONDS\)"),
    ("many", r"the video has 30 frames; this app takes up to 25 \(SAM2PLUS_MAX_FRAMES\)"),
])
def test_bad_media_is_refused_with_a_precise_message(client, media, name, message):
    with pytest.raises(AppError, match=message):
        track(client, media[name], {"objects": [{"id": 1, "task": "box", "prompts": [
            {"frame": 0, "box": [1, 1, 9, 9]}]}]})
    assert_serves(client, media)


def test_an_upload_over_the_size_limit_is_refused(client, media):
    """gradio_client refuses it before sending; the server refuses a direct upload too (HTTP 413)."""
    size = media["big"].stat().st_size
    assert size > 0.03 * 2**20 > 10 * media["good"].stat().st_size
    with pytest.raises(ValueError, match=r"big\.mp4 exceeds the maximum file size of 31457 bytes"):
        track(client, media["big"], BOX)
    with open(media["big"], "rb") as file:
        response = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload", files={"files": ("big.mp4", file)})
    assert (response.status_code, response.text) == (413, "File size exceeded maximum allowed size of 31457 bytes.")
    assert_serves(client, media)


def mask_object(mask) -> dict:
    return {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "mask": mask}]}]}


@pytest.mark.parametrize("prompts, message", [
    ('{"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [1, 1, 9, 9]}]}',
     r"Invalid prompts: the prompts are not valid JSON"),
    ({"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": "1,1,9,9"}]}]},
     r"objects\[0\] \(id 1\), prompts\[0\]: 'box' must be \[x1, y1, x2, y2\] with four finite numbers"),
    ({"objects": [{"id": 1, "task": "polygon", "prompts": [{"frame": 0, "box": [1, 1, 9, 9]}]}]},
     r"objects\[0\].*'task' must be one of mask, box, point, got 'polygon'"),
    ({"objects": ["car"]}, r"objects\[0\]: must be an object with id, task and prompts, got"),
    ({"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [1, 1, 9, 9]}]},
                  {"id": 1, "task": "box", "prompts": [{"frame": 2, "box": [1, 1, 9, 9]}]}]},
     r"Invalid prompts: objects\[1\]: id 1 is already used by objects\[0\]"),
    ({"objects": [{"id": 1, "task": "box", "prompts": [{"frame": T, "box": [1, 1, 9, 9]}]}]},
     rf"frame {T} is out of range; the video has {T} frames \(0\.\.{T - 1}\)"),
    ({"objects": [{"id": 1, "task": "box", "prompts": [{"frame": -1, "box": [1, 1, 9, 9]}]}]},
     r"objects\[0\] \(id 1\), prompts\[0\]: 'frame' must be .*, got -1"),
], ids=["malformed-json", "mistyped-box", "unknown-task", "not-an-object", "duplicate-object", "frame-past-end",
        "negative-frame"])
def test_bad_prompts_are_refused_with_a_precise_message(client, media, prompts, message):
    with pytest.raises(AppError, match=message):
        track(client, media["good"], prompts)
    assert_serves(client, media)


@pytest.fixture
def opened(monkeypatch):
    """Every path the app tries to open during a test (builtins.open, os.open, PIL, PyAV, OpenCV, NumPy)."""
    paths: list[str] = []

    def recording(original):
        def wrapper(target, *args, **kwargs):
            if isinstance(target, (str, os.PathLike)):
                paths.append(os.path.abspath(os.fspath(target)))
            return original(target, *args, **kwargs)
        return wrapper

    import cv2

    for owner, name in ((builtins, "open"), (os, "open"), (Image, "open"), (av, "open"), (cv2, "imread"),
                        (np, "load")):
        monkeypatch.setattr(owner, name, recording(getattr(owner, name)))
    return paths


def test_file_paths_inside_the_json_are_never_opened(client, media, tmp_path, opened):
    """Paths to real, valid files (a mask PNG of the video's size, a prompts JSON file, a checkpoint) are refused
    as what they are, text, and never opened."""
    mask_png = tmp_path / "mask.png"
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(mask_png)
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(BOX))
    checkpoint = tmp_path / "sam2.1_hiera_tiny.pt"
    checkpoint.write_bytes(b"not really a checkpoint")
    secrets = {str(p.resolve()) for p in (mask_png, prompts_file, checkpoint)}
    opened.clear()

    cases = [
        (mask_object(str(mask_png)), {}, r"'mask' must be a COCO RLE object"),
        (mask_object(f"file://{mask_png}"), {}, r"'mask' must be a COCO RLE object"),
        (mask_object({"size": [H, W], "counts": str(mask_png)}), {}, r"mask is not valid COCO RLE"),
        (str(prompts_file), {}, r"must be a JSON object starting with '\{' \(pass the JSON text, not a file path\)"),
        (BOX, {"model": str(checkpoint)}, r"invalid options: unknown model '.*sam2\.1_hiera_tiny\.pt'"),
    ]
    for prompts, options, message in cases:
        with pytest.raises(AppError, match=message):
            track(client, media["good"], prompts, options or None)
    assert any(path.endswith("good.mp4") for path in opened)  # the recorder sees the app's opens (the video)
    assert not secrets & set(opened), sorted(secrets & set(opened))
    assert_serves(client, media)


def test_a_server_path_as_the_video_is_refused_before_the_app_runs(client, media, monkeypatch):
    """A /track call naming a file on the server (here a valid video outside Gradio's upload folder) instead of
    uploading one: Gradio refuses it while preparing the inputs (gradio/blocks.py Blocks.preprocess_data ->
    gradio/processing_utils.py _check_allowed raises InvalidPathError), so the app never runs and nothing is
    read. Gradio alone would answer `{"error": null}` (gradio/utils.py error_payload hides the text of any error
    but gr.Error); the app's Blocks says in a sentence what to do instead."""
    import app

    calls = []
    monkeypatch.setattr(app, "api_job", lambda *args, **kwargs: calls.append(args) or iter(()))
    video = {"path": str(media["good"]), "meta": {"_type": "gradio.FileData"}}
    started = httpx.post(f"{client.src}gradio_api/call/track", json={"data": [video, json.dumps(BOX), "{}"]})
    event_id = started.json()["event_id"]
    answer = httpx.get(f"{client.src}gradio_api/call/track/{event_id}", timeout=60).text
    event, data = answer.strip().split("\n", 1)
    assert event == "event: error", answer
    assert json.loads(data.removeprefix("data: "))["error"] == app.NOT_UPLOADED, answer
    assert not calls
    monkeypatch.undo()
    assert_serves(client, media)
