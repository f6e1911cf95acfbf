"""Per-frame time of this implementation and of the reference one, side by side in one run.

    python bench/bench_vs_reference.py --reference /path/to/SAM2-Plus --objects 1 3 --frames 10

`--reference` is a checkout of https://github.com/MCG-NJU/SAM2-Plus (with its requirements installed);
nothing of it is copied here. Both implementations get the same deterministic stand-in weights (this
package's seeded:0, handed to the reference as a checkpoint file and loaded strictly, which also checks
that the key names agree) and the same synthetic frames.

Each side runs in its own worker process, and the two are stepped in turn, one tracked frame at a time,
so a slow patch of the machine slows both alike. One JSON line per (objects, precision): seconds per
tracked frame of each side after the memory bank is full, split into components, and their ratio, and
`per_frame`: every tracked frame's seconds on both sides from the first tracked one (also printed as a
table on stderr). The reference always runs in float32, as the speed targets are stated against it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
REFERENCE_BUILD = {
    # model name: (reference module, builder, config inside the reference checkout)
    "sam2++": ("sam2_plus.build_sam", "build_sam2_video_predictor_plus",
               "configs/sam2.1/sam2.1_hiera_b+_predmasks_decoupled_MAME.yaml"),
    "sam2.1-tiny": ("sam2.build_sam", "build_sam2_video_predictor", "configs/sam2.1/sam2.1_hiera_t.yaml"),
}


def write_frames(folder: Path, num_frames: int, height: int, width: int) -> None:
    """Lossless frames (PNG bytes) under the .jpg names every SAM 2 frame-folder loader accepts."""
    from PIL import Image

    from _timing import synthetic_video

    for i, frame in enumerate(synthetic_video(num_frames, height, width)):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", format="PNG")


# ---------------------------------------------------------------------------------------------- workers

def _ours(args):
    sys.path.insert(0, str(REPO_ROOT))
    from _timing import object_boxes
    from sam2_plus import build_video_predictor

    pred = build_video_predictor(args.model, checkpoint="seeded:0", device="cpu", task="mask",
                                 postprocessing=False, precision=args.precision)
    if args.save_weights:
        import torch

        torch.save({"model": pred.model.state_dict()}, args.save_weights)
    session = pred.init_state(args.frames_dir)
    for obj, box in enumerate(object_boxes(args.objects, args.height, args.width), start=1):
        pred.add_new_points_or_box(session, 0, obj, box=box)
    return pred.model, (r.frame_idx for r in pred.propagate_in_video(session))


def _reference(args):
    import importlib

    import torch
    from _timing import object_boxes

    sys.path[:] = [args.reference] + [p for p in sys.path if Path(p or ".").resolve() != REPO_ROOT]
    module, builder, config = REFERENCE_BUILD[args.model]
    build = getattr(importlib.import_module(module), builder)
    extra = {"task": "mask"} if args.model == "sam2++" else {}
    pred = build(config, None, device="cpu", apply_postprocessing=False, **extra)
    pred.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True)["model"], strict=True)
    pred.eval()
    state = pred.init_state(args.frames_dir)
    for obj, box in enumerate(object_boxes(args.objects, args.height, args.width), start=1):
        pred.add_new_points_or_box(state, 0, obj, box=np.array(box, np.float32))
    return pred, (outputs[0] for outputs in pred.propagate_in_video(state))  # (frame_idx, ...)


def worker(args) -> None:
    """Tracks one frame per line read from stdin and answers with its timings."""
    import torch

    sys.path.insert(0, str(BENCH_DIR))
    from _timing import ComponentTimer

    torch.set_num_threads(args.threads)
    with torch.inference_mode():
        model, frames = (_reference if args.side == "reference" else _ours)(args)
        timer = ComponentTimer(model)
        print(json.dumps({"ready": True}), flush=True)
        for _ in sys.stdin:
            timer.reset()
            start, cpu_start = time.perf_counter(), time.process_time()
            frame_idx = next(frames, None)
            print(json.dumps({
                "frame": frame_idx, "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu_start, **{f"{k}_s": v for k, v in timer.totals.items()},
            }), flush=True)
            if frame_idx is None:
                return


# ------------------------------------------------------------------------------------------ orchestrator

class Worker:
    def __init__(self, side: str, args, frames_dir: Path, extra: list[str]):
        cmd = [sys.executable, __file__, "--worker", side, "--frames-dir", str(frames_dir),
               "--model", args.model, "--objects", str(args.objects_now), "--threads", str(args.threads),
               "--precision", args.precision_now, "--size", args.size, *extra]
        if args.reference:
            cmd += ["--reference", args.reference]
        self.side = side
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.side} worker exited (status {self.proc.wait()})")
        return json.loads(line)

    def step(self) -> dict:
        self.proc.stdin.write("next\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def summarise(records: list[dict]) -> dict:
    keys = sorted({k for r in records for k in r if k.endswith("_s")})
    n = max(1, len(records))
    return {
        "seconds_per_frame": round(sum(r["seconds"] for r in records) / n, 4),
        "cpu_seconds_per_frame": round(sum(r["cpu_seconds"] for r in records) / n, 4),
        **{k: round(sum(r.get(k, 0.0) for r in records) / n, 4) for k in keys},
    }


def compare(args, workdir: Path) -> dict:
    weights = workdir / "seeded0.pt"
    ours = Worker("ours", args, workdir / "frames", ["--save-weights", str(weights)])
    reference = Worker("reference", args, workdir / "frames", ["--weights", str(weights)])
    steady_from = 7 if args.frames > 8 else 1  # num_maskmem: the memory bank is full from here on
    tracked = {"ours": [], "reference": []}  # every tracked frame (frame 0 is the prompted one)
    try:
        for _ in range(args.frames):
            # alternate which side goes first, so neither always follows the other's cache footprint
            pair = (ours, reference) if len(tracked["ours"]) % 2 == 0 else (reference, ours)
            for side in pair:
                record = side.step()
                if record["frame"] is not None and record["frame"] >= 1:
                    tracked[side.side].append(record)
    finally:
        ours.close()
        reference.close()
    steady = {side: [r for r in records if r["frame"] >= steady_from] for side, records in tracked.items()}
    mine, theirs = summarise(steady["ours"]), summarise(steady["reference"])
    return {
        "model": args.model, "objects": args.objects_now, "precision": args.precision_now,
        "reference_precision": "float32", "threads": args.threads, "video": args.size,
        "frames_measured": len(steady["ours"]),
        "ratio": round(mine["seconds_per_frame"] / theirs["seconds_per_frame"], 3),
        "cpu_ratio": round(mine["cpu_seconds_per_frame"] / theirs["cpu_seconds_per_frame"], 3),
        "ours": mine, "reference": theirs,
        "per_frame": per_frame(tracked["ours"], tracked["reference"]),
    }


def per_frame(ours: list[dict], reference: list[dict]) -> list[dict]:
    """Each tracked frame's seconds on both sides, their ratio, and our components' seconds."""
    theirs = {r["frame"]: r for r in reference}
    rows = []
    for mine in ours:
        other = theirs.get(mine["frame"])
        if other is None:
            continue
        rows.append({
            "frame": mine["frame"], "ours_s": round(mine["seconds"], 3), "reference_s": round(other["seconds"], 3),
            "ratio": round(mine["seconds"] / other["seconds"], 3),
            "ours_components": {k[:-2]: round(v, 3) for k, v in mine.items() if k.endswith("_s")},
            "reference_components": {k[:-2]: round(v, 3) for k, v in other.items() if k.endswith("_s")},
        })
    return rows


def print_table(result: dict) -> None:
    """The per-frame seconds as a table for people (stderr; stdout keeps one JSON line per run)."""
    print(f"{result['model']}, {result['objects']} object(s), ours {result['precision']} vs reference float32, "
          f"{result['threads']} threads", file=sys.stderr)
    print(f"{'frame':>5} {'ours s':>8} {'ref s':>8} {'ratio':>6}  ours' components (s)", file=sys.stderr)
    for row in result["per_frame"]:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in row["ours_components"].items())
        print(f"{row['frame']:>5} {row['ours_s']:>8.2f} {row['reference_s']:>8.2f} {row['ratio']:>6.2f}  {parts}",
              file=sys.stderr)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", help="path of a MCG-NJU/SAM2-Plus checkout")
    ap.add_argument("--model", default="sam2++", choices=sorted(REFERENCE_BUILD))
    ap.add_argument("--objects", nargs="+", type=int, default=[1, 3])
    ap.add_argument("--frames", type=int, default=14, help="frames of the video (the first is prompted)")
    ap.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the synthetic video")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--frames-dir", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--save-weights", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    if args.worker:
        args.side, args.objects, args.precision = args.worker, args.objects[0], args.precision[0]
        return worker(args)
    if not args.reference or not Path(args.reference).is_dir():
        ap.error("--reference must name a checkout of MCG-NJU/SAM2-Plus")
    sys.path.insert(0, str(BENCH_DIR))
    with tempfile.TemporaryDirectory(prefix="sam2plus_vs_ref_") as tmp:
        workdir = Path(tmp)
        (workdir / "frames").mkdir()
        write_frames(workdir / "frames", args.frames, args.height, args.width)
        for precision in args.precision:
            for objects in args.objects:
                args.objects_now, args.precision_now = objects, precision
                result = compare(args, workdir)
                print_table(result)
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
