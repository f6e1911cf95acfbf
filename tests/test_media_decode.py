"""Decoding: probing, frame accuracy across containers, seeking, rotation, timing, errors."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_clips import (
    closest_index,
    decode_all_with_pyav,
    mean_abs_error,
    pattern_frame,
    shared_video,
    write_audio_only,
    write_clip,
)
from PIL import Image

from sam2_plus.media.decode import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameSource,
    MediaError,
    natural_sort_key,
    probe,
    to_model_input,
)

CODEC_TOLERANCE = 8.0  # mean absolute error of a lossy round trip of flat blocks


def _pattern(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    return [pattern_frame(i, height, width) for i in range(count)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    frames = _pattern(24)
    return {
        "mp4": write_clip(folder / "gop.mp4", frames, gop=6, bframes=2),
        "mov": write_clip(folder / "clip.mov", frames[:12]),
        "mkv": write_clip(folder / "clip.mkv", frames[:12]),
        "webm": write_clip(folder / "clip.webm", frames[:12], codec="libvpx-vp9"),
        "avi": write_clip(folder / "clip.avi", frames[:12], codec="mpeg4", gop=4),
        "gif": write_clip(folder / "clip.gif", frames[:12], codec="gif", pix_fmt="rgb8"),
    }


# --------------------------------------------------------------------------- real videos


@pytest.mark.parametrize(
    "name, width, height, frames, fps",
    [("bedroom.mp4", 960, 540, 200, 30.0), ("01_dog.mp4", 1280, 720, 289, 30000 / 1001)],
)
def test_probe_shared_videos(name, width, height, frames, fps):
    info = probe(shared_video(name))
    assert (info.kind, info.width, info.height, info.num_frames) == ("video", width, height, frames)
    assert info.fps == pytest.approx(fps, rel=1e-6)
    assert info.duration == pytest.approx(frames / fps, rel=1e-3)
    assert info.codec == "h264" and info.rotation == 0


def test_shared_video_frames_match_reference_decoder():
    path = shared_video("bedroom.mp4")
    with av.open(str(path)) as container:
        reference = {}
        for i, frame in enumerate(container.decode(video=0)):
            if i in (0, 1, 57, 120):
                reference[i] = frame.to_ndarray(format="rgb24")
            if i == 120:
                break
    with FrameSource(path) as source:
        assert len(source) == 200
        for i in (120, 0, 57, 1):  # random order forces seeks
            np.testing.assert_array_equal(source[i], reference[i])
        assert source.timestamps[30] == pytest.approx(1.0)


# --------------------------------------------------------------------------- containers and access order


@pytest.mark.parametrize("kind", ["mp4", "mov", "mkv", "webm", "avi", "gif"])
def test_every_frame_decodes_to_the_right_picture(clips, kind):
    path = clips[kind]
    info = probe(path)
    expected = _pattern(info.num_frames)
    assert info.num_frames == (24 if kind == "mp4" else 12)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10.0)
    with FrameSource(path) as source:
        for i in range(len(source)):
            frame = source[i]
            assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
            assert closest_index(frame, expected) == i
            assert mean_abs_error(frame, expected[i]) < CODEC_TOLERANCE
        np.testing.assert_allclose(source.timestamps, np.arange(len(source)) / 10.0, atol=1e-6)


@pytest.mark.parametrize("kind", ["mp4", "avi", "gif"])
def test_reverse_and_random_access_equal_forward_decoding(clips, kind):
    path = clips[kind]
    with FrameSource(path) as forward_source:
        forward = [forward_source[i].copy() for i in range(len(forward_source))]
    count = len(forward)
    # A tiny cache forces window refills and seeks on every GOP boundary.
    with FrameSource(path, max_cached_frames=3) as source:
        assert source.cache_capacity == 3
        for i in reversed(range(count)):
            np.testing.assert_array_equal(source[i], forward[i])
        order = np.random.default_rng(7).permutation(count)
        for i in order:
            np.testing.assert_array_equal(source[int(i)], forward[i])
        np.testing.assert_array_equal(source[-1], forward[-1])


def test_gif_frames_equal_the_reference_decoder(clips):
    # GIF decodes to BGRA (palette with alpha); opaque pixels must come through unchanged.
    reference = decode_all_with_pyav(clips["gif"])
    with FrameSource(clips["gif"]) as source:
        assert len(source) == len(reference)
        for i in range(len(source)):
            np.testing.assert_array_equal(source[i], reference[i])


def test_returned_frames_are_read_only(clips):
    with FrameSource(clips["mp4"]) as source:
        frame = source[0]
        with pytest.raises(ValueError):
            frame[0, 0] = 1


def test_index_errors(clips):
    with FrameSource(clips["mkv"]) as source:
        with pytest.raises(IndexError):
            source[12]
        with pytest.raises(IndexError):
            source[-13]
        with pytest.raises(TypeError):
            source[1.0]


def test_max_frames_shows_only_the_first_frames(clips):
    full = probe(clips["mp4"])
    info = probe(clips["mp4"], max_frames=5)
    with FrameSource(clips["mp4"], max_frames=5) as source:
        assert len(source) == info.num_frames == source.info.num_frames == 5
        assert info.duration == pytest.approx(source.timestamps[4] + 1 / full.fps)
        assert source.timestamps.tolist() == probe_timestamps(clips["mp4"])[:5]
        assert closest_index(source[4], _pattern(24)) == 4
        with pytest.raises(IndexError):
            source[5]
    assert probe(clips["mp4"], max_frames=100) == full
    with pytest.raises(MediaError, match="max_frames must be a positive integer"):
        FrameSource(clips["mp4"], max_frames=0)


def probe_timestamps(path: Path) -> list[float]:
    with FrameSource(path) as source:
        return source.timestamps.tolist()


def test_memory_stays_flat_while_reading_a_long_clip(tmp_path):
    height, width = 120, 160
    frames = [pattern_frame(i % 100, height, width) for i in range(150)]
    path = write_clip(tmp_path / "long.mp4", frames, fps=25)
    frame_bytes = height * width * 3
    with FrameSource(path, max_cached_frames=4) as source:
        source[0]
        tracemalloc.start()
        try:
            for i in range(len(source)):
                source[i]
            for i in reversed(range(len(source))):
                source[i]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    whole_video = len(frames) * frame_bytes
    assert peak < 12 * frame_bytes, f"peak {peak} bytes while the whole video is {whole_video}"


# --------------------------------------------------------------------------- geometry and timing


def test_odd_frame_size(tmp_path):
    frames = [pattern_frame(i, 243, 321) for i in range(5)]
    path = write_clip(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p")
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (321, 243, 5)
    with FrameSource(path) as source:
        for i in range(5):
            assert source[i].shape == (243, 321, 3)
            assert mean_abs_error(source[i], frames[i]) < CODEC_TOLERANCE


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, degrees):
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write rotation metadata (Stream.set_display_rotation)")
    frames = [pattern_frame(i, 32, 64) for i in range(3)]
    path = write_clip(tmp_path / f"rot{degrees}.mp4", frames, rotation=degrees)
    info = probe(path)
    assert info.rotation == degrees % 360
    turned = degrees % 180 != 0
    assert (info.width, info.height) == ((32, 64) if turned else (64, 32))
    with FrameSource(path) as source:
        for i in range(3):
            expected = np.rot90(frames[i], k=degrees // 90)  # counter-clockwise, as FFmpeg's autorotate
            assert source[i].shape == expected.shape
            assert mean_abs_error(source[i], expected) < CODEC_TOLERANCE
            assert source[i].flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_keeps_timestamps(tmp_path, suffix):
    pts_ms = [0, 100, 150, 400, 410, 420, 800, 900, 1000, 1500]
    frames = [pattern_frame(i, 48, 64) for i in range(len(pts_ms))]
    path = write_clip(tmp_path / f"vfr{suffix}", frames, pts=pts_ms, time_base=Fraction(1, 1000))
    with FrameSource(path) as source:
        assert len(source) == len(pts_ms)
        np.testing.assert_allclose(source.timestamps, np.array(pts_ms) / 1000.0, atol=1e-6)
        for i in reversed(range(len(source))):
            assert closest_index(source[i], frames) == i
    info = probe(path)
    assert info.duration > 1.5


def test_single_frame_video(tmp_path):
    path = write_clip(tmp_path / "one.mp4", [pattern_frame(5, 48, 64)])
    info = probe(path)
    assert info.num_frames == 1
    with FrameSource(path) as source:
        assert len(source) == 1
        assert mean_abs_error(source[0], pattern_frame(5, 48, 64)) < CODEC_TOLERANCE
        np.testing.assert_array_equal(source.timestamps, [0.0])


# --------------------------------------------------------------------------- images and arrays


def test_frame_folder_is_naturally_sorted_and_exact(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = [pattern_frame(i, 30, 40) for i in range(12)]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame{i}.png")  # frame10 must come after frame9
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"junk")
    info = probe(folder)
    assert (info.kind, info.num_frames, info.width, info.height) == ("frames", 12, 40, 30)
    with FrameSource(folder, fps=12.5) as source:
        assert source.info.fps == 12.5
        for i in reversed(range(12)):
            np.testing.assert_array_equal(source[i], frames[i])
        assert source.timestamps[5] == pytest.approx(0.4)


def test_jpeg_folder(tmp_path):
    frames = [pattern_frame(i, 32, 48) for i in range(4)]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i:05d}.jpg", quality=95)
    with FrameSource(tmp_path) as source:
        assert len(source) == 4
        for i in range(4):
            assert mean_abs_error(source[i], frames[i]) < CODEC_TOLERANCE


def test_natural_sort_key():
    names = ["f10.png", "f2.png", "F1.png", "f2b.png"]
    assert sorted(names, key=natural_sort_key) == ["F1.png", "f2.png", "f2b.png", "f10.png"]


def test_frame_folder_with_mixed_sizes_is_rejected(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "0.png")
    Image.new("RGB", (41, 30)).save(tmp_path / "1.png")
    with pytest.raises(MediaError, match=r"1\.png is 41x30, but 0\.png is 40x30"):
        probe(tmp_path)


def test_empty_folder_is_rejected(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(MediaError, match="no JPEG or PNG frames"):
        probe(tmp_path)


def test_single_image_sources(tmp_path):
    rgb = pattern_frame(3, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    info = probe(tmp_path / "rgb.png")
    assert (info.kind, info.num_frames, info.width, info.height) == ("image", 1, 30, 20)
    with FrameSource(tmp_path / "rgb.png") as source:
        np.testing.assert_array_equal(source[0], rgb)

    grey = np.arange(600, dtype=np.uint8).reshape(20, 30)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    with FrameSource(tmp_path / "grey.png") as source:
        np.testing.assert_array_equal(source[0], np.repeat(grey[:, :, None], 3, axis=2))

    rgba = np.concatenate([np.full((20, 30, 3), 200, np.uint8), np.zeros((20, 30, 1), np.uint8)], axis=2)
    rgba[:10, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    with FrameSource(tmp_path / "alpha.png") as source:
        assert (source[0][:10] == 200).all() and (source[0][10:] == 0).all()  # transparent -> black

    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.save(tmp_path / "palette.png")
    with FrameSource(tmp_path / "palette.png") as source:
        np.testing.assert_array_equal(source[0], np.asarray(palette.convert("RGB")))


def test_jpeg_exif_orientation_is_applied(tmp_path):
    rgb = pattern_frame(3, 24, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    Image.fromarray(rgb).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    info = probe(tmp_path / "turned.jpg")
    assert (info.width, info.height) == (24, 40)
    with FrameSource(tmp_path / "turned.jpg") as source:
        assert mean_abs_error(source[0], np.rot90(rgb, k=-1)) < CODEC_TOLERANCE
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "turned.jpg").rename(folder / "0.jpg")
    assert probe(folder).size == (40, 24)


def test_array_sources():
    frames = [pattern_frame(i, 10, 12) for i in range(3)]
    with FrameSource(frames, fps=5) as source:
        assert source.info.kind == "arrays" and len(source) == 3 and source.info.fps == 5
        np.testing.assert_array_equal(source[2], frames[2])
        np.testing.assert_allclose(source.timestamps, [0, 0.2, 0.4])
    with FrameSource(np.stack(frames)) as source:
        np.testing.assert_array_equal(source[1], frames[1])
    with FrameSource([frames[0][:, :, 0]]) as source:  # greyscale is widened to RGB
        assert source[0].shape == (10, 12, 3)


@pytest.mark.parametrize(
    "frames, message",
    [
        ([], "empty"),
        ([np.zeros((4, 4, 3), np.float32)], "uint8"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], "different sizes"),
        ([np.zeros((4, 4, 2), np.uint8)], "HxWx3"),
        (["frame.png"], "expected a numpy array"),
    ],
)
def test_bad_array_sources(frames, message):
    with pytest.raises(MediaError, match=message):
        probe(frames)


# --------------------------------------------------------------------------- unusable files


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty \(0 bytes\)"):
        probe(tmp_path / "empty.mp4")


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "fake.mp4").write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="not a readable video file"):
        probe(tmp_path / "fake.mp4")


def test_corrupt_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(MediaError, match="not a readable image"):
        probe(tmp_path / "broken.png")


def test_audio_only_file(tmp_path):
    path = write_audio_only(tmp_path / "sound.mp4")
    with pytest.raises(MediaError, match="audio-only"):
        probe(path)


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_mp4(tmp_path, faststart):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(20)]  # noise: big packets
    options = {"movflags": "+faststart"} if faststart else {}
    path = write_clip(tmp_path / "whole.mp4", frames, options=options)
    data = path.read_bytes()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated|not a readable video"):
        probe(truncated)
    assert probe(path).num_frames == 20


# --------------------------------------------------------------------------- model input


def _reference_model_input(frame: np.ndarray, image_size: int):
    """The SAM 2 reference loader, step by step."""
    import torch

    img_np = np.array(Image.fromarray(frame).convert("RGB").resize((image_size, image_size))) / 255.0
    images = torch.zeros(1, 3, image_size, image_size, dtype=torch.float32)
    images[0] = torch.from_numpy(img_np).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    images -= mean
    images /= std
    return images[0]


@pytest.mark.parametrize("image_size", [1024, 64])
def test_model_input_matches_pil_reference_exactly(image_size):
    import torch

    frame = np.random.default_rng(3).integers(0, 256, (243, 321, 3), dtype=np.uint8)
    tensor = to_model_input(frame, image_size)
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (3, image_size, image_size)
    assert torch.equal(tensor, _reference_model_input(frame, image_size))
