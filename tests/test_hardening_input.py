"""Issue 7, bad input at the library level: each unusable video or prompt gets a MediaError / PromptError
naming what is wrong and the allowed range, or a documented correction. (Zero-byte, truncated and text-as-MP4
files, one-frame, still-image, VFR, rotated and odd-size videos, audio-only files, swapped box corners and
frames out of range are covered in test_media_decode.py, test_prompts.py and test_predictor_api.py.)
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from media_clips import mean_abs_error, pattern_frame, write_clip
from PIL import Image

from sam2_plus.media import decode
from sam2_plus.media.decode import FrameSource, MediaError, MediaLimits, VideoInfo, probe
from sam2_plus.media.rle import encode_rle, parse_counts_string
from sam2_plus.prompts import PromptError, PromptLimits, parse_prompts

H, W = 48, 64
VIDEO = VideoInfo("video", 10, 24.0, W, H, 10 / 24)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """64x48, 24 frames at 10 fps: 2.4 s."""
    frames = [pattern_frame(i, H, W) for i in range(24)]
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames)


# --------------------------------------------------------------------------- media: limits


@pytest.mark.parametrize(
    "limits, message",
    [
        (MediaLimits(max_side=63), r"clip\.mp4: the frames are 64x48 pixels; at most 63 pixels on the longer side"),
        (MediaLimits(max_seconds=2.0), r"clip\.mp4: the video is 2\.40 s long; at most 2 s are allowed"),
        (MediaLimits(max_frames=23), r"clip\.mp4: the video has more than 23 frames; at most 23 are allowed"),
    ],
)
def test_video_above_a_limit_is_refused(clip, limits, message):
    with pytest.raises(MediaError, match=message):
        probe(clip, limits=limits)


def test_video_at_the_limits_is_accepted(clip):
    info = probe(clip, limits=MediaLimits(max_side=64, max_seconds=2.4, max_frames=24))
    assert (info.width, info.height, info.num_frames) == (W, H, 24)


def test_limits_apply_to_the_whole_video_not_only_to_max_frames(clip):
    with pytest.raises(MediaError, match="more than 10 frames; at most 10 are allowed"):
        probe(clip, max_frames=5, limits=MediaLimits(max_frames=10))


def test_long_video_is_refused_before_the_scan_ends(tmp_path):
    frames = [pattern_frame(i % 100, 16, 16) for i in range(1200)]  # 120 s at 10 fps
    path = write_clip(tmp_path / "long.mp4", frames, gop=300)
    with pytest.raises(MediaError, match=r"long\.mp4: the video has more than 50 frames; at most 50 are allowed"):
        probe(path, limits=MediaLimits(max_frames=50))
    with pytest.raises(MediaError, match=r"long\.mp4: the video is longer than 11\.\d s; at most 10 s are allowed"):
        probe(path, limits=MediaLimits(max_seconds=10))


@pytest.mark.parametrize("kind", ["image", "frames", "arrays"])
def test_limits_apply_to_images_folders_and_arrays(tmp_path, kind):
    frame = pattern_frame(1, 30, 70)
    source = {"image": tmp_path / "still.png", "frames": tmp_path, "arrays": [frame]}[kind]
    Image.fromarray(frame).save(tmp_path / "still.png")
    with pytest.raises(MediaError, match=r"70x30 pixels; at most 50 pixels on the longer side"):
        probe(source, limits=MediaLimits(max_side=50))
    assert probe(source, limits=MediaLimits(max_side=70)).width == 70


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_side": 0}, "max_side must be a positive integer or None, got 0"),
        ({"max_frames": 2.5}, "max_frames must be a positive integer or None, got 2.5"),
        ({"max_seconds": float("nan")}, "max_seconds must be a positive number or None, got nan"),
        ({"max_seconds": "60"}, "max_seconds must be a positive number or None, got '60'"),
    ],
)
def test_bad_limits_are_refused(kwargs, message):
    with pytest.raises(MediaError, match=message):
        MediaLimits(**kwargs)


def test_oversized_video_frames_are_refused_from_the_header(clip, monkeypatch):
    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 64 * 48 - 1)

    def must_not_decode(path):
        raise AssertionError("a frame was decoded before the size check")

    monkeypatch.setattr(decode, "_decode_first_frame", must_not_decode)
    with pytest.raises(MediaError, match=r"clip\.mp4: the frames are 64x48 = 3072 pixels; at most 3071 pixels"):
        probe(clip)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but holds no pixels: opening it reads only the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "width, height, message",
    [
        (12000, 12000, r"huge\.png: the frames are 12000x12000 = 144000000 pixels; at most 134217728 pixels"),
        (20000, 10000, r"huge\.png: the image is too large \(Image size \(200000000 pixels\) exceeds limit"),
    ],
)
def test_oversized_image_is_refused_without_decoding(tmp_path, width, height, message):
    (tmp_path / "huge.png").write_bytes(_png_header_only(width, height))
    started = time.perf_counter()
    with pytest.raises(MediaError, match=message):
        probe(tmp_path / "huge.png")
    with pytest.raises(MediaError, match=message):
        probe(tmp_path)  # as a frame folder
    assert time.perf_counter() - started < 5  # decoding 144 million pixels would take far longer


# --------------------------------------------------------------------------- media: formats that are not a video


@pytest.mark.parametrize(
    "text, message",
    [
        ("1\n00:00:01,000 --> 00:00:02,000\nhello\n", r"not a readable video file \(not a supported video format"),
        ("<!DOCTYPE html><html><body>not a video</body></html>\n" * 5, "not a readable video file"),
        ('{"objects": []}', "not a readable video file"),
    ],
    ids=["subtitles", "html", "json"],
)
def test_text_formats_named_mp4_are_refused(tmp_path, text, message):
    (tmp_path / "upload.mp4").write_text(text)
    with pytest.raises(MediaError, match=rf"upload\.mp4: {message}"):
        probe(tmp_path / "upload.mp4")


@pytest.mark.parametrize(
    "name, text",
    [
        ("playlist.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n"),
        ("list.mp4", "ffconcat version 1.0\nfile {target_name}\n"),
    ],
    ids=["hls-playlist", "concat-list"],
)
def test_lists_of_other_files_are_never_followed(clip, tmp_path, name, text):
    # FFmpeg would read the listed file and report its frames; it may be another user's upload.
    target = tmp_path / "other_users_video.mp4"
    target.write_bytes(clip.read_bytes())
    (tmp_path / name).write_text(text.format(target=target, target_name=target.name))
    with pytest.raises(MediaError, match=rf"{name}: not a readable video file \(not a supported video format"):
        probe(tmp_path / name)


def test_still_image_named_mp4_is_a_one_frame_video(tmp_path):
    frame = pattern_frame(3, 30, 40)
    Image.fromarray(frame).save(tmp_path / "photo.png")
    (tmp_path / "photo.mp4").write_bytes((tmp_path / "photo.png").read_bytes())
    info = probe(tmp_path / "photo.mp4")
    assert (info.kind, info.num_frames, info.width, info.height) == ("video", 1, 40, 30)
    with FrameSource(tmp_path / "photo.mp4") as source:
        np.testing.assert_array_equal(source[0], frame)


def test_postscript_named_png_never_reaches_ghostscript(tmp_path, monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"an external program was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    (tmp_path / "image.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 40 30\nshowpage\n")
    with pytest.raises(MediaError, match=r"image\.png: not a readable image \(cannot identify image file"):
        probe(tmp_path / "image.png")


# --------------------------------------------------------------------------- media: documented corrections


def test_grayscale_video_becomes_rgb_with_equal_channels(tmp_path):
    ramp = np.tile(np.arange(256, dtype=np.uint8).reshape(16, 16), (2, 3))
    path = write_clip(tmp_path / "grey.mkv", [ramp, ramp[::-1].copy()], codec="ffv1", pix_fmt="gray",
                      frame_format="gray")
    with FrameSource(path) as source:
        for index, grey in enumerate([ramp, ramp[::-1]]):
            assert source[index].shape == (32, 48, 3)
            np.testing.assert_array_equal(source[index], np.repeat(grey[:, :, None], 3, axis=2))


def _rgba_thirds() -> np.ndarray:
    """Orange, opaque / half transparent / fully transparent from left to right."""
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :8, 3], rgba[:, 8:16, 3], rgba[:, 16:, 3] = 255, 128, 0
    return rgba


@pytest.mark.parametrize("codec, pix_fmt", [("qtrle", "argb"), ("png", "rgba")])
def test_video_alpha_is_composited_on_black(tmp_path, codec, pix_fmt):
    rgba = _rgba_thirds()
    path = write_clip(tmp_path / f"alpha_{codec}.mov", [rgba, rgba], codec=codec, pix_fmt=pix_fmt,
                      frame_format="rgba")
    with FrameSource(path) as source:
        frame = source[1]
    assert frame.shape == (16, 24, 3)
    assert (frame[:, :8] == (200, 100, 50)).all()
    assert (frame[:, 8:16] == (100, 50, 25)).all()  # (colour * 128 + 127) // 255
    assert (frame[:, 16:] == 0).all()


def test_webm_alpha_is_dropped(tmp_path):
    rgba = _rgba_thirds()
    path = write_clip(tmp_path / "alpha.webm", [rgba, rgba], codec="libvpx-vp9", pix_fmt="yuva420p",
                      frame_format="rgba")
    with FrameSource(path) as source:
        assert mean_abs_error(source[1], rgba[..., :3]) < 4  # the colour planes, transparency ignored


@pytest.mark.parametrize("mode", ["LA", "P-transparent", "I;16", "1"])
def test_image_modes_become_rgb(tmp_path, mode):
    grey = np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) % 256
    alpha = np.where(np.arange(30) < 15, 255, 0).astype(np.uint8)[None, :].repeat(20, axis=0)
    if mode == "LA":
        image = Image.fromarray(np.stack([grey.astype(np.uint8), alpha], axis=2), mode="LA")
        expected_grey = np.where(alpha == 255, grey, 0)
    elif mode == "P-transparent":
        image = Image.fromarray(grey.astype(np.uint8), mode="L").convert("P")
        image.info["transparency"] = 0  # palette index 0 (grey 0) is transparent
        expected_grey = grey
    elif mode == "I;16":
        image = Image.frombytes("I;16", (30, 20), (grey * 257).astype("<u2").tobytes())
        expected_grey = grey
    else:
        image = Image.fromarray(grey.astype(np.uint8) >= 128)
        expected_grey = np.where(grey >= 128, 255, 0)
    image.save(tmp_path / "image.png", **({"transparency": 0} if mode == "P-transparent" else {}))
    with FrameSource(tmp_path / "image.png") as source:
        frame = source[0]
    np.testing.assert_array_equal(frame, np.repeat(expected_grey.astype(np.uint8)[:, :, None], 3, axis=2))


def test_odd_size_vp9_is_kept(tmp_path):
    frames = [pattern_frame(i, 47, 63) for i in range(3)]
    path = write_clip(tmp_path / "odd.webm", frames, codec="libvpx-vp9")
    assert probe(path).size == (47, 63)
    with FrameSource(path) as source:
        assert source[2].shape == (47, 63, 3) and mean_abs_error(source[2], frames[2]) < 12


# --------------------------------------------------------------------------- prompts


def _objects(count: int) -> dict:
    return {"objects": [{"id": i + 1, "task": "point", "prompts": [{"frame": 0, "points": [[5, 5]]}]}
                        for i in range(count)]}


def test_200_objects_are_refused_naming_the_limit_and_32_are_fine():
    with pytest.raises(PromptError, match="200 objects given; at most 32 are allowed"):
        parse_prompts(json.dumps(_objects(200)), VIDEO)
    assert len(parse_prompts(json.dumps(_objects(32)), VIDEO)) == 32 == PromptLimits().max_objects


@pytest.mark.parametrize(
    "prompt, message",
    [
        ({"points": [[W + 0.6, 5]]}, r"points\[0\]: x=64.6 is outside the frame \(width 64: allowed 0 to 64\)"),
        ({"points": [[5, -1]]}, r"points\[0\]: y=-1 is outside the frame \(height 48: allowed 0 to 48\)"),
        ({"box": [-3, 0, 10, 10]}, r"box: x1=-3 is outside the frame \(width 64: allowed 0 to 64\)"),
        ({"box": [0, 0, 10, 1e9]}, r"box: y2=1e\+09 is outside the frame \(height 48: allowed 0 to 48\)"),
    ],
)
def test_prompts_outside_the_frame_are_refused_not_clamped(prompt, message):
    document = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, **prompt}]}]}
    with pytest.raises(PromptError, match=message):
        parse_prompts(document, VIDEO)


def test_coordinates_are_bounded_without_a_video():
    document = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[1e30, 5]]}]}]}
    with pytest.raises(PromptError, match=r"x=1e\+30 is outside any frame \(allowed 0 to 1\.67772e\+07\)"):
        parse_prompts(document)


def test_negative_only_clicks_are_accepted_for_the_mask_task_only():
    clicks = {"frame": 0, "points": [[5, 5], [20, 20]], "labels": [0, 0]}
    (obj,) = parse_prompts({"objects": [{"id": 1, "task": "mask", "prompts": [clicks]}]}, VIDEO)
    np.testing.assert_array_equal(obj.prompts[0].labels, [0, 0])
    negative_point = {"frame": 0, "points": [[5, 5]], "labels": [0]}
    with pytest.raises(PromptError, match="task 'point' takes exactly one positive point, got a negative point"):
        parse_prompts({"objects": [{"id": 1, "task": "point", "prompts": [negative_point]}]}, VIDEO)


def _mask_document(rle: dict) -> dict:
    return {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "mask": rle}]}]}


def test_empty_mask_is_refused():
    with pytest.raises(PromptError, match=r"prompts\[0\]: mask is empty \(no foreground pixels\)"):
        parse_prompts(_mask_document(encode_rle(np.zeros((H, W), bool))), VIDEO)


@pytest.mark.parametrize(
    "size, video, message",
    [
        ((W, H), VIDEO, r"mask size \[64, 48\] does not match the video; expected \[H, W\] = \[48, 64\]"),
        ((H, W + 1), VIDEO, r"mask size \[48, 65\] does not match the video; expected \[H, W\] = \[48, 64\]"),
        ((2**20, 2**20), None, r"mask size \[1048576, 1048576\] must be a list \[H, W\] of at most 134217728"),
    ],
)
def test_wrong_size_mask_is_refused(size, video, message):
    rle = {"size": list(size), "counts": [size[0] * size[1] - 1, 1]}
    with pytest.raises(PromptError, match=message):
        parse_prompts(_mask_document(rle), video)


def test_mask_pixels_of_all_prompts_are_bounded():
    full = encode_rle(np.ones((H, W), bool))
    prompts = [{"frame": frame, "mask": full} for frame in range(3)]
    document = {"objects": [{"id": 1, "task": "mask", "prompts": prompts}]}
    limits = PromptLimits(max_mask_pixels=2 * H * W)
    with pytest.raises(PromptError, match=rf"prompts\[2\]: the mask prompts have more than {2 * H * W} pixels"):
        parse_prompts(document, VIDEO, limits)
    assert len(parse_prompts({"objects": [{"id": 1, "task": "mask", "prompts": prompts[:2]}]}, VIDEO, limits)[0]
               .prompts) == 2


def test_rle_string_with_an_endless_number_is_refused_quickly():
    started = time.perf_counter()
    with pytest.raises(PromptError, match="RLE 'counts' string has a number longer than 13 characters"):
        parse_prompts(_mask_document({"size": [H, W], "counts": "o" * 1_000}), VIDEO)
    # longer than any 48x64 mask needs: refused from its length, before it is parsed (issue 16)
    with pytest.raises(PromptError, match=r"RLE 'counts' has 1000000 characters; a 48x64 mask takes at most 9219"):
        parse_prompts(_mask_document({"size": [H, W], "counts": "o" * 1_000_000}), VIDEO)
    assert time.perf_counter() - started < 5  # the unbounded number took minutes (quadratic)
    assert parse_counts_string("0" * 3 + "1", H * W) == [0, 0, 0, 1]


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "data, message",
    [
        ('{"objects": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"objects": [{"id": 1' + "0" * 5000 + "}]}", "holds a number with too many digits"),
        ({"objects": [{"id": 10**5000, "task": "mask", "prompts": []}]}, r"got a value too large to show"),
        ({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[10**400, 1]]}]}]},
         r"points\[0\] must be \[x, y\] with two finite numbers, got \[1000000.*\.\.\..*, 1\]"),
        ({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": _nested(5000)}]}]},
         r"points\[0\] must be \[x, y\] with two finite numbers, got \[\[\[\[\.\.\.\]\]\]\]"),
        ({"objects": [{"id": 1, "task": "x" * 10**6, "prompts": []}]}, r"got 'xxxxxxxxxxxxxxxxxxxxxxxx.*\.\.\..*'$"),
        ({"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [0, 0, 1e-50, 5]}]}]},
         r"has zero width or height"),
    ],
    ids=["deep-json", "many-digits", "huge-id", "huge-coordinate", "deep-points", "long-string", "float32-box"],
)
def test_pathological_prompts_raise_prompt_error_with_a_short_message(data, message):
    with pytest.raises(PromptError, match=message) as caught:
        parse_prompts(data)
    assert len(str(caught.value)) < 400


# --------------------------------------------------------------------------- prompts: paths are never opened


class _OpenedFiles:
    """Every file opened while recording (an audit hook sees builtins.open, os.open, PIL, numpy alike)."""

    installed: _OpenedFiles | None = None

    def __init__(self) -> None:
        self.recording = False
        self.events: list[tuple[str, object]] = []

    def hook(self, event: str, args: tuple) -> None:
        if self.recording and event in ("open", "os.listdir", "os.scandir", "subprocess.Popen", "os.system"):
            self.events.append((event, args[0] if args else None))

    @classmethod
    def get(cls) -> _OpenedFiles:
        if cls.installed is None:  # audit hooks cannot be removed: install one for the session
            cls.installed = cls()
            sys.addaudithook(cls.installed.hook)
        return cls.installed


@contextmanager
def files_opened() -> Iterator[list[tuple[str, object]]]:
    recorder = _OpenedFiles.get()
    recorder.events.clear()
    recorder.recording = True
    try:
        yield recorder.events
    finally:
        recorder.recording = False


def test_paths_inside_the_prompts_are_never_opened(tmp_path):
    secret = tmp_path / "prompts.json"
    mask_png = tmp_path / "mask.png"
    secret.write_text(json.dumps(_objects(1)))  # valid prompts: reading this file would make the parse succeed
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(mask_png)
    np.save(tmp_path / "mask.npy", np.ones((H, W), bool))
    paths = [str(secret), str(mask_png), str(tmp_path / "mask.npy"), f"file://{secret}", str(tmp_path)]
    with files_opened() as opened:
        attempts = _parse_with_paths(paths)
        assert opened == []
        Image.open(mask_png).close()  # the recorder does see an open
        assert opened == [("open", str(mask_png))]
    assert attempts == len(paths) * 23


def _parse_with_paths(paths: list[str]) -> int:
    """Parse prompts that hold each path in every place a string can go; all are refused."""
    attempts = 0
    for path in paths:
        for data in (path, path.encode(), Path(path)):
            attempts += 1
            with pytest.raises(PromptError, match="JSON object starting with|JSON text or a dict"):
                parse_prompts(data, VIDEO)
        documents = [
            {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "mask": path}]}]},
            {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "mask": {"size": [H, W], "counts": path}}]}]},
            {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": path}]}]},
            {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": path}]}]},
            {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[1, 1]], "file": path}]}]},
            {"objects": [{"id": 1, "task": "mask", "prompts": path}]},
            {"objects": [{"id": 1, "task": path, "prompts": []}]},
            {"objects": [{"id": path, "task": "mask", "prompts": []}]},
            {"objects": path},
            {"objects": [], "path": path},
        ]
        for document in documents:
            for data in (document, json.dumps(document)):
                attempts += 1
                with pytest.raises(PromptError):
                    parse_prompts(data, VIDEO)
    return attempts
