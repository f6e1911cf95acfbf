"""Shared test fixtures: the `../shared` folder (goldens, videos) beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "golden").is_dir():
        pytest.skip("../shared is not present (goldens and test videos live there)")
    return SHARED
