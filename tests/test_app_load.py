"""Several users at once, through gradio_client against the app launched in-process on 127.0.0.1: four
sessions track at the same time and each gets its own results; the queue refuses what exceeds its maximum
size; no job folder outlives its call."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from app_fakes import QuickPredictor, StandInModels, launch_app, wait_for
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from media_clips import pattern_frame, write_clip

from micro_model import MICRO
from sam2_plus.app import jobs
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.decode import probe
from sam2_plus.media.export import read_results_json
from sam2_plus.media.rle import encode_rle

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")
SESSIONS = 4
HEARTBEAT = 0.5  # seconds; Gradio notices a client that went away within about this




def job_dirs(app_tmp: Path) -> list[Path]:
    folder = app_tmp / "sam2plus-app" / "api"
    return sorted(folder.iterdir()) if folder.is_dir() else []


class RunningJobs:
    """Counts the tracking jobs running at the same time (wraps the service's run_tracking). Each job waits (up to
    a minute) until `together` jobs run, so that jobs the app lets run at once do overlap, however fast the model;
    jobs the app ran one after another would each wait the minute out, and `most` would stay 1."""

    def __init__(self, run_tracking, together: int):
        self.run_tracking, self.running, self.most, self.together = run_tracking, 0, 0, together
        self.changed = threading.Condition()

    def __call__(self, *args, **kwargs):
        with self.changed:
            self.running += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.most >= self.together, timeout=60)
        try:
            return self.run_tracking(*args, **kwargs)
        finally:
            with self.changed:
                self.running -= 1


def waiting_line(job) -> str:
    units = job.status().progress_data or []
    return units[-1].desc or "" if units else ""


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_four_sessions_track_at_once_with_their_own_results(tmp_path, monkeypatch):
    """The micro model (seeded), 2-frame clips: each client has its own video size, object id and mask (the model
    returns a mask prompt as that frame's result, as SAM 2.1 does), so a result given to the wrong client would
    show. No job folder outlives its call."""
    app_tmp = tmp_path / "app-tmp"
    running = RunningJobs(jobs.run_tracking, SESSIONS)
    monkeypatch.setattr(jobs, "run_tracking", running)
    sizes = [(48, 64), (64, 48), (56, 72), (40, 80)]
    requests = []
    for n, (height, width) in enumerate(sizes):
        clip = write_clip(tmp_path / f"clip{n}.mp4", [pattern_frame(i + n, height, width) for i in range(2)])
        mask = np.zeros((height, width), bool)
        mask[4 + 6 * n: 20 + 6 * n, 8 + 5 * n: 30 + 5 * n] = True
        prompts = {"objects": [{"id": 10 + n, "task": "mask", "prompts": [{"frame": 0, "mask": encode_rle(mask)}]}]}
        requests.append((clip, prompts, mask))

    limits = AppLimits(gpu_concurrency=SESSIONS)
    with pytest.MonkeyPatch.context() as patch, launch_app(limits, patch, app_tmp, heartbeat=HEARTBEAT) as url:
        clients = [Client(url, verbose=False) for _ in range(SESSIONS)]
        submitted = [client.submit(handle_file(str(clip)), json.dumps(prompts), json.dumps({"model": MICRO}),
                                   api_name="/track") for client, (clip, prompts, _) in zip(clients, requests)]
        outputs = [job.result(timeout=600) for job in submitted]
        assert running.most == SESSIONS  # they did track at the same time

        for n, ((overlay, _, results_json), (clip, prompts, mask)) in enumerate(zip(outputs, requests)):
            header, results = read_results_json(results_json)
            height, width = mask.shape
            assert (header["video"]["width"], header["video"]["height"]) == (width, height)
            assert header["objects"] == [{"id": 10 + n, "task": "mask"}]
            assert [(r.frame_idx, r.obj_ids) for r in results] == [(0, (10 + n,)), (1, (10 + n,))]
            assert iou(results[0].masks[0], mask) > 0.9
            assert (probe(overlay).width, probe(overlay).height, probe(overlay).num_frames) == (width, height, 2)

        assert not job_dirs(app_tmp)  # each call's folder went with it: the results served are Gradio's copies
        for client in clients:
            client.close()


def test_the_queue_refuses_what_exceeds_its_maximum_size(tmp_path):
    """One GPU job at a time and one waiting: the waiting one says so, a third request is refused at once with
    the app's "Queue is full" (its checks pass first, so the GPU slots count the waiting jobs, not Gradio's
    queue); the first two complete, and once the queue has room the app serves again."""
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, 32, 48) for i in range(3)])
    prompts = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [4, 4, 20, 20]}]}]})
    entered, release = threading.Event(), threading.Event()

    def hold_first_frame(frame_idx: int) -> None:
        entered.set()
        assert release.wait(120)

    predictor = QuickPredictor(on_frame=hold_first_frame)
    limits = AppLimits(queue_size=1, gpu_concurrency=1)
    with pytest.MonkeyPatch.context() as patch, \
            launch_app(limits, patch, tmp_path / "app-tmp", models=StandInModels(predictor)) as url:
        clients = [Client(url, verbose=False) for _ in range(3)]
        track = [lambda client=client: client.submit(handle_file(str(clip)), prompts, "{}", api_name="/track")
                 for client in clients]
        first = track[0]()
        assert entered.wait(60)  # the first job is tracking
        second = track[1]()
        assert wait_for(lambda: waiting_line(second) == "Waiting for the GPU (next in line)…")
        with pytest.raises(AppError, match="Queue is full"):
            track[2]().result(timeout=60)

        release.set()
        for job in (first, second):
            _, _, results_json = job.result(timeout=60)
            assert [r.frame_idx for r in read_results_json(results_json)[1]] == [0, 1, 2]
        _, _, results_json = track[2]().result(timeout=60)
        assert [r.frame_idx for r in read_results_json(results_json)[1]] == [0, 1, 2]
        for client in clients:
            client.close()
