"""Encoding: browser-friendly H.264 MP4 (yuv420p, faststart), size, timing and audio."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media_clips import mean_abs_error, pattern_frame, shared_video, write_clip

from sam2_plus.media.decode import FrameSource, probe
from sam2_plus.media.encode import VideoWriter, is_faststart, mp4_top_level_boxes


def _video_stream_facts(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        return {
            "codec": context.name,
            "pix_fmt": context.pix_fmt,
            "size": (context.width, context.height),
            "rate": stream.average_rate,
            "frames": stream.frames,
            "audio": [s.codec_context.name for s in container.streams.audio],
            "format": container.format.name,
        }


def test_odd_size_is_padded_to_even_and_stream_is_browser_friendly(tmp_path):
    width, height = 321, 243
    frames = [pattern_frame(i, height, width) for i in range(8)]
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=30000 / 1001, width=width, height=height) as writer:
        assert (writer.encoded_width, writer.encoded_height) == (322, 244)
        for frame in frames:
            writer.write(frame)
    facts = _video_stream_facts(path)
    assert facts["codec"] == "h264"
    assert facts["pix_fmt"] == "yuv420p"
    assert facts["size"] == (322, 244)
    assert facts["rate"] == Fraction(30000, 1001)
    assert facts["frames"] == 8
    assert "mp4" in facts["format"]
    boxes = mp4_top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert is_faststart(path)
    with FrameSource(path) as source:
        for i, frame in enumerate(frames):
            decoded = source[i]
            assert mean_abs_error(decoded[:height, :width], frame) < 6.0
            # padding repeats the last column/row instead of adding a black line
            assert mean_abs_error(decoded[:height, width], frame[:, width - 1]) < 6.0
            assert mean_abs_error(decoded[height, :width], frame[height - 1]) < 6.0


def test_colours_round_trip_closely(tmp_path):
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (128, 64, 200)]
    path = tmp_path / "colors.mp4"
    with VideoWriter(path, fps=10, width=64, height=48) as writer:
        for color in colors:
            writer.write(np.full((48, 64, 3), color, np.uint8))
    with FrameSource(path) as source:
        for i, color in enumerate(colors):
            assert np.abs(source[i][24, 32].astype(int) - color).max() <= 4


def test_explicit_timestamps_give_variable_frame_rate(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.41, 0.9]
    path = tmp_path / "vfr.mp4"
    with VideoWriter(path, fps=10, width=32, height=32) as writer:
        for i, t in enumerate(times):
            writer.write(pattern_frame(i, 32, 32), timestamp=t)
    with FrameSource(path) as source:
        np.testing.assert_allclose(source.timestamps, times, atol=1e-3)


def test_bad_input_is_rejected(tmp_path):
    with VideoWriter(tmp_path / "x.mp4", fps=10, width=32, height=32) as writer:
        with pytest.raises(ValueError, match="32x32x3 uint8"):
            writer.write(np.zeros((32, 30, 3), np.uint8))
        with pytest.raises(ValueError, match="32x32x3 uint8"):
            writer.write(np.zeros((32, 32, 3), np.float32))
        writer.write(np.zeros((32, 32, 3), np.uint8), timestamp=0.5)
        with pytest.raises(ValueError, match="increase"):
            writer.write(np.zeros((32, 32, 3), np.uint8), timestamp=0.2)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "y.mp4", fps=0, width=32, height=32)


@pytest.mark.parametrize("suffix, audio_codec", [(".mp4", "aac"), (".webm", "libopus")])
def test_source_audio_is_muxed(tmp_path, suffix, audio_codec):
    frames = [pattern_frame(i, 48, 64) for i in range(20)]
    video_codec = "libx264" if suffix == ".mp4" else "libvpx-vp9"
    source = write_clip(tmp_path / f"with_audio{suffix}", frames, fps=10, codec=video_codec, audio_codec=audio_codec)
    assert probe(source).has_audio
    path = tmp_path / "out.mp4"
    with FrameSource(source) as frames_in:
        with VideoWriter(path, fps=10, width=64, height=48, audio_source=source) as writer:
            for i in range(len(frames_in)):
                writer.write(frames_in[i])
    facts = _video_stream_facts(path)
    assert facts["audio"] == ["aac"]  # AAC is copied, Opus re-encoded to AAC
    assert is_faststart(path)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        audio_seconds = sum(float(p.duration * p.time_base) for p in container.demux(audio) if p.size)
    assert audio_seconds == pytest.approx(2.0, abs=0.1)  # cut to the 20 frames at 10 fps
    assert probe(path).num_frames == 20


def test_reencoding_a_real_video_keeps_quality(tmp_path):
    path = shared_video("bedroom.mp4")
    out = tmp_path / "bedroom_copy.mp4"
    with FrameSource(path) as source:
        info = source.info
        originals = [source[i].copy() for i in range(6)]
    with VideoWriter(out, fps=info.fps, width=info.width, height=info.height) as writer:
        for frame in originals:
            writer.write(frame)
    with FrameSource(out) as copy:
        for i, frame in enumerate(originals):
            error = (copy[i].astype(np.float64) - frame) ** 2
            psnr = 10 * np.log10(255**2 / error.mean())
            assert psnr > 35, f"frame {i}: PSNR {psnr:.1f} dB"
    assert probe(out).fps == pytest.approx(30.0)


def test_audio_offset_starts_the_audio_later_in_the_source(tmp_path):
    frames = [pattern_frame(i, 48, 64) for i in range(20)]
    source = write_clip(tmp_path / "with_audio.mp4", frames, fps=10, audio_codec="aac")
    path = tmp_path / "tail.mp4"
    with VideoWriter(path, fps=10, width=64, height=48, audio_source=source, audio_offset=1.5) as writer:
        for frame in frames[15:]:
            writer.write(frame)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        packets = [p for p in container.demux(audio) if p.size]
        first = float(packets[0].pts * packets[0].time_base)
        seconds = sum(float(p.duration * p.time_base) for p in packets)
    assert abs(first) < 0.03
    assert seconds == pytest.approx(0.5, abs=0.05)  # 5 frames at 10 fps; the source's last 0.5 s
