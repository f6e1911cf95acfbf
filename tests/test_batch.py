"""`python -m sam2_plus.batch` on the CPU with seeded stand-in weights (SAM 2.1 tiny): a manifest of four short
clips (a corrupt one, one prompted on a frame it does not have) gives two done and two failed lines with
precise messages; a re-run skips the finished videos; Ctrl-C and a killed run leave nothing half-written
taken as done; worker processes and a local Ray cluster give byte-identical results. The manifest and the
options are checked before anything runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.batch import cli, worker
from sam2_plus.batch.manifest import ManifestError, read_manifest
from sam2_plus.batch.store import STAGING_DIR, OutputStore, VideoRecord
from sam2_plus.media.export import read_results_json
from sam2_plus.track import main as track_main

REPO = Path(__file__).resolve().parents[1]
H, W = 64, 96
MODEL = ["--model", MICRO, "--checkpoint", "seeded", "--quiet"]
# SAM 2.1 tiny takes seconds a frame on a CPU: the time to kill a run in the middle of a video
SLOW_MODEL = ["--model", "sam2.1-tiny", "--checkpoint", "seeded", "--quiet"]
OUT_OF_RANGE = ("invalid prompts: objects[0] (id 1), prompts[0]: frame 5 is out of range; the video has 1 frames "
                "(0..0)")


def prompts(frame: int) -> dict:
    return {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": frame, "points": [[30, 20], [70, 40]],
                                                               "labels": [1, 0]}]}]}


def write_manifest(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """two.mp4 (2 frames, prompted on frame 1: tracked backward and forward), one.mp4 (1 frame), a corrupt
    MP4, and manifest.jsonl naming them with inline prompts, JSON text and a prompts file."""
    folder = tmp_path_factory.mktemp("batch-in")
    write_clip(folder / "two.mp4", [pattern_frame(i, H, W) for i in range(2)], fps=10)
    write_clip(folder / "one.mp4", [pattern_frame(7, H, W)], fps=10)
    (folder / "corrupt.mp4").write_bytes((folder / "two.mp4").read_bytes()[:300])
    (folder / "late.json").write_text(json.dumps(prompts(5)))
    lines = [
        {"video": "two.mp4", "prompts": prompts(1)},
        {"video": "corrupt.mp4", "prompts": prompts(0)},
        {"video": "one.mp4", "prompts": json.dumps(prompts(0)), "outputs": ["json"]},
        {"video": "one.mp4", "name": "late", "prompts": "late.json"},
    ]
    write_manifest(folder / "manifest.jsonl", lines)
    write_manifest(folder / "short.jsonl", lines[1:])  # no more than one frame to track
    return folder


def run_batch(*argv) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([str(a) for a in argv])
    return status, stdout.getvalue(), stderr.getvalue()


def summary(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("batch-out") / "out"
    status, stdout, _ = run_batch(inputs / "manifest.jsonl", "--out", out, "--device", "cpu", *MODEL)
    return status, stdout, out


def test_two_done_two_failed_with_precise_messages(local_run):
    status, stdout, out = local_run
    assert status == 1  # some failed
    lines = summary(out)
    assert [(r["name"], r["status"], r["frames"], r["objects"]) for r in lines] == [
        ("two", "done", 2, 1), ("corrupt", "failed", None, None), ("one", "done", 1, 1), ("late", "failed", None, None)]
    assert lines[1]["error"].startswith("corrupt.mp4: not a readable video file (")
    assert lines[3]["error"] == OUT_OF_RANGE
    assert lines[0]["error"] is None and lines[0]["seconds"] > 0
    assert files(out) == [STAGING_DIR, "one", "summary.jsonl", "two"] and not files(out / STAGING_DIR)
    assert files(out / "two") == ["overlay.mp4", "results.json", "results.zip"]
    assert files(out / "one") == ["results.json"]
    assert [r.frame_idx for r in read_results_json(out / "two" / "results.json")[1]] == [0, 1]
    assert "4 videos: 2 done, 2 failed; 3 frames tracked" in stdout


def test_a_videos_folder_is_what_the_cli_writes(local_run, inputs, tmp_path, capsys):
    _, _, out = local_run
    status = track_main([str(inputs / "one.mp4"), "--prompts", json.dumps(prompts(0)), "--out-dir", str(tmp_path),
                         "--device", "cpu", *MODEL])
    assert status == 0, capsys.readouterr().err
    assert files(tmp_path) == ["overlay.mp4", "results.json", "results.zip"]
    assert (tmp_path / "results.json").read_bytes() == (out / "one" / "results.json").read_bytes()


def test_a_rerun_skips_the_finished_videos(local_run, inputs, tmp_path, monkeypatch):
    _, _, first = local_run
    out = shutil.copytree(first, tmp_path / "out")
    tracked = []
    monkeypatch.setattr(worker, "run_tracking", lambda request, *a, **k: tracked.append(request.video))
    status, stdout, _ = run_batch(inputs / "manifest.jsonl", "--out", out, "--device", "cpu", *MODEL)
    assert status == 1 and tracked == []
    lines = summary(out)
    assert [(r["name"], r["status"], r["frames"]) for r in lines] == [
        ("two", "skipped", 2), ("corrupt", "failed", None), ("one", "skipped", 1), ("late", "failed", None)]
    assert lines[3]["error"] == OUT_OF_RANGE
    assert (out / "two" / "results.json").read_bytes() == (first / "two" / "results.json").read_bytes()
    assert "2 skipped, 2 failed" in stdout


def assert_same_results(out: Path, reference: Path, names: tuple[str, ...]) -> None:
    """The same summary lines (but for the time) and byte-identical result JSONs."""
    assert [(r["name"], r["status"], r["frames"], r["error"]) for r in summary(out)] == \
           [(r["name"], r["status"], r["frames"], r["error"]) for r in summary(reference) if r["name"] in names]
    for name in set(names) & {"two", "one"}:
        assert (out / name / "results.json").read_bytes() == (reference / name / "results.json").read_bytes()


def test_a_local_ray_cluster_gives_identical_results(local_run, inputs, ray_cluster, tmp_path):
    _, _, reference = local_run
    # Float results depend on the thread count (the order of parallel sums), so the Ray worker gets the
    # local worker's threads (Ray gives an actor as many threads as CPUs)
    status, stdout, _ = run_batch(inputs / "manifest.jsonl", "--out", tmp_path / "out", "--ray", "local",
                                  "--cpus-per-worker", torch.get_num_threads(), *MODEL)
    assert status == 1
    assert_same_results(tmp_path / "out", reference, ("two", "corrupt", "one", "late"))
    assert ray_cluster.is_initialized()  # the test's connection is left to the test


def test_worker_processes_give_identical_results(local_run, inputs, tmp_path):
    """Two worker processes on the CPU (the manifest's lines that track one frame at the most)."""
    _, _, reference = local_run
    status, _, _ = run_batch(inputs / "short.jsonl", "--out", tmp_path / "out", "--device", "cpu", "--workers", "2", *MODEL)
    assert status == 1
    assert_same_results(tmp_path / "out", reference, ("corrupt", "one", "late"))


def test_ctrl_c_finishes_the_frame_keeps_finished_videos_and_exits_130(inputs, tmp_path, monkeypatch):
    """Ctrl-C on two.mp4's first tracked frame: one.mp4 (finished before) is kept, two.mp4 is not."""
    real = worker.run_tracking

    def interrupted(request, outputs, progress=None, should_stop=None, models=None):
        def report(p):
            progress(p)
            if request.video.name == "two.mp4" and p.phase == "tracking" and p.frames_done:  # a tracked frame
                os.kill(os.getpid(), signal.SIGINT)
        return real(request, outputs, progress=report, should_stop=should_stop, models=models)

    monkeypatch.setattr(worker, "run_tracking", interrupted)
    manifest = write_manifest(tmp_path / "m.jsonl", [{"video": str(inputs / "one.mp4"), "prompts": prompts(0)},
                                                     {"video": str(inputs / "two.mp4"), "prompts": prompts(1)}])
    status, _, stderr = run_batch(manifest, "--out", tmp_path / "out", "--device", "cpu", *MODEL)
    assert status == 130 and "stopping after the current frame" in stderr
    assert [(r["name"], r["status"], r["frames"]) for r in summary(tmp_path / "out")] == [
        ("one", "done", 1), ("two", "stopped", 1)]
    assert files(tmp_path / "out") == [STAGING_DIR, "one", "summary.jsonl"]
    assert not files(tmp_path / "out" / STAGING_DIR)


def test_a_killed_run_resumes_without_duplicates(inputs, tmp_path):
    """SIGKILL while the second video is tracked; the re-run tracks only it, and the summary has a line each."""
    manifest = write_manifest(tmp_path / "m.jsonl", [{"video": str(inputs / "one.mp4"), "prompts": prompts(0)},
                                                     {"video": str(inputs / "two.mp4"), "prompts": prompts(0)}])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sam2_plus.batch", str(manifest), "--out", str(out), "--device", "cpu",
               *SLOW_MODEL]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not ((out / "one").is_dir() and list((out / STAGING_DIR).glob("two.*"))):
            assert process.poll() is None and time.monotonic() < deadline, "the batch ended before it was killed"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        process.kill()
        process.wait()
    assert not (out / "two").exists()  # killed mid-video: nothing published
    status, _, _ = run_batch(manifest, "--out", out, "--device", "cpu", *SLOW_MODEL)
    assert status == 0
    assert [(r["name"], r["status"], r["frames"]) for r in summary(out)] == [("one", "skipped", 1), ("two", "done", 2)]
    assert [r.frame_idx for r in read_results_json(out / "two" / "results.json")[1]] == [0, 1]
    assert files(out) == [STAGING_DIR, "one", "summary.jsonl", "two"] and not files(out / STAGING_DIR)


# --------------------------------------------------------------------------- checked before anything runs


def test_manifest_errors_name_every_bad_line(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join([
        '{"video": "a.mp4", "prompts": {"objects": []}}',
        '{"video": "a.mp4", "prompts": "p.json"',
        '["a.mp4"]',
        '{"video": "b.mp4", "prompts": "p.json", "fps": 3}',
        '{"video": "c.mp4"}',
        '{"video": "a.mp4", "prompts": "p.json"}',
        '{"video": "d.mp4", "prompts": "p.json", "outputs": ["json", "csv"]}',
        '{"video": "e.mp4", "prompts": "p.json", "name": "../up"}',
        '{"video": ".hidden.mp4", "prompts": "p.json"}',
        '{"video": "f.mp4", "prompts": "p.json", "max_frames": 0, "model": "sam2.1-tiny"}',
        '{"video": "g.mp4", "prompts": "p.json", "model": "sam3"}',
        '{"video": "h.mp4", "prompts": 7, "motion_aware": "yes"}',
    ]) + "\n")
    with pytest.raises(ManifestError) as caught:
        read_manifest(manifest)
    assert str(caught.value).splitlines()[1:] == [
        "line 2: not valid JSON (Expecting ',' delimiter at column 39)",
        'line 3: must be a JSON object like {"video": ..., "prompts": ...}',
        "line 4: unknown key 'fps'; the keys are video, prompts, name, model, motion_aware, outputs, max_frames, "
        "export_formats, find",
        "line 5: 'prompts' is missing (or give 'find' to find the objects)",
        "line 6: the folder name 'a' is already used by line 1; give this line a different 'name'",
        "line 7: unknown output 'csv'; choose from overlay, export, json",
        "line 8: 'name' is '../up', which cannot name the video's folder: it holds '/' or '\\'",
        "line 9: the video's file name gives '.hidden', which cannot name the video's folder: it starts with '.'; "
        "give a 'name'",
        "line 10: 'max_frames' must be a whole number of at least 1",
        "line 11: unknown model 'sam3'; choose one of sam2++, sam2.1-tiny, sam2.1-small, sam2.1-base-plus, "
        "sam2.1-large, edgetam",
        "line 12: 'prompts' must be the prompts JSON object or the path of a file holding it",
    ]


def test_a_manifest_error_exits_2_before_anything_runs(tmp_path):
    manifest = write_manifest(tmp_path / "m.jsonl", [{"video": "a.mp4"}])
    status, stdout, stderr = run_batch(manifest, "--out", tmp_path / "out", *MODEL)
    assert status == 2 and stdout == ""
    assert stderr.splitlines() == [f"error: manifest {manifest}:", "line 1: 'prompts' is missing (or give 'find' to find the objects)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--cpus-per-worker", "2"], "--cpus-per-worker goes with --ray"),
    (["--device", "nonsense"], "unknown device 'nonsense'"),
    (["--checkpoint", "/no/such/checkpoint.pt"], "checkpoint file not found: /no/such/checkpoint.pt"),
    (["--outputs", "json,csv"], "--outputs: unknown output 'csv'; choose from overlay, export, json"),
    (["--model", "sam3"], "--model: unknown model 'sam3'"),
    (["--ray", "local", "--device", "cpu"], "--device is for one machine"),
    (["--ray", "local", "--cpus-per-worker", "0"], "--cpus-per-worker must be more than 0, got 0"),
])
def test_unusable_options_exit_2(inputs, tmp_path, args, message):
    status, _, stderr = run_batch(inputs / "manifest.jsonl", "--out", tmp_path / "out", "--quiet", *args)
    assert status == 2 and message in stderr and stderr.startswith("error: ") and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_python_dash_m_runs_the_cli_with_its_status(inputs, tmp_path, monkeypatch, capsys):
    """`python -m sam2_plus.batch` (the package's __main__), here in this process."""
    monkeypatch.setattr(sys, "argv", ["sam2_plus.batch", str(inputs / "manifest.jsonl"), "--out", str(tmp_path / "out"),
                                      "--workers", "0"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("sam2_plus.batch", run_name="__main__")
    assert exited.value.code == 2 and "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_ray_without_ray_says_how_to_install_it(inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    status, _, stderr = run_batch(inputs / "manifest.jsonl", "--out", tmp_path / "out", "--ray", "local", *MODEL)
    assert status == 2
    assert stderr.strip() == "error: --ray needs Ray, which is not installed: pip install -r requirements-cluster.txt"
    assert not (tmp_path / "out").exists()


def test_the_summary_takes_the_last_whole_line_of_each_video(tmp_path):
    store = OutputStore(tmp_path)
    store.start_run()
    store.append_summary(VideoRecord("a", "a.mp4", "failed", error="boom"))
    store.append_summary(VideoRecord("a", "a.mp4", "done", frames=3, objects=1, seconds=1.5))
    with open(store.summary_path, "a") as file:
        file.write('{"name": "b", "video": "b.mp4", "sta')  # a line cut short by a kill
    assert store.read_summary() == {"a": VideoRecord("a", "a.mp4", "done", 3, 1, 1.5)}
