"""Parity with the reference implementations: every case of ../shared/golden/cases (and the
motion-aware cases_samurai once that mode exists) and the project's own further cases in
tests/parity_cases, through the shared runner (`run_case.execute` + `run_case.compare`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Mapping

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


# Cases whose goldens this processor cannot reproduce, not even with the reference itself: on an Intel Xeon
# with AVX-512 and AMX (this CI's machine), torch 2.14.1, the reference implementations (MCG-NJU/SAM2-Plus
# at 09c9ec4, run outside the repository on the case's steps with the seeded weights) give outputs equal to
# ours at every compared key, on 2 threads, and miss these goldens by the same amounts (measured). The
# goldens were made on another processor; there the parallel sums run in another order (MKL and oneDNN pick
# kernels by instruction set), and where tracking is unstable that rounding grows past the tolerances (six
# times the reference's own 1-vs-2-thread noise, which on this processor is 2.5-5x the goldens' envelope).
# They run everywhere; a failure here is reported, not hidden, and a pass is welcome.
PROCESSOR_DEPENDENT = {
    "sam2plus_mask_clicks_box_s0": "on AVX-512: s3_y2 logits mean 0.01475 > 0.01466, s3_y4 scores 0.00419 > 0.003244",
    "sam2plus_box_late_object": "on AVX-512: s3_y2 logits mean 0.02726 > 0.02083, s3_y2 mask bits 0.52% > 0.22%",
}


def _case_param(case_dir: Path, known: Mapping[str, str] = PROCESSOR_DEPENDENT, what: str = "rounding"):
    """The case as a test parameter, an expected (not required) failure where `known` names it."""
    reason = known.get(case_dir.name)
    marks = [pytest.mark.xfail(strict=False, reason=f"processor-dependent {what} ({reason})")] if reason else []
    return pytest.param(case_dir, id=case_dir.name, marks=marks)


@pytest.mark.parametrize("case_dir", [_case_param(p) for p in CASE_DIRS])
def test_parity_case(case_dir: Path):
    runner = _runner()
    got = runner.execute(str(case_dir))
    errors = runner.compare(str(case_dir), got)
    assert not errors, f"{case_dir.name}: {len(errors)} mismatches\n  " + "\n  ".join(errors[:40])


def test_cases_are_present():
    if not GOLDEN.is_dir():
        pytest.skip("../shared is not present")
    assert len([p for p in CASE_DIRS if p.is_relative_to(GOLDEN)]) >= 5
