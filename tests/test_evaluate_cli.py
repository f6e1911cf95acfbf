"""`python -m sam2_plus.evaluate` end to end on the tiny datasets of tests/eval_datasets.py, tracked by the micro
model with seeded weights on the CPU: every layout tracks, writes its predictions in the dataset's format and
scores them; --score-only on those predictions gives the same scores; an interrupted run resumes without
tracking the finished sequences again; a local Ray cluster gives identical scores; the ground truth given as
the predictions scores 1 (J&F, AUC, AJ). Unusable input ends with status 2 before anything runs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import runpy
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eval_datasets import make_dataset
from micro_model import MICRO
from sam2_plus.batch import worker
from sam2_plus.evaluate import cli
from sam2_plus.evaluate.datasets import read_dataset
from sam2_plus.network import build_model

MODEL = ["--model", MICRO, "--checkpoint", "seeded", "--quiet"]
LOCAL = ["--device", "cpu", *MODEL]
# one sequence a layout keeps the fast tests fast; DAVIS's has two objects (MOTS) and TAG's attributes
ONE_SEQUENCE = {"davis": "seq1", "lasot": "shape-1", "got10k": "GOT-10k_Val_000003", "tag": "00000",
                "tapvid": "seq2"}
MAIN_METRIC = {"davis": "j_and_f", "lasot": "auc", "got10k": "auc", "tag": "auc", "tapvid": "average_jaccard"}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table's rows on one line each


def evaluate(*argv) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([str(a) for a in argv])
    return status, stdout.getvalue(), stderr.getvalue()


def scores_of(out: Path) -> dict:
    """scores.json without its header (the date, the device and the model's name differ between runs)."""
    document = json.loads((out / "scores.json").read_text())
    document.pop("header")
    return document


def summary(out: Path) -> list[tuple[str, str]]:
    lines = (out / "tracking" / "summary.jsonl").read_text().splitlines()
    return [(record["name"], record["status"]) for record in map(json.loads, lines)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("eval-data")
    return {layout: make_dataset(base, layout).root for layout in ONE_SEQUENCE}


@pytest.fixture(scope="module")
def lasot_run(roots, tmp_path_factory) -> Path:
    """LaSOT's first two sequences, tracked in one run."""
    out = tmp_path_factory.mktemp("eval-lasot") / "out"
    status, _, stderr = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1,shape-2",
                                 *LOCAL)
    assert status == 0, stderr
    return out


# --------------------------------------------------------------------------- each layout


@pytest.mark.parametrize("layout", list(ONE_SEQUENCE))
def test_each_layout_tracks_writes_its_format_and_scores(layout, roots, tmp_path):
    out = tmp_path / "out"
    name = ONE_SEQUENCE[layout]
    status, stdout, stderr = evaluate(roots[layout], "--layout", layout, "--out", out, "--videos", name, *LOCAL)
    assert status == 0, stderr
    assert summary(out) == [(name, "done")]
    predictions = {"davis": f"{name}/00009.png", "lasot": f"{name}.txt", "got10k": f"{name}/{name}_001.txt",
                   "tag": f"{name}.txt", "tapvid": f"{name}.npz"}[layout]
    assert (out / "predictions" / predictions).is_file()
    scores = scores_of(out)
    assert scores["layout"] == layout and scores["complete"]
    [sequence] = scores["sequences"]
    assert sequence["name"] == name and sequence["error"] is None
    main = MAIN_METRIC[layout]
    assert 0 <= scores["overall"][main] <= 1 and scores["overall"][main] == sequence["values"][main]
    assert len(sequence["objects"]) == (2 if layout in ("davis", "tapvid") else 1)
    assert (sequence["mot"] is not None) == (layout == "davis")  # several objects a frame: MOTS
    plots = {p.name for p in (out / "plots").iterdir()}
    assert plots == {"per_sequence.png"} | ({"success.png", "precision.png"} if scores["curves"] else set()) | \
           ({"attributes.png"} if scores["attributes"] else set())
    assert (scores["curves"] is not None) == (layout in ("lasot", "got10k", "tag"))
    assert "overall (1 sequences)" in stdout and f"model: {MICRO}" in stdout
    assert f"wrote {out / 'scores.json'}" in stdout
    assert "UNTRAINED stand-in weights" in stderr

    # the same predictions scored on their own
    again = tmp_path / "again"
    status, stdout, _ = evaluate(roots[layout], "--layout", layout, "--out", again, "--videos", name,
                                 "--score-only", out / "predictions", "--quiet")
    assert status == 0 and scores_of(again) == scores
    assert not (again / "tracking").exists()
    assert json.loads((again / "scores.json").read_text())["header"]["checkpoint"] is None


def test_the_header_names_model_weights_precision_and_device(lasot_run):
    header = json.loads((lasot_run / "scores.json").read_text())["header"]
    assert (header["model"], header["precision"], header["device"]) == (MICRO, "float32", "cpu")
    assert header["checkpoint"].startswith("UNTRAINED stand-in weights (seeded:0)")
    assert header["checkpoint_sha256"] is None and header["layout"] == "lasot"


def test_a_checkpoint_file_is_hashed_in_the_header(roots, tmp_path):
    checkpoint = tmp_path / "micro.pt"  # the seeded weights saved as a checkpoint file
    torch.save({"model": build_model(MICRO, "seeded", "cpu").state_dict()}, checkpoint)
    out = tmp_path / "out"
    status, _, stderr = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1",
                                 "--model", MICRO, "--checkpoint", checkpoint, "--device", "cpu", "--quiet")
    assert status == 0, stderr
    header = json.loads((out / "scores.json").read_text())["header"]
    assert header["checkpoint"] == str(checkpoint)
    assert header["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- resuming


def test_an_interrupted_run_resumes_without_tracking_finished_sequences(roots, lasot_run, tmp_path, monkeypatch):
    """Ctrl-C while shape-2 is tracked: shape-1 is kept; the next run tracks shape-2 only and scores as one run."""
    real = worker.run_tracking
    tracked = []

    def interrupted(request, outputs, progress=None, should_stop=None, models=None):
        tracked.append(request.video.parent.name)

        def report(p):
            progress(p)
            if tracked[-1] == "shape-2" and p.phase == "tracking" and p.frames_done:
                os.kill(os.getpid(), signal.SIGINT)
        return real(request, outputs, progress=report, should_stop=should_stop, models=models)

    monkeypatch.setattr(worker, "run_tracking", interrupted)
    out = tmp_path / "out"
    args = [roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1,shape-2", *LOCAL]
    status, _, stderr = evaluate(*args)
    assert status == 130 and "run the same command to go on" in stderr
    assert summary(out) == [("shape-1", "done"), ("shape-2", "stopped")] and tracked == ["shape-1", "shape-2"]
    assert not (out / "scores.json").exists()

    def recorded(request, *args, **kwargs):
        tracked.append(request.video.parent.name)
        return real(request, *args, **kwargs)

    monkeypatch.setattr(worker, "run_tracking", recorded)
    tracked.clear()
    status, _, stderr = evaluate(*args)
    assert status == 0, stderr
    assert tracked == ["shape-2"] and summary(out) == [("shape-1", "skipped"), ("shape-2", "done")]
    assert scores_of(out) == scores_of(lasot_run)


def test_a_finished_run_tracks_nothing_again(roots, lasot_run, tmp_path, monkeypatch):
    out = shutil.copytree(lasot_run, tmp_path / "out")
    monkeypatch.setattr(worker, "run_tracking", lambda *a, **k: pytest.fail("tracked again"))
    status, _, _ = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1,shape-2", *LOCAL)
    assert status == 0 and summary(out) == [("shape-1", "skipped"), ("shape-2", "skipped")]
    assert scores_of(out) == scores_of(lasot_run)


def test_another_model_or_weights_cannot_mix_into_a_folder(roots, lasot_run, tmp_path):
    out = shutil.copytree(lasot_run, tmp_path / "out")
    status, _, stderr = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1",
                                 "--model", MICRO, "--checkpoint", "seeded:7", "--device", "cpu", "--quiet")
    assert status == 2
    assert f"holds tracking by {MICRO} with weights seeded:0, not {MICRO} with seeded:7" in stderr


def test_a_failed_sequence_is_reported_and_exits_1(roots, tmp_path, monkeypatch):
    real = worker.run_tracking

    def failing(request, *a, **k):
        if request.video.parent.name == "shape-2":
            raise OSError("the disk went away")
        return real(request, *a, **k)

    monkeypatch.setattr(worker, "run_tracking", failing)
    out = tmp_path / "out"
    status, stdout, _ = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1,shape-2",
                                 *LOCAL)
    assert status == 1
    scores = scores_of(out)
    assert not scores["complete"] and [s["error"] for s in scores["sequences"]] == [None, "the disk went away"]
    assert scores["overall"] == scores["sequences"][0]["values"]
    assert "1 of 2 sequences not scored" in stdout


@pytest.mark.usefixtures("ray_cluster")
def test_a_local_ray_cluster_gives_identical_scores(roots, lasot_run, tmp_path):
    out = tmp_path / "out"
    # the Ray actor gets this process's threads: float sums depend on the thread count
    status, _, stderr = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", "shape-1,shape-2",
                                 "--ray", "local", "--cpus-per-worker", torch.get_num_threads(), *MODEL)
    assert status == 0, stderr
    assert scores_of(out) == scores_of(lasot_run)
    assert json.loads((out / "scores.json").read_text())["header"]["device"].startswith("Ray (local)")


# --------------------------------------------------------------------------- ground truth as the predictions


def write_truth_as_predictions(layout: str, root: Path, folder: Path) -> Path:
    """The dataset's own ground-truth files laid out as a tracker's predictions."""
    if layout == "davis":
        return root / "Annotations" / "480p"
    folder.mkdir(parents=True)
    for seq in read_dataset(root, layout, cache=folder.parent / "frames"):
        if layout == "got10k":
            (folder / seq.name).mkdir()
            shutil.copy(root / "val" / seq.name / "groundtruth.txt", folder / seq.name / f"{seq.name}_001.txt")
        elif layout == "lasot":
            shutil.copy(root / "shape" / seq.name / "groundtruth.txt", folder / f"{seq.name}.txt")
        else:
            np.savez(folder / f"{seq.name}.npz", trajs_2d=seq.truth.points, visibs=~seq.truth.occluded)
    return folder


@pytest.mark.parametrize("layout", ["davis", "got10k", "lasot", "tapvid"])
def test_the_ground_truth_scores_one(layout, roots, tmp_path):
    predictions = write_truth_as_predictions(layout, roots[layout], tmp_path / "truth")
    status, _, stderr = evaluate(roots[layout], "--layout", layout, "--out", tmp_path / "out", "--score-only",
                                 predictions, "--quiet")
    assert status == 0, stderr
    scores = scores_of(tmp_path / "out")
    # success counts an overlap strictly above each of 0, 0.05, ..., 1 (LaSOT's toolkit, pytracking): a perfect
    # track passes 20 of the 21 thresholds
    perfect_auc = 20 / 21
    if layout == "lasot":
        # LaSOT counts frames without the target as failures, and shape-1 and shape-3 have such frames
        values = {s["name"]: s["values"] for s in scores["sequences"]}
        assert values["shape-2"] == {"auc": pytest.approx(perfect_auc), "precision": 1.0, "normalized_precision": 1.0}
        assert values["shape-3"]["auc"] == pytest.approx(0.7 * perfect_auc)  # absent on 3 of its 10 frames
        return
    expected = {"davis": {"j_and_f": 1.0, "j": 1.0, "f": 1.0},
                "got10k": {"auc": pytest.approx(perfect_auc), "precision": 1.0, "normalized_precision": 1.0},
                "tapvid": {"average_jaccard": 1.0, "delta_avg": 1.0, "occlusion_accuracy": 1.0}}[layout]
    assert scores["overall"] == expected and len(scores["sequences"]) == 3
    if layout == "davis":
        assert scores["mot"] == {"HOTA": 1.0, "IDF1": 1.0, "MOTA": 1.0}


def test_missing_predictions_are_named_and_exit_1(roots, tmp_path):
    predictions = write_truth_as_predictions("tapvid", roots["tapvid"], tmp_path / "truth")
    (predictions / "seq1.npz").unlink()
    status, stdout, _ = evaluate(roots["tapvid"], "--layout", "tapvid", "--out", tmp_path / "out", "--score-only",
                                 predictions, "--quiet")
    assert status == 1
    scores = scores_of(tmp_path / "out")
    assert [s["name"] for s in scores["sequences"] if s["error"]] == ["seq1"]
    assert "the predictions of 'seq1' are missing" in scores["sequences"][1]["error"]
    assert scores["overall"]["average_jaccard"] == 1.0 and not scores["complete"]


# --------------------------------------------------------------------------- checked before anything runs


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--ray", "local", "--device", "cpu"], "--device is for one machine"),
    (["--checkpoint", "/no/such/checkpoint.pt"], "checkpoint file not found: /no/such/checkpoint.pt"),
    (["--model", "sam3"], "unknown model 'sam3'"),
    (["--videos", "shape-1,nope"], "no sequence named 'nope'"),
    (["--videos", " , "], "--videos ' , ' names no sequence"),
    (["--videos", "@/no/such/list.txt"], "--videos @/no/such/list.txt: cannot read the file"),
    (["--score-only", "/no/such/folder"], "--score-only /no/such/folder: no such folder"),
    (["--score-only", ".", "--device", "cpu", "--workers", "2"],
     "--score-only tracks nothing; drop --device, --workers"),
])
def test_unusable_options_exit_2(roots, tmp_path, args, message):
    status, stdout, stderr = evaluate(roots["lasot"], "--layout", "lasot", "--out", tmp_path / "out", "--quiet", *args)
    assert status == 2 and message in stderr and stderr.startswith("error: ") and "Traceback" not in stderr
    assert stdout == "" and not (tmp_path / "out").exists()


def test_an_unreadable_dataset_exits_2(tmp_path):
    status, _, stderr = evaluate(tmp_path / "nothing", "--layout", "davis", "--out", tmp_path / "out", *LOCAL)
    assert status == 2 and stderr.startswith(f"error: {tmp_path / 'nothing'} (davis): ")
    status, _, stderr = evaluate(tmp_path, "--layout", "nope", "--out", tmp_path / "out", *LOCAL)
    assert status == 2 and "invalid choice: 'nope'" in stderr


def test_a_model_without_the_layouts_task_exits_2(roots, tmp_path):
    status, _, stderr = evaluate(roots["lasot"], "--layout", "lasot", "--out", tmp_path / "out",
                                 "--model", "sam2.1-tiny", "--quiet")
    assert status == 2 and "model sam2.1-tiny has no 'box' task" in stderr


def test_videos_from_a_file(roots, lasot_run, tmp_path, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text("# the two first\nshape-2\n\nshape-1\nshape-2\n")
    assert cli.video_names(f"@{listing}") == ["shape-2", "shape-1"]
    out = shutil.copytree(lasot_run, tmp_path / "out")
    monkeypatch.setattr(worker, "run_tracking", lambda *a, **k: pytest.fail("tracked again"))
    status, _, _ = evaluate(roots["lasot"], "--layout", "lasot", "--out", out, "--videos", f"@{listing}", *LOCAL)
    assert status == 0 and [s["name"] for s in scores_of(out)["sequences"]] == ["shape-1", "shape-2"]


def test_python_dash_m_runs_the_cli_with_its_status(roots, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sam2_plus.evaluate", str(roots["lasot"]), "--layout", "lasot",
                                      "--out", str(tmp_path / "out"), "--workers", "0"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("sam2_plus.evaluate", run_name="__main__")
    assert exited.value.code == 2 and "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_a_mask_dataset_without_trackeval_is_refused_with_how_to_install_it(tmp_path, monkeypatch, capsys):
    import importlib.util

    from sam2_plus.evaluate.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "trackeval" else find_spec(name, *rest))
    assert main([str(tmp_path), "--layout", "davis", "--out", str(tmp_path / "out")]) == 2
    assert "pip install --no-deps trackeval==1.3.0" in capsys.readouterr().err
