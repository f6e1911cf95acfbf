"""Shared test fixtures: the `../shared` folder (goldens, videos) beside the repository."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Gradio's cache of uploads and served files, private to this test run: the app's cache cleaning
# (delete_cache) in another test run on the same machine deleted this run's uploads mid-job (seen here).
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="sam2plus-tests-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)


def needs_cuda(test):
    """A CUDA test: marked `cuda` (bench/gpu_check.py runs them with `-m cuda`) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "golden").is_dir():
        pytest.skip("../shared is not present (goldens and test videos live there)")
    return SHARED
