"""Effect video against the plain overlay: render + H.264 encode per frame, and the cut-out encoders.

    python bench/bench_effects.py [--frames 48] [--size 1280x720] [--repeats 3]

Each row renders and encodes the same frames (3 moving objects) into an MP4, as the job's writer thread does:
the overlay with ``TrackRenderer``, each effect setting with ``EffectRenderer``. Runs alternate between the
rows and the median of ``--repeats`` is kept, so load on a shared machine hits all rows alike. The issue's
budget: an effect video at most 1.3x the overlay's time. The cut-out rows add one encoder to the effect
video's work (compose with alpha + encode).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_plus.effects.outputs import PngSequenceWriter  # noqa: E402
from sam2_plus.effects.render import EffectRenderer  # noqa: E402
from sam2_plus.effects.settings import parse_effects  # noqa: E402
from sam2_plus.media.alpha import AlphaVideoWriter, alpha_encoder_available  # noqa: E402
from sam2_plus.media.encode import VideoWriter  # noqa: E402
from sam2_plus.media.export import FrameRecord  # noqa: E402
from sam2_plus.media.render import TrackRenderer  # noqa: E402

TASKS = {1: "mask", 2: "mask", 3: "mask"}
OVERLAY = "overlay (TrackRenderer)"
EFFECTS = {
    "objects blur / pixelate / fill": {"objects": {"1": "blur", "2": "pixelate", "3": "fill"}},
    "background blur": {"background": "blur"},
    "background blur, feather 3": {"background": "blur", "feather": 3},
    "background grayscale + object blur": {"objects": {"1": "blur"}, "background": "grayscale"},
    "background erase, feather 2": {"background": "erase", "feather": 2},
    "spotlight + outline": {"objects": {"1": "outline", "2": "outline", "3": "outline"}, "background": "spotlight"},
}
CUTOUT_EFFECTS = {"background": "erase", "feather": 2}


def clip(frames: int, height: int, width: int) -> tuple[list[np.ndarray], list[FrameRecord]]:
    """Frames with detail everywhere (smoothed noise, panning) and three discs moving across them."""
    base = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (height, width + 4 * frames, 3), np.uint8),
                            (0, 0), 1.5)
    yy, xx = np.mgrid[:height, :width]
    images, results = [], []
    for i in range(frames):
        images.append(np.ascontiguousarray(base[:, 4 * i:4 * i + width]))
        discs = [(0.3 * width + 3 * i, 0.4 * height, 0.2 * height), (0.6 * width - 2 * i, 0.55 * height,
                 0.28 * height), (0.8 * width, 0.3 * height + i, 0.11 * height)]
        masks = np.stack([(xx - cx) ** 2 + (yy - cy) ** 2 < r * r for cx, cy, r in discs])
        results.append(FrameRecord(i, [1, 2, 3], masks, None, None, [1.0] * 3, [True] * 3))
    return images, results


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # seconds of CPU in this process, every thread (x264's too): steadier on a loaded machine


def measure(work: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def encode_video(folder: Path, images, results, render) -> None:
    """Render and encode every frame into an MP4."""
    height, width = images[0].shape[:2]
    with VideoWriter(folder / "out.mp4", fps=30, width=width, height=height) as writer:
        for image, result in zip(images, results):
            writer.write(render(image, result))


def render_only(images, results, render) -> None:
    for image, result in zip(images, results):
        render(image, result)


def write_cutout(folder: Path, images, results, kind: str) -> None:
    """Compose with alpha and write one cut-out (webm, mov or png)."""
    height, width = images[0].shape[:2]
    renderer = EffectRenderer(parse_effects(CUTOUT_EFFECTS), TASKS, with_alpha=True)
    if kind == "png":
        pngs = PngSequenceWriter(folder / "cutout")
        for image, result in zip(images, results):
            pngs.write(result.frame_idx, renderer.compose(image, result))
        return
    with AlphaVideoWriter(folder / f"cutout.{kind}", kind, fps=30, width=width, height=height) as writer:
        for image, result in zip(images, results):
            writer.write(renderer.compose(image, result).rgba())


def run_rows(folder: Path, images, results, repeats: int) -> tuple[dict, dict]:
    """Timings of every row (render + encode) and of its rendering alone, rows alternating in each repeat."""
    rows = {OVERLAY: TrackRenderer(TASKS).render}
    rows.update({name: EffectRenderer(parse_effects(spec), TASKS).render for name, spec in EFFECTS.items()})
    cutouts = [kind for kind in ("webm", "mov") if alpha_encoder_available(kind)] + ["png"]
    times: dict[str, list[Timing]] = {name: [] for name in [*rows, *(f"cut-out {k}" for k in cutouts)]}
    renders: dict[str, list[Timing]] = {name: [] for name in rows}
    encode_video(folder, images[:8], results[:8], rows[OVERLAY])  # warm-up, not counted
    for _ in range(repeats):
        for name, render in rows.items():
            times[name].append(measure(lambda: encode_video(folder, images, results, render)))
            renders[name].append(measure(lambda: render_only(images, results, render)))
        for kind in cutouts:
            times[f"cut-out {kind}"].append(measure(lambda: write_cutout(folder, images, results, kind)))
    return times, renders


def median(timings: list[Timing], field: str) -> float:
    return statistics.median(getattr(t, field) for t in timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    images, results = clip(args.frames, height, width)
    with tempfile.TemporaryDirectory() as tmp:
        times, renders = run_rows(Path(tmp), images, results, args.repeats)
    wall, cpu = median(times[OVERLAY], "wall"), median(times[OVERLAY], "cpu")
    ms = 1000 / args.frames
    print(f"{width}x{height}, {args.frames} frames, 3 objects, median of {args.repeats}; ms per frame "
          "(render + H.264 encode; cut-outs: compose with alpha + their encoder)")
    print(f"  {'':<36} {'wall':>7} {'x overlay':>9} {'CPU':>7} {'x overlay':>9} {'render only':>11}")
    for name, values in times.items():
        render = f"{median(renders[name], 'wall') * ms:11.1f}" if name in renders else ""
        print(f"  {name:<36} {median(values, 'wall') * ms:7.1f} {median(values, 'wall') / wall:9.2f} "
              f"{median(values, 'cpu') * ms:7.1f} {median(values, 'cpu') / cpu:9.2f} {render}")


if __name__ == "__main__":
    main()
