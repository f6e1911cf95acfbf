"""Soak (issue 16, item 6): 30 small jobs one after another through /track (gradio_client against the app on
127.0.0.1, the quick stand-in predictor), with the server process's resident memory and open file handles
recorded after each job: after a warm-up both stay within stated bounds. The app runs in this process, so
these are this process's numbers (/proc/self), client included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from app_fakes import QuickPredictor
from gradio_client import Client, handle_file
from media_clips import pattern_frame, write_clip

from sam2_plus.media.export import read_results_json

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")
JOBS = 30
WARM_UP = 5  # jobs before the baseline: first imports, Gradio's caches, the encoders
MAX_RSS_GROWTH_MB = 16.0  # over the 25 jobs after the warm-up (measured: under 1 MB)
MAX_FD_GROWTH = 4
PROMPTS = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [4, 4, 20, 20]}]},
                                  {"id": 2, "task": "box", "prompts": [{"frame": 1, "box": [20, 8, 40, 28]}]}]})


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_thirty_jobs_leave_memory_and_file_handles_flat(app_server, server_models, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, 48, 64) for i in range(4)])
    server_models.use(QuickPredictor())
    samples = []
    client = Client(app_server, verbose=False)
    try:
        for job in range(JOBS):
            _, _, results_json = client.predict(handle_file(str(clip)), PROMPTS, "{}", api_name="/track")
            assert [r.frame_idx for r in read_results_json(results_json)[1]] == [0, 1, 2, 3]
            samples.append((rss_mb(), open_files()))
    finally:
        client.close()
    print("job  RSS MB  open fds")
    for job, (rss, fds) in enumerate(samples, 1):
        print(f"{job:3d}  {rss:6.1f}  {fds:8d}")
    base_rss, base_fds = samples[WARM_UP - 1]
    rss_growth = max(rss for rss, _ in samples[WARM_UP:]) - base_rss
    fd_growth = max(fds for _, fds in samples[WARM_UP:]) - base_fds
    print(f"after {WARM_UP} jobs of warm-up: RSS grew at most {rss_growth:.1f} MB (bound {MAX_RSS_GROWTH_MB}), "
          f"open files at most {fd_growth} (bound {MAX_FD_GROWTH})")
    assert rss_growth < MAX_RSS_GROWTH_MB
    assert fd_growth <= MAX_FD_GROWTH
