"""A request is checked once, where it enters: one Track click (the browser session: session -> plan ->
jobs -> service) and one /track call (sam2_plus/app/api.py) parse the prompts once and probe the
video once, through the real code path with a stand-in predictor; below the entry the checked request is
carried as a value."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest
from app_fakes import QuickPredictor, StandInModels
from media_clips import pattern_frame, write_clip

from micro_model import MICRO
from sam2_plus import prompts
from sam2_plus.app import jobs
from sam2_plus.app.api import api_job
from sam2_plus.app.editing import BOX, POSITIVE
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.preview import preview_prompt
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.app.workdirs import SessionFiles
from sam2_plus.media import decode

H, W, T = 48, 64, 4
OPTIONS = TrackOptions(MICRO)


MODELS = StandInModels(QuickPredictor())


@pytest.fixture(autouse=True)
def stand_in(monkeypatch, tmp_path):
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    monkeypatch.setenv("SAM2PLUS_APP_TMP", str(tmp_path / "app-tmp"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("once") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)])


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """Counts the calls of prompts.parse_prompts and media.decode.probe, in every module that imported them."""
    counts = {"parse_prompts": 0, "probe": 0}
    for owner, name in ((prompts, "parse_prompts"), (decode, "probe")):
        original = getattr(owner, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("sam2_plus") and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counting)
    return counts


def on_zero_gpu(spec, models):
    """What `spaces.GPU(duration=job_gpu_seconds)` does with app.py's job function: it asks the duration with the
    job's own arguments, then runs the job (run_job, as app.gpu_job does) in a process of its own, which gets the
    spec pickled."""
    assert jobs.job_gpu_seconds(spec) > 0
    yield from jobs.run_job(pickle.loads(pickle.dumps(spec)), models)


def test_one_track_click_parses_the_prompts_once_and_probes_the_video_once(clip, calls):
    session = AppSession.open(clip, AppLimits(), models=MODELS)  # the upload is checked (probed) when it arrives
    session.click(POSITIVE, 1, 20, 20)
    session.add_object("second")
    session.click(BOX, 0, 5, 5)
    session.click(BOX, 0, 30, 40)
    calls.update(parse_prompts=0, probe=0)

    updates = list(session.tracking_job(OPTIONS, AppLimits(), on_zero_gpu))

    assert updates[-1].result.frames_done == T and updates[-1].result.failure is None
    assert calls == {"parse_prompts": 1, "probe": 1}
    session.close()


def test_a_preview_parses_its_prompt_once_and_uses_the_sessions_video_check(clip, calls):
    session = AppSession.open(clip, AppLimits(), models=MODELS)
    session.click(POSITIVE, 2, 20, 20)
    calls.update(parse_prompts=0, probe=0)

    preview = preview_prompt(session.preview_request(1, 2, OPTIONS), session.models)

    assert (preview.frame_idx, preview.obj_ids) == (2, (1,))
    assert calls == {"parse_prompts": 1, "probe": 0}
    session.close()


def test_one_track_call_parses_the_prompts_once_and_probes_the_video_once(clip, calls, tmp_path):
    document = {"objects": [{"id": 7, "task": "mask", "prompts": [{"frame": 1, "points": [[20, 20]]}]},
                            {"id": 8, "task": "mask", "prompts": [{"frame": 0, "box": [5, 5, 30, 40]}]}]}

    updates = list(api_job(str(clip), json.dumps(document), json.dumps(OPTIONS.to_json()), AppLimits(),
                           SessionFiles(), "client", on_zero_gpu, keep=lambda path: shutil.copy(path, tmp_path),
                           models=MODELS))

    assert updates[-1].result.frames_done == T and updates[-1].result.failure is None
    assert calls == {"parse_prompts": 1, "probe": 1}
