"""End-to-end numbers of the tracking pipeline (the CLI's service layer), one JSON line per run.

    python bench/bench_pipeline.py memory   --frames 50 200 1000 --model sam2.1-tiny
    python bench/bench_pipeline.py startup  --frames 1000 --size 1280x720
    python bench/bench_pipeline.py overhead --frames 20

memory:   peak RSS (MB) of a job writing the overlay, the ZIP and the JSON, read when the job has written
          each of the given frame counts; one job over the largest count (peak RSS never decreases, so
          the value at frame N is the peak of a job that had tracked N frames).
startup:  seconds from `init_state` on a long video to the first tracked frame (prompt on frame 0).
overhead: the whole job's time against the time spent inside the predictor (decoding included there),
          i.e. what the writers add.
Synthetic H.264 videos (a textured background with a moving square) are made once in a cache folder.
Weights are deterministic stand-ins, so the numbers are about speed and memory only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_plus import build_video_predictor  # noqa: E402
from sam2_plus.media.encode import VideoWriter  # noqa: E402
from sam2_plus.service import TrackOutputs, prepare_request, run_tracking  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "sam2plus_bench_videos"


def synthetic_video(num_frames: int, width: int, height: int) -> Path:
    path = CACHE / f"moving_square_{width}x{height}_{num_frames}.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    background = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
    side = height // 4
    partial = path.with_suffix(".partial.mp4")
    with VideoWriter(partial, fps=30.0, width=width, height=height) as writer:
        for i in range(num_frames):
            frame = background.copy()
            x = (8 * i) % (width - side)
            frame[height // 3: height // 3 + side, x: x + side] = (250, 30, 30)
            writer.write(frame)
    partial.rename(path)
    return path


def square_box(width: int, height: int) -> list[int]:
    side = height // 4
    return [0, height // 3, side, height // 3 + side]


def square_prompts(width: int, height: int) -> dict:
    """The prompts JSON of one mask object given by the square's box on frame 0."""
    return {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": square_box(width, height)}]}]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def memory(args) -> None:
    counts = sorted(args.frames)
    video = synthetic_video(counts[-1], args.width, args.height)
    predictor = build_video_predictor(args.model, checkpoint="seeded:0", precision=args.precision,
                                      keep_all_memory=args.keep_all_memory)
    request = prepare_request(video, square_prompts(args.width, args.height), model=args.model)
    start = time.perf_counter()
    written = itertools.count(1)

    def on_result(_result):  # printed as each count is reached, so a long run reports as it goes
        done = next(written)
        if done in counts:
            print(json.dumps({"bench": "memory", "model": args.model, "precision": args.precision,
                              "keep_all_memory": args.keep_all_memory, "frames": done,
                              "peak_rss_mb": round(peak_rss_mb(), 1),
                              "seconds": round(time.perf_counter() - start, 1),
                              "video": f"{args.width}x{args.height}"}), flush=True)

    with tempfile.TemporaryDirectory() as out:
        out = Path(out)
        run_tracking(request, TrackOutputs(overlay=out / "overlay.mp4", export=out / "results.zip",
                                           results_json=out / "results.json"),
                     predictor=predictor, on_result=on_result)
    print(json.dumps({"bench": "memory", "frames": counts[-1], "peak_rss_mb_after_writing": round(peak_rss_mb(), 1),
                      "seconds": round(time.perf_counter() - start, 1)}), flush=True)


def startup(args) -> None:
    n = max(args.frames)
    video = synthetic_video(n, args.width, args.height)
    predictor = build_video_predictor(args.model, checkpoint="seeded:0", precision=args.precision)
    start = time.perf_counter()
    with torch.inference_mode():
        session = predictor.init_state(video)
        opened = time.perf_counter()
        predictor.add_new_points_or_box(session, 0, 1, box=square_box(args.width, args.height))
        stream = predictor.propagate_in_video(session)
        next(stream)  # the prompted frame
        next(stream)  # the first tracked frame
        stream.close()
    end = time.perf_counter()
    print(json.dumps({"bench": "startup", "model": args.model, "precision": args.precision, "frames": n,
                      "video": f"{args.width}x{args.height}", "init_state_s": round(opened - start, 3),
                      "to_first_tracked_frame_s": round(end - start, 3)}), flush=True)


def overhead(args) -> None:
    n = max(args.frames)
    video = synthetic_video(n, args.width, args.height)
    predictor = build_video_predictor(args.model, checkpoint="seeded:0", precision=args.precision)
    request = prepare_request(video, square_prompts(args.width, args.height), model=args.model)
    with tempfile.TemporaryDirectory() as out:
        out = Path(out)
        start = time.perf_counter()
        summary = run_tracking(request, TrackOutputs(overlay=out / "overlay.mp4", export=out / "results.zip",
                                                     results_json=out / "results.json"), predictor=predictor)
        total = time.perf_counter() - start
    print(json.dumps({"bench": "overhead", "model": args.model, "precision": args.precision, "frames": n,
                      "video": f"{args.width}x{args.height}", "job_s": round(total, 2),
                      "model_s": round(summary.model_seconds, 2),
                      "job_over_model": round(total / summary.model_seconds, 4)}), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["memory", "startup", "overhead"])
    ap.add_argument("--frames", nargs="+", type=int, default=[50, 200, 1000])
    ap.add_argument("--model", default="sam2.1-tiny")
    ap.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the synthetic video")
    ap.add_argument("--keep-all-memory", action="store_true", help="memory: keep every frame's memory")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    {"memory": memory, "startup": startup, "overhead": overhead}[args.what](args)


if __name__ == "__main__":
    main()
