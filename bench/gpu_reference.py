"""gpu_check.py's `reference` section: Meta's own SAM 2 code (the `sam2` package, 1.1.0) tracking the same clip on
the same device in the same precision, eager and with `vos_optimized=True` (its compiled mode; CUDA only), for
SAM 2.1 tiny / small / base+ / large and 1, 3 and 16 objects: frames/s and peak memory, and ours / Meta's where
the fps section measured the same model and objects.

A GPU machine has no package index: carry Meta's package in the git-ignored `.carry/` folder (README, Hardware:
`pip download` of its source distribution and of its pure-Python dependencies); the section installs it from
there (`--no-index`, SAM2_BUILD_CUDA=0, without build isolation, against the installed torch) when it is
missing. Both sides get stand-in weights (speed only); Meta's are ../shared/golden/seeded_weights.py's.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".carry"
META_VERSION = "1.1.0"
META_CONFIGS = {"sam2.1-tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
                "sam2.1-small": "configs/sam2.1/sam2.1_hiera_s.yaml",
                "sam2.1-base-plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
                "sam2.1-large": "configs/sam2.1/sam2.1_hiera_l.yaml"}


def meta_sam2_missing() -> Optional[str]:
    """Why Meta's package cannot be used here (after installing it from .carry/ when it is there), or None."""
    if importlib.util.find_spec("sam2") is not None:
        return None
    if not any(CARRY.glob("sam2-*")):
        return f"Meta's sam2 {META_VERSION} is not installed and .carry/ holds no sam2-* (README: Hardware)"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(CARRY),
               "--no-build-isolation", f"sam2=={META_VERSION}"]
    done = subprocess.run(command, env={**os.environ, "SAM2_BUILD_CUDA": "0"}, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"installing sam2 from .carry/ failed: {last[0]}"
    importlib.invalidate_caches()
    return None


def run_meta(model: str, frames: list, objects: int, device: str, vos_optimized: bool, warmup: int,
             measured: int, golden: Path) -> dict:
    """Meta's video predictor on the frames: frames/s after `warmup` frames over `measured` frames, peak memory."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from _timing import object_boxes

    sys.path.insert(0, str(golden))
    from seeded_weights import seeded_state_dict

    predictor = build_sam2_video_predictor(META_CONFIGS[model], ckpt_path=None, device=device,
                                           vos_optimized=vos_optimized)
    predictor.load_state_dict(seeded_state_dict(predictor.state_dict(), 0), strict=True)
    height, width = frames[0].shape[:2]
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                else torch.autocast("cpu", enabled=False))
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode(), autocast:
        _write_jpegs(frames, Path(folder))
        state = predictor.init_state(video_path=folder)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for obj, box in enumerate(object_boxes(objects, height, width), start=1):
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj, box=box)
        times = []
        for _ in predictor.propagate_in_video(state):
            times.append(time.perf_counter())
            if len(times) > warmup + measured:
                break
    kept = times[warmup:]
    rate = (len(kept) - 1) / (kept[-1] - kept[0]) if len(kept) > 1 else None
    peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
    return {"fps": round(rate, 2) if rate else None, "frames_measured": max(len(kept) - 1, 0), "peak_gpu_mib": peak,
            "video": f"{width}x{height}", "precision": "bfloat16 autocast" if device == "cuda" else "float32"}


def _write_jpegs(frames: list, folder: Path) -> None:
    import cv2

    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
