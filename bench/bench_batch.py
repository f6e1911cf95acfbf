"""Time per video of `python -m sam2_plus.batch` against `python -m sam2_plus.track` on the same clip.

    python bench/bench_batch.py --videos 4 --rounds 3 --frames 8 --size 320x240 --model sam2.1-tiny --device cpu

Both run in this process with the model loaded once beforehand (its loading time is printed apart: the
batch pays it once per worker, the CLI once per process), writing the same outputs (overlay, ZIP, JSON):
the CLI `--videos` times with `--out-dir`, the batch a manifest of `--videos` lines of the clip. Rounds
alternate CLI and batch. Prints one JSON line per round and a last line with the medians and the batch's
overhead per video (batch / CLI - 1). On a busy machine the model's time varies more than that, so each
also gets the time outside the tracking job (`run_tracking`, which both call): what the CLI or the batch adds
around it (reading prompts, staging and publishing, the summary, the display); `added_pct` is the batch's
added time beyond the CLI's, in percent of the CLI's time per video. Synthetic H.264 clip (bench_pipeline's
moving square); untrained stand-in weights, so the numbers are about time only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import square_prompts, synthetic_video  # noqa: E402
from sam2_plus import track  # noqa: E402
from sam2_plus.batch import worker  # noqa: E402
from sam2_plus.batch.cli import main as batch_main  # noqa: E402
from sam2_plus.provider import shared_models  # noqa: E402
from sam2_plus.track import main as track_main  # noqa: E402
from sam2_plus.weights import parse_weights_spec  # noqa: E402

WEIGHTS = "seeded:0"


def quietly(command, argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return command(argv)


class TrackingClock:
    """Seconds spent inside run_tracking, as the CLI and the batch's worker call it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        for module in (track, worker):
            setattr(module, "run_tracking", self._timed(module.run_tracking))

    def _timed(self, run_tracking):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return run_tracking(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed

    def outside(self, run, clip: Path, prompts: str, out: Path, args) -> tuple[float, float]:
        """(seconds per video, of which outside run_tracking) of run(clip, prompts, out, args)."""
        before = self.seconds
        start = time.perf_counter()
        per_video = run(clip, prompts, out, args)
        total = time.perf_counter() - start
        return per_video, (total - (self.seconds - before)) / args.videos


def cli_seconds(clip: Path, prompts: str, out: Path, args) -> float:
    """Seconds per video of the CLI, run once per video."""
    start = time.perf_counter()
    for n in range(args.videos):
        status = quietly(track_main, [str(clip), "--prompts", prompts, "--out-dir", str(out / f"cli{n}"),
                                      "--model", args.model, "--device", args.device, "--checkpoint", WEIGHTS,
                                      "--quiet"])
        assert status == 0, f"the CLI ended with status {status}"
    return (time.perf_counter() - start) / args.videos


def batch_seconds(clip: Path, prompts: str, out: Path, args) -> float:
    """Seconds per video of one batch run over `--videos` lines of the clip."""
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"video": str(clip), "prompts": prompts, "name": f"v{n}"}) + "\n"
                                for n in range(args.videos)))
    start = time.perf_counter()
    status = quietly(batch_main, [str(manifest), "--out", str(out / "batch"), "--model", args.model,
                                  "--device", args.device, "--checkpoint", WEIGHTS, "--quiet"])
    assert status == 0, f"the batch ended with status {status}"
    return (time.perf_counter() - start) / args.videos


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4, help="videos per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", default="320x240", help="WIDTHxHEIGHT")
    ap.add_argument("--model", default="sam2.1-tiny")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    clip = synthetic_video(args.frames, width, height)
    prompts = json.dumps(square_prompts(width, height))
    start = time.perf_counter()
    shared_models().video_predictor(args.model, args.device, parse_weights_spec(WEIGHTS))
    load = time.perf_counter() - start
    clock = TrackingClock()
    runs = {"cli": [], "batch": []}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            runs["cli"].append(clock.outside(cli_seconds, clip, prompts, Path(folder), args))
            runs["batch"].append(clock.outside(batch_seconds, clip, prompts, Path(folder), args))
        print(json.dumps({"round": round_, **{f"{name}_s_per_video": round(times[-1][0], 3)
                                               for name, times in runs.items()},
                          **{f"{name}_outside_tracking_s": round(times[-1][1], 4)
                             for name, times in runs.items()}}), flush=True)
    median = {name: [statistics.median(t[i] for t in times) for i in (0, 1)] for name, times in runs.items()}
    print(json.dumps({"bench": "batch", "model": args.model, "device": args.device, "video": args.size,
                      "frames": args.frames, "videos": args.videos, "rounds": args.rounds,
                      "model_load_s": round(load, 2), "cli_s_per_video": round(median["cli"][0], 3),
                      "batch_s_per_video": round(median["batch"][0], 3),
                      "batch_overhead_pct": round(100 * (median["batch"][0] / median["cli"][0] - 1), 2),
                      "cli_outside_tracking_s": round(median["cli"][1], 4),
                      "batch_outside_tracking_s": round(median["batch"][1], 4),
                      "added_pct": round(100 * (median["batch"][1] - median["cli"][1]) / median["cli"][0], 3)}),
          flush=True)


if __name__ == "__main__":
    main()
