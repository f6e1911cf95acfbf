"""Automatic masks on one frame: this project's generator against the image encoder's time and against SAM 2's
`SAM2AutomaticMaskGenerator` (Meta's `sam2` package) on the same frame, network weights and settings, in one run.

    python bench/bench_image.py [--model sam2.1-tiny] [--size 1280x720] [--points-per-side 32] [--threads 2]

Both networks get the stand-in weights of ../shared/golden/seeded_weights.py (the same keys and shapes, so the
same weights). The frame is the first of ../shared/data/videos/01_dog.mp4 resized (a generated one where the
videos are absent). Two settings: SAM 2's defaults (which keep few or no masks of the stand-in network) and
lowered thresholds (pred_iou_thresh 0.5, stability_score_thresh 0.3) that keep some. For each, one line per
generator: seconds, masks kept, and where the time went (the decoder: prompt encoder and mask decoder; the
encoder; for SAM 2 also its upscaling of every candidate, stability scores, boxes and RLE of the kept ones).
Then the ratios the issue asks for: ours / encoder (target <= 3) and ours / SAM 2 (target <= 0.5).
Without `sam2` installed SAM 2's lines are skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SHARED = REPO.parent / "shared"
sys.path[:0] = [str(REPO), str(BENCH_DIR)]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _timing import ComponentTimer  # noqa: E402

from sam2_plus import AutomaticMaskGenerator, build_model  # noqa: E402
from sam2_plus.image import ImagePredictor  # noqa: E402

META_CONFIGS = {"sam2.1-tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
                "sam2.1-small": "configs/sam2.1/sam2.1_hiera_s.yaml",
                "sam2.1-base-plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
                "sam2.1-large": "configs/sam2.1/sam2.1_hiera_l.yaml"}
SETTINGS = {"default": {}, "lowered": dict(pred_iou_thresh=0.5, stability_score_thresh=0.3)}


def load_frame(width: int, height: int) -> tuple[np.ndarray, str]:
    path = SHARED / "data" / "videos" / "01_dog.mp4"
    capture = cv2.VideoCapture(str(path))
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        rng = np.random.default_rng(0)
        image = (rng.random((height, width, 3)) * 80).astype(np.uint8)
        image[height // 4: height // 2, width // 3: width // 2] = (220, 40, 40)
        return image, "generated"
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), f"{path.name} frame 0"


def meta_network(model: str):
    """SAM 2's network with the seeded weights, or None (with the reason printed) where it cannot be built."""
    if importlib.util.find_spec("sam2") is None:
        print("SAM 2's generator skipped: the `sam2` package is not installed", flush=True)
        return None
    seeded = SHARED / "golden" / "seeded_weights.py"
    if model not in META_CONFIGS or not seeded.is_file():
        print(f"SAM 2's generator skipped: no SAM 2 config for {model!r} or no {seeded}", flush=True)
        return None
    spec = importlib.util.spec_from_file_location("golden_seeded_weights", seeded)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from sam2.build_sam import build_sam2

    net = build_sam2(META_CONFIGS[model], ckpt_path=None, device="cpu")
    net.load_state_dict(module.seeded_state_dict(net.state_dict(), 0), strict=True)
    return net


class MetaStepTimer:
    """Seconds in SAM 2's generator steps after the decoder: its upscaling (postprocess_masks), stability
    scores, mask boxes and RLE, by wrapping the functions its module calls."""

    STEPS = {"upscale": None, "stability": "calculate_stability_score", "boxes": "batched_mask_to_box",
             "rle": "mask_to_rle_pytorch"}

    def __init__(self):
        import sam2.automatic_mask_generator as generator_module
        from sam2.utils.transforms import SAM2Transforms

        self.totals = defaultdict(float)
        for step, name in self.STEPS.items():
            if name is None:
                SAM2Transforms.postprocess_masks = self._timed(step, SAM2Transforms.postprocess_masks)
            else:
                setattr(generator_module, name, self._timed(step, getattr(generator_module, name)))

    def _timed(self, step, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[step] += time.perf_counter() - start
        return timed


def run(label: str, generator, image: np.ndarray, timers: list) -> dict:
    for timer in timers:
        timer.totals.clear()
    start = time.perf_counter()
    masks = generator.generate(image)
    seconds = time.perf_counter() - start
    parts = {k: round(v, 2) for timer in timers for k, v in timer.totals.items()}
    line = dict(generator=label, seconds=round(seconds, 2), masks=len(masks), parts=parts)
    print(json.dumps(line), flush=True)
    return line


def encoder_seconds(net, image: np.ndarray, repeats: int = 3) -> float:
    predictor = ImagePredictor(net)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.set_image(image)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1-tiny")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    image, source = load_frame(width, height)
    net = build_model(args.model, checkpoint="seeded", device="cpu")
    meta = meta_network(args.model)
    print(json.dumps(dict(model=args.model, frame=source, size=[width, height], points_per_side=args.points_per_side,
                          threads=torch.get_num_threads())), flush=True)
    encoder = encoder_seconds(net, image)
    print(json.dumps(dict(image_encoder_seconds=round(encoder, 2))), flush=True)
    ours_timer = ComponentTimer(net)
    meta_timers = [ComponentTimer(meta), MetaStepTimer()] if meta is not None else []
    with torch.inference_mode():
        for name in args.settings:
            settings = dict(points_per_side=args.points_per_side, **SETTINGS[name])
            ours = run(f"ours ({name})", AutomaticMaskGenerator(net, **settings), image, [ours_timer])
            ratios = dict(settings=name, ours_over_encoder=round(ours["seconds"] / encoder, 2))
            if meta is not None:
                from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

                theirs = run(f"SAM 2 ({name})", SAM2AutomaticMaskGenerator(meta, **settings), image, meta_timers)
                ratios["ours_over_sam2"] = round(ours["seconds"] / theirs["seconds"], 2)
            print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
    main()
