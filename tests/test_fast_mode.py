"""Fast mode (precision="bfloat16"): on the first tracked frame of every parity case, at least 99% of
mask pixels agree with exact mode. Exact mode equals the goldens (tests/test_parity.py), so the goldens'
masks stand in for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_plus import build_video_predictor
from test_parity import CASE_DIRS, GOLDEN, _case_param, _runner

SAMURAI_CASES = sorted(p.parent for p in (GOLDEN / "cases_samurai").glob("*/expected.npz"))
MIN_AGREEMENT = 0.99


class _FirstTrackedFrame(Exception):
    """Raised to end a case once its first tracked (unprompted) frame is out."""

    def __init__(self, index: int, logits: torch.Tensor):
        super().__init__(index)
        self.index, self.logits = index, logits


def _fast_predictor(*args, **kwargs):
    pred = build_video_predictor(*args, precision="bfloat16", **kwargs)
    propagate = pred.propagate_in_video

    def until_first_tracked_frame(session, *p_args, **p_kwargs):
        for k, result in enumerate(propagate(session, *p_args, **p_kwargs)):
            prompted = any(result.frame_idx in t.cond_outputs for t in session.objects.values())
            if not prompted:
                raise _FirstTrackedFrame(k, result.mask_logits)
            yield result

    pred.propagate_in_video = until_first_tracked_frame
    return pred


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


# Cases under the bound on processors whose bfloat16 matrix products run without AMX. Measured on an AMD EPYC
# (AVX-512 BF16, no AMX), torch 2.14.1, 2 threads, on main before and after the micro model: 98.82% of pixels
# agree on s1_y1; every disagreeing pixel has an exact logit within 0.58 of 0 (median 0.17), where the stand-in
# weights leave 3.7% of the frame, and fast mode's logits differ from exact ones by 0.28 on average. On Intel
# Xeons with AMX (earlier CI machines) the case passes. It runs everywhere; a pass is welcome.
WITHOUT_AMX = {"sam2plus_box_absent_on_prompt": "98.82% of s1_y1's pixels agree on AVX-512 BF16 without AMX"}


KNOWN_HERE = WITHOUT_AMX if "amx_bf16" not in _cpu_flags() else {}


@pytest.mark.parametrize("case_dir", [_case_param(p, KNOWN_HERE, "bfloat16") for p in CASE_DIRS + SAMURAI_CASES])
def test_fast_mode_agrees_with_exact_mode_on_the_first_tracked_frame(case_dir: Path):
    steps = json.loads((case_dir / "case.json").read_text())["steps"]
    first_propagation = next(i for i, step in enumerate(steps) if step["op"] == "propagate")
    with pytest.raises(_FirstTrackedFrame) as reached:
        _runner().execute(str(case_dir), build=_fast_predictor)
    key = f"s{first_propagation}_y{reached.value.index}_mask_bits"
    expected_bits = np.load(case_dir / "expected.npz")[key]
    width = reached.value.logits.shape[-1]
    expected = np.unpackbits(expected_bits, axis=-1, count=width).astype(bool)
    ours = (reached.value.logits > 0).numpy()
    agreement = float((ours == expected).mean())
    assert agreement >= MIN_AGREEMENT, f"{case_dir.name} {key}: {agreement:.4%} of mask pixels agree"
