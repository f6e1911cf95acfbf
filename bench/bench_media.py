"""Milliseconds per frame of the media pipeline: render (1280x720, 3 objects), decode, encode.

    python bench/bench_media.py [video]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_plus.media.decode import FrameSource  # noqa: E402
from sam2_plus.media.encode import VideoWriter  # noqa: E402
from sam2_plus.media.export import FrameRecord  # noqa: E402
from sam2_plus.media.render import TrackRenderer  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "01_dog.mp4"


def _ms(seconds: float, count: int) -> str:
    return f"{seconds / count * 1000:.2f} ms/frame"


def bench_render(repeats: int = 50) -> None:
    height, width = 720, 1280
    yy, xx = np.mgrid[:height, :width]
    discs = [(400, 300, 150), (800, 400, 200), (1000, 200, 80)]
    masks = np.stack([(xx - cx) ** 2 + (yy - cy) ** 2 < r * r for cx, cy, r in discs])
    frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    for tasks in ({1: "mask", 2: "mask", 3: "mask"}, {1: "mask", 2: "box", 3: "point"}):
        renderer = TrackRenderer(tasks)
        points = [np.array([[400 + i, 300], [800, 400], [1000, 200 + i]]) for i in range(repeats)]
        results = [FrameRecord(i, [1, 2, 3], masks, None, points[i], [1] * 3, [1] * 3) for i in range(repeats)]
        start = time.perf_counter()
        for result in results:
            renderer.render(frame, result)
        label = "+".join(tasks.values())
        print(f"render 1280x720 {label}: {_ms(time.perf_counter() - start, repeats)}")


def bench_decode_encode(video: Path, count: int = 120) -> None:
    with FrameSource(video) as source:
        count = min(count, len(source))
        start = time.perf_counter()
        frames = [source[i] for i in range(count)]
        print(f"decode forward {video.name}: {_ms(time.perf_counter() - start, count)}")
    with FrameSource(video) as source:
        start = time.perf_counter()
        for i in reversed(range(count)):
            source[i]
        print(f"decode reverse {video.name}: {_ms(time.perf_counter() - start, count)}")
        info = source.info
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        with VideoWriter(Path(folder) / "out.mp4", fps=info.fps, width=info.width, height=info.height) as writer:
            for frame in frames:
                writer.write(frame)
        print(f"encode {info.width}x{info.height}: {_ms(time.perf_counter() - start, count)}")


if __name__ == "__main__":
    bench_render()
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VIDEO
    if video.exists():
        bench_decode_encode(video)
