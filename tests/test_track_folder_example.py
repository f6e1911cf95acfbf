"""examples/track_folder.py (a folder of videos through the Space's /track with gradio_client) against the app
launched in-process on 127.0.0.1 with a quick stand-in predictor: it writes the layout of
`python -m sam2_plus.batch`, sends a request the full queue refused again, fails a video with a bad prompt with
the app's message, and skips finished videos when run again."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import pytest
from app_fakes import QuickPredictor, StandInModels, launch_app
from media_clips import pattern_frame, write_clip

from micro_model import MICRO
from sam2_plus.app.settings import AppLimits
from sam2_plus.batch.store import STAGING_DIR, SUMMARY_FILE, VideoRecord
from sam2_plus.media.export import read_results_json
from sam2_plus.track import OUTPUT_FILES

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "track_folder.py"
PROMPTS = {"objects": [{"id": 3, "task": "mask", "prompts": [{"frame": 0, "box": [4, 4, 20, 20]}]}]}


def load_example():
    spec = importlib.util.spec_from_file_location("track_folder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_layout_is_the_batchs():
    example = load_example()
    assert example.OUTPUT_FILES == OUTPUT_FILES
    assert (example.SUMMARY_FILE, example.STAGING_DIR) == (SUMMARY_FILE, STAGING_DIR)
    assert [f.name for f in fields(example.VideoRecord)] == [f.name for f in fields(VideoRecord)]


def test_retries_only_what_the_queue_refuses(monkeypatch):
    example = load_example()
    monkeypatch.setattr(example, "pause", lambda attempt: None)
    answers = [example.QueueError("Queue is full! Please try again."), example.TooManyRequestsError("429"),
               example.AppError("Queue is full: 1 job waiting for the GPU"), "files"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert example.call_with_retries(call, retries=3, name="clip") == "files" and not answers
    answers[:] = [example.AppError("Invalid prompts: no objects"), "files"]
    with pytest.raises(example.AppError, match="Invalid prompts"):  # bad input is not sent again
        example.call_with_retries(call, retries=3, name="clip")
    answers[:] = [example.QueueError("Queue is full! Please try again.")] * 2
    with pytest.raises(example.QueueError):
        example.call_with_retries(call, retries=1, name="clip")


def summary(out: Path) -> list[tuple]:
    lines = [json.loads(line) for line in (out / SUMMARY_FILE).read_text().splitlines()]
    return [(r["name"], r["status"], r["frames"], r["objects"]) for r in lines]


def test_a_folder_through_the_space(tmp_path, monkeypatch):
    """One GPU job at a time and one waiting, three videos sent at once: the third is refused until the first
    is let go, and then sent again."""
    example = load_example()
    videos = tmp_path / "videos"
    videos.mkdir()
    for n, name in enumerate(("a", "b", "c", "late")):
        write_clip(videos / f"{name}.mp4", [pattern_frame(n + i, 32, 48) for i in range(2)])
    (videos / "late.json").write_text(json.dumps({"objects": [{**PROMPTS["objects"][0], "prompts": [
        {"frame": 5, "box": [4, 4, 20, 20]}]}]}))
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))

    entered, release, retried = threading.Event(), threading.Event(), threading.Event()
    predictor = QuickPredictor(on_frame=lambda frame_idx: entered.is_set() or (entered.set(), release.wait(120)))
    monkeypatch.setattr(example, "pause", lambda attempt: (retried.set(), time.sleep(0.1)))
    out = tmp_path / "out"
    argv = [str(videos), "--prompts", str(tmp_path / "prompts.json"), "--out", str(out), "--concurrency", "3",
            "--model", MICRO]
    limits = AppLimits(queue_size=1, gpu_concurrency=1)
    with pytest.MonkeyPatch.context() as patch, \
            launch_app(limits, patch, tmp_path / "app-tmp", models=StandInModels(predictor)) as url:
        statuses = []
        run = threading.Thread(target=lambda: statuses.append(example.main(argv + ["--space", url])))
        run.start()
        try:
            assert entered.wait(60) and retried.wait(60)  # one tracking, one waiting, one refused
        finally:
            release.set()
            run.join(120)
        assert statuses == [1]
        assert summary(out) == [("a", "done", 2, 1), ("b", "done", 2, 1), ("c", "done", 2, 1),
                                ("late", "failed", None, None)]
        error = json.loads((out / SUMMARY_FILE).read_text().splitlines()[3])["error"]
        assert error == ("Invalid prompts: objects[0] (id 3), prompts[0]: frame 5 is out of range; the video has 2 "
                         "frames (0..1)")
        assert sorted(p.name for p in out.iterdir()) == [STAGING_DIR, "a", "b", "c", SUMMARY_FILE]
        assert sorted(p.name for p in (out / "a").iterdir()) == sorted(OUTPUT_FILES.values())
        assert [r.frame_idx for r in read_results_json(out / "a" / "results.json")[1]] == [0, 1]

        assert example.main(argv + ["--space", url]) == 1
        assert summary(out) == [("a", "skipped", 2, 1), ("b", "skipped", 2, 1), ("c", "skipped", 2, 1),
                                ("late", "failed", None, None)]
