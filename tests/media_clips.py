"""Small media files generated at test time (PyAV), and helpers to compare frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"

# Colours that survive every codec used here (including GIF's 3-3-2 bit palette) exactly or nearly.
BLOCK_COLORS = np.array(
    [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255), (0, 0, 0)],
    dtype=np.uint8,
)


def shared_video(name: str) -> Path:
    import pytest

    path = SHARED_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"shared test video {path} is not present")
    return path


def pattern_frame(index: int, height: int, width: int) -> np.ndarray:
    """2x4 flat blocks: blocks 0-6 spell ``index`` in binary (white = 1), block 7 is a colour.

    Distinct for indices 0..127; asymmetric, so rotations and flips show.
    """
    frame = np.empty((height, width, 3), dtype=np.uint8)
    for block in range(8):
        r, c = divmod(block, 4)
        if block < 7:
            color = (255, 255, 255) if (index >> block) & 1 else (0, 0, 0)
        else:
            color = BLOCK_COLORS[index % 6]
        frame[r * height // 2 : (r + 1) * height // 2, c * width // 4 : (c + 1) * width // 4] = color
    return frame


def closest_index(frame: np.ndarray, candidates: list[np.ndarray]) -> int:
    errors = [np.abs(frame.astype(np.int16) - c.astype(np.int16)).mean() for c in candidates]
    return int(np.argmin(errors))


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int | Fraction = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    audio_codec: str | None = None,
    options: dict | None = None,
    frame_format: str = "rgb24",
) -> Path:
    """Encode ``frames`` (RGB, or as ``frame_format`` says: "gray", "rgba") into ``path`` (container from the suffix)."""
    height, width = frames[0].shape[:2]
    container = av.open(str(path), "w", options=options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    if time_base is not None:
        stream.codec_context.time_base = time_base
    if gop is not None:
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"keyint": str(gop), "min-keyint": str(gop), "scenecut": "0"}
    if bframes is not None:
        stream.codec_context.max_b_frames = bframes
    if rotation is not None:
        stream.set_display_rotation(rotation)
    audio = None
    if audio_codec is not None:
        audio = container.add_stream(audio_codec, rate=48000)
        audio.layout = "stereo"
    for i, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(frame, format=frame_format)
        if pts is not None:
            video_frame.pts = pts[i]
            video_frame.time_base = time_base
        for packet in stream.encode(video_frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio is not None:
        _write_tone(container, audio, seconds=len(frames) / float(fps))
    container.close()
    return path


def write_audio_only(path: Path, codec: str = "aac", seconds: float = 1.0) -> Path:
    container = av.open(str(path), "w")
    audio = container.add_stream(codec, rate=48000)
    audio.layout = "stereo"
    _write_tone(container, audio, seconds)
    container.close()
    return path


def _write_tone(container, stream, seconds: float) -> None:
    rate = 48000
    total = int(rate * seconds)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
    for start in range(0, total, 960):
        chunk = tone[start : start + 960]
        frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def decode_all_with_pyav(path: Path) -> list[np.ndarray]:
    """Reference decode: every frame in order, straight from PyAV (no rotation)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
