"""Shared test fixtures: the `../shared` folder (goldens, videos) beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def needs_cuda(test):
    """A CUDA test: marked `cuda` (bench/gpu_check.py runs them with `-m cuda`) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "golden").is_dir():
        pytest.skip("../shared is not present (goldens and test videos live there)")
    return SHARED
