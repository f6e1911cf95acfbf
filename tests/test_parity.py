"""Parity with the reference implementations: every case of ../shared/golden/cases (and the
motion-aware cases_samurai once that mode exists) and the project's own further cases in
tests/parity_cases, through the shared runner (`run_case.execute` + `run_case.compare`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED

GOLDEN = SHARED / "golden"
# a case is complete once its reference outputs exist
CASE_DIRS = sorted(p.parent for p in (GOLDEN / "cases").glob("*/expected.npz")) + sorted(
    p.parent for p in (REPO / "tests" / "parity_cases").glob("*/expected.npz"))


def _runner():
    """The shared golden runner (../shared/golden/run_case.py); skips the test when ../shared is absent."""
    if not (GOLDEN / "run_case.py").is_file():
        pytest.skip("../shared is not present (the parity runner lives in ../shared/golden)")
    spec = importlib.util.spec_from_file_location("golden_run_case", GOLDEN / "run_case.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("golden_run_case", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=[p.name for p in CASE_DIRS])
def test_parity_case(case_dir: Path):
    runner = _runner()
    got = runner.execute(str(case_dir))
    errors = runner.compare(str(case_dir), got)
    assert not errors, f"{case_dir.name}: {len(errors)} mismatches\n  " + "\n  ".join(errors[:40])


def test_cases_are_present():
    if not GOLDEN.is_dir():
        pytest.skip("../shared is not present")
    assert len([p for p in CASE_DIRS if p.is_relative_to(GOLDEN)]) >= 5
