"""Live tracking: frames pushed one at a time (`VideoPredictor.init_stream` / `push_frame`), as a camera gives
them. Prints the frames/s and the latency of a push (the time from a frame's arrival to its result), and the
process's resident memory every `--every` frames, to show that it stays flat however long the stream runs.

    python bench/bench_live.py [--model sam2.1-tiny] [--frames 1000] [--size 640x480] [--objects 1]
                               [--precision auto|float32|bfloat16] [--device cpu|cuda] [--threads N] [--every 100]

The frames are an example clip (examples/shapes.mp4) resized to `--size` and looped; the objects are boxes
prompted on the first frame; the weights are stand-ins (`seeded:0`, the real network's size and cost). The
memory line compares the resident memory after the warm-up (the `--every`th frame) with the end's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path[:0] = [str(REPO), str(BENCH_DIR)]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from _timing import object_boxes  # noqa: E402
from sam2_plus import build_video_predictor  # noqa: E402
from sam2_plus.media.decode import FrameSource  # noqa: E402

CLIP = REPO / "examples" / "shapes.mp4"


def rss_mib() -> float:
    """The process's resident memory (Linux: /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def camera_frames(width: int, height: int) -> list[np.ndarray]:
    with FrameSource(str(CLIP)) as source:
        return [cv2.resize(np.asarray(frame), (width, height), interpolation=cv2.INTER_AREA) for frame in source]


def run(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.lower().split("x"))
    pred = build_video_predictor(args.model, checkpoint="seeded:0", device=args.device, postprocessing=False,
                                 precision=args.precision)
    frames = camera_frames(width, height)
    session = pred.init_stream()
    pred.push_frame(session, frames[0])
    for obj_id, box in enumerate(object_boxes(args.objects, height, width), start=1):
        pred.add_new_points_or_box(session, 0, obj_id, box=box)
    print(f"{args.model} on {pred.device} ({'bfloat16' if pred.uses_bfloat16 else 'float32'}), {width}x{height}, "
          f"{args.objects} object(s), {args.frames} frames, torch threads {torch.get_num_threads()}")
    latencies, memory = [], {}
    for t in range(1, args.frames):
        start = time.perf_counter()
        result = pred.push_frame(session, frames[t % len(frames)])
        result.mask_logits.sum().item()  # the result is on the host and complete
        latencies.append(time.perf_counter() - start)
        if t % args.every == 0 or t == args.frames - 1:
            memory[t] = rss_mib()
            print(f"  frame {t:5d}: RSS {memory[t]:8.1f} MiB, last {args.every} frames "
                  f"{np.mean(latencies[-args.every:]) * 1000:7.1f} ms/frame")
    lat = np.array(latencies[min(5, len(latencies) - 1):]) * 1000  # past the first frames' warm-up
    print(f"latency per frame: mean {lat.mean():.1f} ms, median {np.median(lat):.1f} ms, p95 "
          f"{np.percentile(lat, 95):.1f} ms; {1000 / lat.mean():.2f} frames/s")
    first, last = min(memory), max(memory)
    print(f"memory: {memory[first]:.1f} MiB at frame {first}, {memory[last]:.1f} MiB at frame {last} "
          f"({memory[last] - memory[first]:+.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sam2.1-tiny")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
