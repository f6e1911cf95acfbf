"""bench/gpu_check.py: one line and status 2 without CUDA; --dry-run runs every section end to end on the CPU;
the budget is hard; the list of CUDA test files is complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, SHARED

sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402

SCRIPT = REPO / "bench" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_without_cuda_one_line_and_status_2_within_seconds():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == gpu_check.EXIT_NO_CUDA
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1 and "no CUDA" in done.stderr
    assert time.perf_counter() - started < 30


def test_dry_run_runs_every_section_end_to_end(tmp_path):
    if not (SHARED / "golden").is_dir() or not (SHARED / "data" / "videos" / "01_dog.mp4").is_file():
        pytest.skip("../shared (goldens and the 720p clip) is not present")
    out = tmp_path / "figures.jsonl"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--budget-s", "1500", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    figures = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["section"] for f in figures if f["ok"] is False] == []
    assert {f["section"] for f in figures} == {name for name, _ in gpu_check.SECTIONS}
    named = {(f["section"], f["name"]): f for f in figures}
    assert named[("parity", f"{_smallest_case()} float32")]["value"] == "0 mismatches"
    assert named[("fps", f"{gpu_check.DRY_RUN_MODEL} 1 obj")]["value"] > 0
    assert named[("app", "/track via gradio_client")]["frames"] == 2
    meta = named[("reference", "meta sam2.1-tiny 1 obj")]  # Meta's sam2 is installed beside (.ci/run)
    assert meta["value"] > 0 and meta["precision"] == "float32" and meta["frames_measured"] == 1
    assert "section" in done.stdout and re.search(r"^app\s+/track via gradio_client", done.stdout, re.M)


def _smallest_case() -> str:
    return min(gpu_check._golden_cases(SHARED / "golden"), key=gpu_check._case_cost).name


def test_the_budget_is_hard(monkeypatch, capsys):
    exits = []
    monkeypatch.setattr(gpu_check.os, "_exit", exits.append)
    report = gpu_check.Report(None)
    report.add(gpu_check.Figure("fps", "sam2++ 1 obj", 12.5, "frames/s"))
    gpu_check.Budget(0.2, report)
    time.sleep(1.0)
    assert exits == [gpu_check.EXIT_OUT_OF_TIME] and report.closed
    printed = capsys.readouterr().out
    assert "sam2++ 1 obj  12.5 frames/s" in printed and "out of time" in printed
    report.add(gpu_check.Figure("fps", "late", 1.0))  # nothing is added after the table
    assert len(report.figures) == 1


def test_a_failed_check_fails_the_run():
    report = gpu_check.Report(None)
    report.add(gpu_check.Figure("parity", "case float32", "3 mismatches", ok=False))
    assert report.finish() == 1
    assert gpu_check.Report(None).finish() == 0


def test_the_cuda_test_files_are_all_listed():
    marked = re.compile(r"^@needs_cuda", re.M)
    uses = {f"tests/{p.name}" for p in (REPO / "tests").glob("test_*.py") if marked.search(p.read_text())}
    assert uses == set(gpu_check.CUDA_TEST_FILES)
