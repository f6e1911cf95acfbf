"""Write the app's example clips: short videos of moving shapes that the project draws itself, and a still
image (the first frame of shapes.mp4, drawn, not decoded) for the still-image API's examples.

    python examples/make_examples.py            # writes examples/*.mp4 (about 30 KB in all) and examples/*.png

Each clip is a few seconds of simple shapes on a textured background, H.264 in MP4 through PyAV
(`sam2_plus.media.encode.VideoWriter`), so the files are small and every browser plays them.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_plus.media.encode import EncodeSettings, VideoWriter  # noqa: E402

HERE = Path(__file__).resolve().parent
FPS = 12


@dataclass(frozen=True)
class Clip:
    name: str
    width: int
    height: int
    frames: int
    draw: Callable[[np.ndarray, float], None]  # draws frame t in [0, 1] onto the background


def background(width: int, height: int, seed: int) -> np.ndarray:
    """A vertical gradient with a faint grid and a few static blobs (texture for the image encoder)."""
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    top, bottom = np.array([70, 90, 120]), np.array([160, 150, 130])
    image = (top + (bottom - top) * rows).repeat(width, axis=1).astype(np.uint8)
    for x in range(0, width, 32):
        cv2.line(image, (x, 0), (x, height - 1), (90, 105, 125), 1)
    for y in range(0, height, 32):
        cv2.line(image, (0, y), (width - 1, y), (90, 105, 125), 1)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, center, int(rng.integers(6, 14)), tuple(int(c) for c in rng.integers(90, 200, 3)), -1,
                   cv2.LINE_AA)
    return image


def draw_shapes(image: np.ndarray, t: float) -> None:
    """A red disc crossing left to right and a blue square moving diagonally."""
    h, w = image.shape[:2]
    cv2.circle(image, (int(30 + t * (w - 60)), int(h * 0.35 + 15 * math.sin(6 * t))), 22, (220, 40, 50), -1,
               cv2.LINE_AA)
    x, y = int(w * 0.75 - t * w * 0.5), int(h * 0.45 + t * h * 0.35)
    cv2.rectangle(image, (x - 20, y - 20), (x + 20, y + 20), (40, 80, 210), -1, cv2.LINE_AA)


def draw_bounce(image: np.ndarray, t: float) -> None:
    """A yellow ball bouncing and a green triangle turning while it slides."""
    h, w = image.shape[:2]
    phase = (t * 3) % 1.0
    y = int(h - 30 - (h - 80) * 4 * phase * (1 - phase))
    cv2.circle(image, (int(40 + t * (w - 80)), y), 18, (240, 210, 40), -1, cv2.LINE_AA)
    cx, cy, angle = w * (0.8 - 0.5 * t), h * 0.3, 2 * math.pi * t
    corners = [(cx + 26 * math.cos(angle + k * 2 * math.pi / 3), cy + 26 * math.sin(angle + k * 2 * math.pi / 3))
               for k in range(3)]
    cv2.fillPoly(image, [np.array(corners, np.int32)], (40, 170, 70), cv2.LINE_AA)


def draw_crossing(image: np.ndarray, t: float) -> None:
    """Two discs that cross; the orange one passes in front of the purple one."""
    h, w = image.shape[:2]
    cv2.circle(image, (int(w * (0.85 - 0.7 * t)), h // 2), 24, (140, 50, 170), -1, cv2.LINE_AA)
    cv2.circle(image, (int(w * (0.15 + 0.7 * t)), h // 2 + 8), 20, (245, 130, 40), -1, cv2.LINE_AA)


CLIPS = (
    Clip("shapes.mp4", 320, 240, 36, draw_shapes),
    Clip("bounce.mp4", 320, 240, 40, draw_bounce),
    Clip("crossing.mp4", 320, 180, 30, draw_crossing),
)

IMAGES = (("shapes.png", 0),)  # (name, the clip of CLIPS it is the first frame of)


def write_clip(clip: Clip, folder: Path, seed: int) -> Path:
    path = folder / clip.name
    base = background(clip.width, clip.height, seed)
    settings = EncodeSettings(crf=28, preset="medium", threads=1)  # one thread: the same bytes every time
    with VideoWriter(path, fps=FPS, width=clip.width, height=clip.height, settings=settings) as writer:
        for index in range(clip.frames):
            frame = base.copy()
            clip.draw(frame, index / max(clip.frames - 1, 1))
            writer.write(frame)
    return path


def write_image(name: str, clip_index: int, folder: Path) -> Path:
    """The first frame of CLIPS[clip_index] as a PNG (the clip's seed is its index, as in main)."""
    clip = CLIPS[clip_index]
    frame = background(clip.width, clip.height, clip_index)
    clip.draw(frame, 0.0)
    path = folder / name
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the clips (default: examples/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, clip in enumerate(CLIPS):
        path = write_clip(clip, args.out, seed)
        print(f"{path}: {clip.frames} frames, {clip.width}x{clip.height}, {path.stat().st_size / 1024:.0f} KB")
    for name, clip_index in IMAGES:
        path = write_image(name, clip_index, args.out)
        print(f"{path}: the first frame of {CLIPS[clip_index].name}, {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
