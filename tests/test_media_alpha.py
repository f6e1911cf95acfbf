"""Video and PNGs with alpha (sam2_plus/media/alpha.py): odd sizes kept, timing as given, alpha back."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_plus.media.alpha import (
    AlphaVideoWriter, alpha_encoder_available, read_alpha_video, read_rgba_png, rgba_png,
)
from sam2_plus.media.decode import FrameSource, probe

H, W = 37, 51  # odd: neither format pads


def rgba_frames(count: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[:H, :W]
    frames = []
    for i in range(count):
        rgb = np.stack([xx * 5, yy * 6, np.full_like(xx, 40 * i)], axis=-1).astype(np.uint8)
        alpha = (((xx - 20 - 3 * i) ** 2 + (yy - 18) ** 2) < 100).astype(np.uint8) * 255
        frames.append(np.dstack([rgb, alpha]))
    return frames


@pytest.mark.parametrize("kind", ["webm", "mov"])
def test_alpha_video_round_trip(tmp_path, kind):
    if not alpha_encoder_available(kind):
        pytest.skip(f"this FFmpeg cannot write {kind} with alpha")
    frames = rgba_frames(4)
    path = tmp_path / f"cut.{kind}"
    with AlphaVideoWriter(path, kind, fps=10, width=W, height=H) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, timestamp=[0.0, 0.1, 0.3, 0.4][i])  # a gap: variable frame rate survives
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (W, H, 4)
    with FrameSource(path) as source:
        assert np.allclose(source.timestamps, [0.0, 0.1, 0.3, 0.4], atol=0.002)
    decoded = list(read_alpha_video(path))
    for got, want in zip(decoded, frames):
        alpha_error = np.abs(got[..., 3].astype(int) - want[..., 3])
        if kind == "mov":
            assert alpha_error.max() == 0
        else:
            assert alpha_error.mean() < 3
        opaque = want[..., 3] == 255
        assert np.abs(got[opaque][:, :3].astype(int) - want[opaque][:, :3]).mean() < 4


def test_alpha_writer_wants_rgba(tmp_path):
    with AlphaVideoWriter(tmp_path / "x.webm", "webm", fps=10, width=W, height=H) as writer:
        with pytest.raises(ValueError, match=f"frame must be a {H}x{W}x4 uint8 array"):
            writer.write(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown alpha video kind 'gif'; expected one of webm, mov"):
        AlphaVideoWriter(tmp_path / "x.gif", "gif", fps=10, width=W, height=H)


def test_rgba_png_is_lossless():
    frame = rgba_frames(1)[0]
    assert np.array_equal(read_rgba_png(rgba_png(frame)), frame)
