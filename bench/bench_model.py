"""Per-frame model time, split into image encoder, memory attention, decoder and memory encoder.

    python bench/bench_model.py --model sam2.1-tiny --objects 1 3 --frames 10 --precision float32 bfloat16 --batch 1 16

Prints one JSON line per (model, objects) run: seconds per tracked frame in total and per component,
measured over the tracked frames after the memory bank is full (frames >= num_maskmem) when there are
enough frames, else over all tracked frames. Uses deterministic untrained stand-in weights, so the
numbers are about speed only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import COMPONENTS, ComponentTimer, object_boxes, synthetic_video  # noqa: E402
from sam2_plus import build_video_predictor  # noqa: E402


def run(model: str, task: str, num_objects: int, num_frames: int, device: str, height: int, width: int,
        precision: str = "auto", max_batch_objects: Optional[int] = None) -> dict:
    pred = build_video_predictor(model, checkpoint="seeded:0", device=device, task=task, postprocessing=False,
                                 precision=precision, max_batch_objects=max_batch_objects)
    timer = ComponentTimer(pred.model)
    session = pred.init_state(synthetic_video(num_frames, height, width))
    for obj, box in enumerate(object_boxes(num_objects, height, width), start=1):
        if task == "point":
            pred.add_new_points_or_box(session, 0, obj, points=[[box[0] + 5, box[1] + 5]], labels=[1])
        else:
            pred.add_new_points_or_box(session, 0, obj, box=box)
    steady_from = pred.model.num_maskmem if num_frames > pred.model.num_maskmem + 1 else 1
    per_frame, cpu_per_frame, components = [], [], defaultdict(float)
    with torch.inference_mode():
        stream = pred.propagate_in_video(session)
        while True:
            timer.reset()
            start, cpu_start = time.perf_counter(), time.process_time()
            result = next(stream, None)
            if result is None:
                break
            elapsed = time.perf_counter() - start
            if result.frame_idx >= steady_from:
                per_frame.append(elapsed)
                cpu_per_frame.append(time.process_time() - cpu_start)
                for k, v in timer.totals.items():
                    components[k] += v
    n = max(1, len(per_frame))
    return {
        "model": model, "task": task, "objects": num_objects, "precision": precision, "device": device,
        "max_batch_objects": pred.max_batch_objects, "threads": torch.get_num_threads(),
        "frames_measured": len(per_frame), "video": f"{width}x{height}",
        "seconds_per_frame": round(float(np.mean(per_frame)), 4) if per_frame else None,
        # CPU seconds of this process (all threads): less sensitive than wall time to other load
        "cpu_seconds_per_frame": round(float(np.mean(cpu_per_frame)), 4) if per_frame else None,
        **{f"{k}_s": round(components[k] / n, 4) for k in COMPONENTS},
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["sam2.1-tiny", "sam2++"])
    ap.add_argument("--task", default="mask")
    ap.add_argument("--objects", nargs="+", type=int, default=[1, 3])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the synthetic video")
    ap.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", nargs="+", type=int, default=[None],
                    help="max objects tracked in one batch (1: one at a time, as the reference; default: the "
                         "predictor's, 16 on CUDA and 1 on the CPU)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    for model in args.model:
        for precision in args.precision:
            for k in args.objects:
                for batch in args.batch:
                    result = run(model, args.task, k, args.frames, args.device, height, width, precision, batch)
                    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
