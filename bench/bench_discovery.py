"""Discovery's share of a tracking job's time: a job that finds its objects on keyframes (the default interval of
15 frames) against the whole job, with the tracker's stand-in weights on this machine.

    python bench/bench_discovery.py [--model sam2.1-tiny] [--frames 30] [--mode text|everything] [--threads 2]
                                    [--lowered] [--max-objects N]

The clip is the first `--frames` frames of ../shared/data/videos/01_dog.mp4 (a generated clip where the videos are
absent). `text` uses a stand-in detector (no download: two fixed boxes a keyframe, as a detector would give for two
phrases), so what is timed is discovery's own work: the detector's call, the image predictor's masks on the frame's
features, the coverage rule and the prompts of the found objects. `everything` runs the automatic masks (16 points
a side) on the tracker's features. One line: the job's seconds, tracking's, discovery's and the backward tracking
of new objects, and discovery's share (target: at most 25 % at the default interval), also counted with the
backward tracking of the new objects (tracking work that discovery causes; `backfill` in the settings).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SHARED = REPO.parent / "shared"
sys.path[:0] = [str(REPO)]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sam2_plus.discovery.found import Detection  # noqa: E402
from sam2_plus.discovery.settings import DiscoverySettings  # noqa: E402
from sam2_plus.provider import ModelCache  # noqa: E402
from sam2_plus.service import TrackOutputs, prepare_request, run_tracking  # noqa: E402
from sam2_plus.weights import WeightsSource  # noqa: E402


class FixedBoxes:
    """A stand-in detector: a box in the left and one in the right half of every frame, one per phrase."""

    def detect(self, image, phrases, threshold):
        height, width = image.shape[:2]
        boxes = [(0.10 * width, 0.30 * height, 0.40 * width, 0.90 * height),
                 (0.60 * width, 0.20 * height, 0.90 * width, 0.70 * height)]
        return [Detection(box, 0.9, phrase) for box, phrase in zip(boxes, phrases)]


class BenchModels(ModelCache):
    def detector(self, checkpoint, device=None):
        return FixedBoxes()


def clip(folder: Path, frames: int) -> Path:
    source = SHARED / "data" / "videos" / "01_dog.mp4"
    if source.is_file():
        return source
    path = folder / "generated.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (640, 360))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (360, 640, 3), np.uint8))
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sam2.1-tiny")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--mode", choices=("text", "everything"), default="text")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lowered", action="store_true",
                        help="everything: thresholds the stand-in network passes (predicted IoU 0.5, stability 0.3)")
    parser.add_argument("--max-objects", type=int, default=32, help="the job's object limit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lowered = dict(pred_iou_thresh=0.5, stability_score_thresh=0.3) if args.lowered else {}
    settings = (DiscoverySettings("text", ("dog", "person"), max_objects=args.max_objects) if args.mode == "text"
                else DiscoverySettings("everything", max_objects=args.max_objects, **lowered))
    with tempfile.TemporaryDirectory() as tmp:
        video = clip(Path(tmp), args.frames)
        request = prepare_request(video, None, model=args.model, weights=WeightsSource("seeded"),
                                  max_frames=args.frames, discovery=settings, device="cpu")
        models = BenchModels()
        models.video_predictor(args.model, "cpu", request.weights)  # built before the clock starts
        summary = run_tracking(request, TrackOutputs(results_json=Path(tmp) / "results.json"), models=models)
    report = summary.discovery
    print(f"{args.model}, {summary.video.width}x{summary.video.height}, {summary.frames_done} frames, {args.mode}, "
          f"interval {settings.keyframe_interval}, keyframes {report.keyframes}, objects {len(summary.tasks)}")
    print(f"job {summary.seconds:.1f} s; tracking {summary.tracking_seconds:.1f} s; discovery {report.seconds:.2f} s; "
          f"backward tracking of new objects {report.backfill_seconds:.1f} s; "
          f"discovery's share {100 * report.seconds / summary.seconds:.1f} % (target <= 25 %), "
          f"{100 * (report.seconds + report.backfill_seconds) / summary.seconds:.1f} % with the backward tracking")


if __name__ == "__main__":
    main()
