"""ZeroGPU's contract, emulated on the CPU (sam2_plus/app/hardware.py, tests/zero_gpu_emulation.py): the offered
models are built in the main process before the server starts, and every GPU call (a preview, a tracking job)
runs in a process forked from it, as `spaces` runs a `@spaces.GPU` function in a forked worker. The checkpoint is
read once in all, and the workers do not hang on CPU threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from media_clips import pattern_frame, write_clip
from sam2_plus import build_model, postprocess
from sam2_plus.provider import ModelCache
from sam2_plus.app import hardware

MODEL = "sam2.1-tiny"
EMULATION = REPO / "tests" / "zero_gpu_emulation.py"


def _emulate(tmp_path: Path, *flags: str) -> dict:
    """tests/zero_gpu_emulation.py in a fresh process: the app's main process on ZeroGPU and its forked workers."""
    video = tmp_path / "clip.mp4"
    write_clip(video, [pattern_frame(i, 48, 64) for i in range(3)])
    checkpoint = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_model(MODEL, checkpoint="seeded:0", device="cpu").state_dict()}, checkpoint)
    reads = tmp_path / "reads.log"
    reads.touch()
    env = {**os.environ, "SAM2PLUS_WEIGHTS": str(checkpoint), "SAM2PLUS_APP_TMP": str(tmp_path / "app")}
    env.pop(hardware.ZERO_GPU_ENV, None)  # `spaces` itself stays off: it would need ZeroGPU's scheduler
    done = subprocess.run([sys.executable, str(EMULATION), str(video), str(tmp_path / "job"), str(reads), *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_previews_and_a_job_read_the_checkpoint_once(tmp_path):
    outcome = _emulate(tmp_path)
    assert outcome["built"] == [MODEL]
    assert outcome["calls"] == {"preview 1": ["ok", 0], "preview 2": ["ok", 0], "tracking": ["ok", 3]}
    assert outcome["reads"] == [str(outcome["main_pid"])]  # once, in the main process, before any call


def test_a_main_process_that_ran_cpu_threads_hangs_its_workers(tmp_path):
    """What keeping the main process on one CPU thread prevents (so the emulation above can fail)."""
    if torch.get_num_threads() < 2:
        pytest.skip("needs at least 2 CPU threads")
    outcome = _emulate(tmp_path, "--unsafe")
    assert outcome["calls"]["preview 1"][0] == "hung"


@pytest.fixture
def fresh_cache() -> ModelCache:
    return ModelCache(capacity=2)


def test_off_zero_gpu_nothing_is_built_at_start_and_no_offered_model_is_evicted(fresh_cache, monkeypatch):
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    started = hardware.prepare_models(["sam2++", "sam2.1-tiny", "sam2.1-small"], zero_gpu=False, cache=fresh_cache)
    assert started == hardware.ModelsAtStart() and fresh_cache.keys() == []
    assert fresh_cache.capacity == 3  # each is built on first use, once


def test_a_model_without_weights_is_reported_and_left_to_its_first_call(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", str(tmp_path / "missing.pt"))
    monkeypatch.setattr(hardware, "_stay_fork_safe", lambda: None)  # this test process keeps its threads
    started = hardware.prepare_models([MODEL], zero_gpu=True, cache=fresh_cache)
    assert started.built == () and "checkpoint file not found" in started.failed[MODEL]


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("True", True), ("", False),
                                                 ("false", False), ("0", False)])
def test_zero_gpu_is_detected_as_spaces_detects_it(value, expected):
    assert hardware.on_zero_gpu({hardware.ZERO_GPU_ENV: value}) is expected


def test_start_up_begins_the_kernel_build_without_waiting(monkeypatch):
    started = []
    monkeypatch.setattr(postprocess, "start_cuda_extension_build", lambda: started.append(True))
    hardware.prepare_models([], zero_gpu=False)
    assert started == [True]
