"""EdgeTAM (through transformers) against SAM 2.1 tiny's fast mode, side by side in one run: seconds per tracked
frame at 1280x720 with 1 and 3 objects over 20 frames, seeded stand-in weights of the real sizes, and where
EdgeTAM's time goes (image encoder, memory attention, memory encoder + spatial perceiver, decoder, the rest:
frame preparation and upscaling the masks to the video). Each model first tracks 3 frames untimed (warm-up).

    python bench/bench_edgetam.py                       # this CPU
    python bench/bench_edgetam.py --device cuda         # a GPU
    python bench/bench_edgetam.py --objects 1 --frames 8 --size 640x360   # a quicker look

"Fast mode" is precision bfloat16 where the device has it (CUDA, or a CPU with bfloat16 instructions), else
float32 (the output says which). The time per tracked frame leaves out frame 0 (the prompt).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import object_boxes, synthetic_video  # noqa: E402
from sam2_plus import build_video_predictor  # noqa: E402

EDGETAM_PARTS = {"image encoder": "vision_encoder", "memory attention": "memory_attention",
                 "memory encoder + perceiver": ("memory_encoder", "spatial_perceiver"),
                 "decoder": ("mask_decoder", "prompt_encoder")}
TARGET_RATIO = 0.2


class PartTimer:
    """Wall time inside each named submodule's forward (outermost calls only)."""

    def __init__(self, net: torch.nn.Module, parts: dict) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        for part, names in parts.items():
            for name in (names,) if isinstance(names, str) else names:
                module = getattr(net, name)
                module.register_forward_pre_hook(self._start(part))
                module.register_forward_hook(self._stop(part))
        self._open: dict[str, float] = {}

    def _start(self, part):
        def hook(*_):
            _sync()
            self._open[part] = time.perf_counter()
        return hook

    def _stop(self, part):
        def hook(*_):
            _sync()
            self.totals[part] += time.perf_counter() - self._open.pop(part)
        return hook


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def fast_precision(device: str) -> str:
    if device.startswith("cuda"):
        return "bfloat16"
    return "bfloat16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() \
        else "float32"


def run(model: str, objects: int, frames: int, size: tuple[int, int], device: str, precision: str) -> dict:
    width, height = size
    pred = build_video_predictor(model, checkpoint="seeded:0", device=device, precision=precision)
    warm = pred.init_state(synthetic_video(3, height, width))  # first calls (kernel selection) are not timed
    pred.add_new_points_or_box(warm, 0, 1, box=object_boxes(1, height, width)[0])
    for _ in pred.propagate_in_video(warm):
        pass
    timer = PartTimer(pred.model, EDGETAM_PARTS) if model == "edgetam" else None
    session = pred.init_state(synthetic_video(frames, height, width))
    for obj, box in enumerate(object_boxes(objects, height, width), start=1):
        pred.add_new_points_or_box(session, 0, obj, box=box)
    if timer is not None:
        timer.totals.clear()
    stamps = []
    start = time.perf_counter()
    for result in pred.propagate_in_video(session):
        _sync()
        stamps.append((result.frame_idx, time.perf_counter()))
    tracked = [t for (idx, t) in stamps if idx > 0]
    seconds = (tracked[-1] - stamps[0][1]) / len(tracked)
    report = {"model": model, "objects": objects, "frames": frames, "size": f"{width}x{height}", "device": device,
              "precision": precision, "seconds_per_frame": round(seconds, 4),
              "total_seconds": round(time.perf_counter() - start, 2)}
    if timer is not None:
        per_frame = {part: total / len(stamps) for part, total in timer.totals.items()}
        per_frame["rest (frame preparation, masks to video size)"] = seconds - sum(per_frame.values())
        report["parts_per_frame"] = {k: round(v, 4) for k, v in per_frame.items()}
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--edgetam-precision", default=None, choices=["float32", "bfloat16"],
                    help="EdgeTAM's precision (default: the fast mode's, as SAM 2.1 tiny's)")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    fast = fast_precision(args.device)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "fast_mode_precision": fast}), flush=True)
    for objects in args.objects:
        edge = run("edgetam", objects, args.frames, size, args.device, args.edgetam_precision or fast)
        print(json.dumps(edge), flush=True)
        tiny = run("sam2.1-tiny", objects, args.frames, size, args.device, fast)
        print(json.dumps(tiny), flush=True)
        ratio = edge["seconds_per_frame"] / tiny["seconds_per_frame"]
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        print(f"{objects} object(s): EdgeTAM {edge['seconds_per_frame']:.3f} s/frame, SAM 2.1 tiny "
              f"{tiny['seconds_per_frame']:.3f} s/frame ({fast}): ratio {ratio:.2f}x ({verdict} the {TARGET_RATIO}x "
              "target)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
