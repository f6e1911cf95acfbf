"""Mutated bytes of small valid videos: probe gives a valid VideoInfo or MediaError, never another
exception, never a hang; a source that probes reads every frame at its announced size, or raises MediaError.

Bounded and reproducible: a fixed number of derandomized examples per container, each under a time limit.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media_clips import pattern_frame, write_clip

from sam2_plus.media.decode import FrameSource, MediaError, VideoInfo, probe

SECONDS_PER_EXAMPLE = 20  # far above the ~0.05 s an example takes; only a hang gets near it
FUZZ_SETTINGS = settings()  # the profile of tests/conftest.py: 40 examples, 400 with CI=true; SECONDS_PER_EXAMPLE
# bounds each example instead of a deadline


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    def give_up(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def valid_clips(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz_sources")
    frames = [pattern_frame(i, 24, 32) for i in range(6)]
    paths = {
        "mp4": write_clip(folder / "clip.mp4", frames, gop=3, bframes=1),
        "faststart.mp4": write_clip(folder / "fast.mp4", frames, gop=3, options={"movflags": "+faststart"}),
        "webm": write_clip(folder / "clip.webm", frames, codec="libvpx-vp9"),
    }
    return {kind: path.read_bytes() for kind, path in paths.items()}


# Offsets are drawn unbounded and taken modulo the current length, so every edit lands in the file.
_offset = st.integers(min_value=0, max_value=2**20)
_edits = st.one_of(
    st.tuples(st.just("flip"), _offset, st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("set"), _offset, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), _offset),
    st.tuples(st.just("delete"), _offset, st.integers(min_value=1, max_value=64)),
    st.tuples(st.just("zero"), _offset, st.integers(min_value=1, max_value=256)),
    st.tuples(st.just("repeat"), _offset, st.integers(min_value=1, max_value=256)),
)


def mutate(data: bytes, edits: list[tuple]) -> bytes:
    result = bytearray(data)
    for kind, offset, *args in edits:
        if not result:
            break
        at = offset % len(result)
        if kind == "flip":
            result[at] ^= args[0]
        elif kind == "set":
            result[at : at + len(args[0])] = args[0]
        elif kind == "truncate":
            del result[at:]
        elif kind == "delete":
            del result[at : at + args[0]]
        elif kind == "zero":
            result[at : at + args[0]] = bytes(len(result[at : at + args[0]]))
        else:
            result[at:at] = result[at : at + args[0]]
    return bytes(result)


def assert_valid_info(info: VideoInfo) -> None:
    assert info.kind == "video"
    assert info.num_frames >= 1 and info.width >= 1 and info.height >= 1
    assert np.isfinite(info.fps) and info.fps > 0
    assert np.isfinite(info.duration) and info.duration > 0
    assert info.rotation in (0, 90, 180, 270)


def read_every_frame(path: Path, info: VideoInfo) -> None:
    """Forward, then backward with a tiny cache (seeks): every frame has the announced size."""
    with FrameSource(path, max_cached_frames=2) as source:
        assert len(source) == info.num_frames and len(source.timestamps) == info.num_frames
        assert np.all(np.diff(source.timestamps) > 0)
        for index in list(range(len(source))) + list(reversed(range(len(source)))):
            frame = source[index]
            assert frame.shape == (info.height, info.width, 3) and frame.dtype == np.uint8


def probe_mutated(folder: Path, suffix: str, data: bytes) -> None:
    path = folder / f"mutated{suffix}"
    path.write_bytes(data)
    with time_limit(SECONDS_PER_EXAMPLE):
        try:
            info = probe(path)
        except MediaError as error:
            assert str(error).startswith(path.name), error
            return
        assert_valid_info(info)
        try:
            read_every_frame(path, info)
        except MediaError:
            pass


@pytest.mark.parametrize("kind", ["mp4", "faststart.mp4", "webm"])
def test_mutated_video_bytes_give_video_info_or_media_error(valid_clips, tmp_path_factory, kind):
    folder = tmp_path_factory.mktemp("fuzz")
    suffix = Path(kind).suffix or f".{kind}"
    original = valid_clips[kind]

    @FUZZ_SETTINGS
    @given(edits=st.lists(_edits, min_size=1, max_size=4))
    def check(edits):
        probe_mutated(folder, suffix, mutate(original, edits))

    check()


@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_every_truncation_point_gives_video_info_or_media_error(valid_clips, tmp_path, kind):
    original = valid_clips[kind]
    for length in range(0, len(original), max(1, len(original) // 60)):
        probe_mutated(tmp_path, f".{kind}", original[:length])
