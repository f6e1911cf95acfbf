"""Probe and lazily decode videos, frame folders, single images and in-memory frames.

``probe(source)`` checks a source and describes it (``VideoInfo``) without
decoding more than one frame. ``FrameSource(source)`` gives random access to
RGB frames (``HxWx3`` uint8) decoded on demand, with a small byte-bounded LRU
cache so that memory stays flat however long the video is. Sequential access in
either direction is cheap: a forward step decodes one frame, and a backward miss
decodes the whole window that ends at the requested frame, so the following
backward steps are cache hits.

Videos are read with PyAV (MP4/MOV/WebM/MKV/AVI/GIF and whatever else FFmpeg
demuxes). Frame timing comes from the presentation timestamps of the packets,
so variable-frame-rate video keeps its timing; rotation metadata (display
matrix) is applied to decoded frames, as FFmpeg's autorotate does. Mirrored
display matrices (flips) are not applied.

Corrections (documented, not errors): greyscale sources become RGB with equal
channels; transparent pixels (RGBA/LA/palette images, GIF, and video codecs that
decode with alpha, e.g. PNG, QTRLE or ProRes 4444 in MOV) are composited on
black; WebM VP8/VP9 alpha is a side channel that FFmpeg's own decoders skip, so
it is dropped and the colour planes are shown; odd frame sizes are kept as they
are; a single image (or a one-frame video) is a one-frame video.

Safety: only the container formats in ``VIDEO_DEMUXERS`` and the image formats
in ``IMAGE_FORMATS`` are read, so a playlist or concat list renamed ``.mp4``
cannot make FFmpeg open other files or URLs, and no image plugin that runs an
external program (EPS) is reached. A frame over ``MAX_FRAME_PIXELS`` is refused
from the headers, before anything is decoded. ``MediaLimits`` adds limits of
the caller's own (longer side, duration, frame count).
"""

from __future__ import annotations

import bisect
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

FRAME_FOLDER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
SINGLE_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_IMAGE_FPS = 24.0
DEFAULT_CACHE_BYTES = 192 * 1024 * 1024
DEFAULT_MAX_CACHED_FRAMES = 64
MAX_FRAME_PIXELS = 16384 * 8192  # one RGB frame of this size already takes 400 MB
# FFmpeg demuxers that read the one file they are given (no playlists, concat lists, network or devices).
VIDEO_DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "gif", "apng", "webp", "mpegts",
    "mpeg", "flv", "ogg", "asf", "nut", "ivf", "obu", "h264", "hevc", "m4v", "mjpeg", "yuv4mpegpipe", "mxf",
    "dv", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe",
    "mp3", "wav", "flac", "aac",  # audio, so that an audio-only upload is named as such
)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF")  # Pillow plugins for SINGLE_IMAGE_SUFFIXES (JPEG opens MPO)
_CONTAINER_OPTIONS = {"format_whitelist": ",".join(VIDEO_DEMUXERS), "protocol_whitelist": "file"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FrameSourceLike = Union[str, os.PathLike, Sequence[np.ndarray], np.ndarray]


class MediaError(ValueError):
    """The source cannot be used as a video (missing, empty, truncated, corrupt or not a video)."""


class MediaLimitError(MediaError):
    """The source is over a ``MediaLimits`` limit: ``what`` ("side", "seconds" or "frames") measured ``found``
    (pixels, seconds or frames; with ``at_least``, a lower bound: the scan stopped there)."""

    def __init__(self, message: str, what: str, found: float, at_least: bool = False) -> None:
        super().__init__(message)
        self.what, self.found, self.at_least = what, found, at_least


@dataclass(frozen=True)
class VideoInfo:
    """What a source holds. ``width``/``height`` are of the frames as returned (after rotation)."""

    kind: str  # "video", "frames" (folder of images), "image" (single image) or "arrays"
    num_frames: int
    fps: float
    width: int
    height: int
    duration: float  # seconds
    rotation: int = 0  # degrees counter-clockwise applied to decoded frames: 0, 90, 180 or 270
    has_audio: bool = False
    codec: str | None = None
    path: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), the shape of a frame without its channel axis."""
        return self.height, self.width


@dataclass(frozen=True)
class MediaLimits:
    """Sources that ``probe(..., limits=...)`` refuses with MediaError; None means no limit.

    The limits apply to the whole source, also when ``max_frames`` describes only
    its start. A video's packets are scanned only until a limit is passed, so an
    over-long video is refused quickly.
    """

    max_side: int | None = None  # pixels on the longer side
    max_seconds: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_side", "max_seconds", "max_frames"):
            value = getattr(self, name)
            whole = name != "max_seconds"
            if value is not None and not _is_positive_number(value, whole):
                kind = "a positive integer" if whole else "a positive number"
                raise MediaError(f"MediaLimits.{name} must be {kind} or None, got {value!r}")

    def check(self, info: VideoInfo) -> None:
        name = _source_name(info.path, info.kind)
        self.check_size(info.width, info.height, name)
        self.check_frame_count(info.num_frames, name)
        if self.max_seconds is not None and info.duration - self.max_seconds > 0.5 / info.fps:
            raise MediaLimitError(f"{name}: the video is {info.duration:.2f} s long; "
                                  f"at most {self.max_seconds:g} s are allowed", "seconds", info.duration)

    def check_size(self, width: int, height: int, name: str) -> None:
        if self.max_side is not None and max(width, height) > self.max_side:
            raise MediaLimitError(f"{name}: the frames are {width}x{height} pixels; at most {self.max_side} pixels "
                                  "on the longer side are allowed", "side", max(width, height))

    def check_frame_count(self, count: int, name: str, *, at_least: bool = False) -> None:
        if self.max_frames is not None and count > self.max_frames:
            found = count - 1 if at_least else count
            amount = f"more than {found}" if at_least else str(found)
            raise MediaLimitError(f"{name}: the video has {amount} frames; at most {self.max_frames} are allowed",
                                  "frames", found, at_least)


def probe(
    source: FrameSourceLike,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    limits: MediaLimits | None = None,
) -> VideoInfo:
    """Describe ``source`` or raise MediaError saying why it cannot be used.

    ``fps`` is the frame rate assumed for image folders, single images and
    frame arrays (default 24); videos use their own. ``max_frames`` describes
    only the first ``max_frames`` frames (as ``FrameSource`` with the same
    argument shows them). ``limits`` refuses sources that are too large.
    """
    backend = _open_backend(source, fps, limits)
    backend.close()
    if limits is not None:
        limits.check(backend.info)
    return _first_frames(backend.info, backend.timestamps, max_frames)[0]


def _is_positive_number(value: object, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if whole and not isinstance(value, (int, np.integer)):
        return False
    return bool(np.isfinite(value) and value > 0)


def _source_name(path: str | None, kind: str) -> str:
    return Path(path).name if path else f"the {kind}"


def _check_frame_pixels(width: int, height: int, name: str) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise MediaError(f"{name}: the frames are {width}x{height} = {width * height} pixels; at most "
                         f"{MAX_FRAME_PIXELS} pixels per frame are allowed")


def _first_frames(info: VideoInfo, timestamps: np.ndarray, max_frames: int | None) -> tuple[VideoInfo, np.ndarray]:
    """The info and timestamps of the first ``max_frames`` frames (all of them when None or more)."""
    if max_frames is None:
        return info, timestamps
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise MediaError(f"max_frames must be a positive integer, got {max_frames!r}")
    count = int(max_frames)
    if count >= info.num_frames:
        return info, timestamps
    return replace(info, num_frames=count, duration=float(timestamps[count])), timestamps[:count]


def to_model_input(frame: np.ndarray, image_size: int = 1024) -> "torch.Tensor":
    """Turn an HxWx3 uint8 RGB frame into the model's normalised float32 CHW tensor.

    Matches the SAM 2 reference loader exactly: PIL bicubic resize to a square
    (no aspect preservation), divide by 255 in float64, cast to float32, then
    subtract the ImageNet mean and divide by the std in float32. The two steps
    are `resize_for_model` (on the host) and `normalize_for_model` (on any
    device: a GPU receives a quarter of the bytes and does the arithmetic).
    """
    return normalize_for_model(resize_for_model(frame, image_size))


def resize_for_model(frame: np.ndarray, image_size: int = 1024) -> "torch.Tensor":
    """The frame resized like the reference (PIL bicubic to image_size x image_size): uint8 CHW."""
    import torch

    frame = _as_rgb_uint8(frame, "frame")
    resized = Image.fromarray(frame).resize((image_size, image_size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1)


def normalize_for_model(image: "torch.Tensor") -> "torch.Tensor":
    """uint8 [..., 3, S, S] -> float32 ImageNet-normalised, on the image's device (float64 division as the
    reference's loader does, so every device gives the same values)."""
    import torch

    scaled = (image.to(torch.float64) / 255.0).to(torch.float32)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=image.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=image.device)[:, None, None]
    return (scaled - mean) / std


class FrameSource:
    """Random access to the RGB frames of a source, decoded lazily.

    Returned frames are read-only ``HxWx3`` uint8 arrays shared with the cache;
    copy one before drawing on it. Safe to share between threads (access is
    serialised). Use as a context manager, or call ``close()``. ``max_frames``
    shows only the first ``max_frames`` frames of the source.
    """

    def __init__(
        self,
        source: FrameSourceLike,
        *,
        fps: float | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_cached_frames: int = DEFAULT_MAX_CACHED_FRAMES,
        max_frames: int | None = None,
    ) -> None:
        self._backend = _open_backend(source, fps)
        try:
            self._info, self._timestamps = _first_frames(self._backend.info, self._backend.timestamps, max_frames)
        except MediaError:
            self._backend.close()
            raise
        info = self._info
        frame_bytes = max(1, info.width * info.height * 3)
        capacity = max(2, min(max_cached_frames, cache_bytes // frame_bytes))
        self._backend.set_cache_capacity(capacity)
        self._lock = threading.Lock()

    @property
    def info(self) -> VideoInfo:
        return self._info

    @property
    def timestamps(self) -> np.ndarray:
        """Presentation time of each frame in seconds, the first frame at 0.0 (float64, read-only)."""
        return self._timestamps

    @property
    def cache_capacity(self) -> int:
        return self._backend.cache.capacity

    def __len__(self) -> int:
        return self._info.num_frames

    def __getitem__(self, index: int) -> np.ndarray:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"frame index must be an integer, got {type(index).__name__}")
        count = len(self)
        position = int(index) + count if index < 0 else int(index)
        if not 0 <= position < count:
            raise IndexError(f"frame index {index} out of range for {count} frames")
        with self._lock:
            return self._backend.frame(position)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.info
        return f"FrameSource({info.kind}, {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.3f} fps)"


# --------------------------------------------------------------------------- backends


class _FrameCache:
    """LRU of decoded frames by index."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, index: int) -> np.ndarray | None:
        frame = self._frames.get(index)
        if frame is not None:
            self._frames.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        self._frames[index] = frame
        self._frames.move_to_end(index)
        while len(self._frames) > self.capacity:
            self._frames.popitem(last=False)

    def nearest(self, index: int) -> np.ndarray | None:
        """The cached frame closest before ``index``, else closest after it."""
        before = [i for i in self._frames if i < index]
        if before:
            return self._frames[max(before)]
        after = [i for i in self._frames if i > index]
        return self._frames[min(after)] if after else None

    def clear(self) -> None:
        self._frames.clear()


class _Backend:
    info: VideoInfo
    timestamps: np.ndarray

    def __init__(self) -> None:
        self.cache = _FrameCache()

    def set_cache_capacity(self, capacity: int) -> None:
        self.cache.capacity = capacity

    def frame(self, index: int) -> np.ndarray:
        frame = self.cache.get(index)
        if frame is None:
            frame = _read_only(self._load(index))
            self.cache.put(index, frame)
        return frame

    def _load(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        self.cache.clear()


def _open_backend(source: FrameSourceLike, fps: float | None, limits: MediaLimits | None = None) -> _Backend:
    image_fps = _check_fps(fps)
    if isinstance(source, np.ndarray):
        if source.ndim != 4:
            raise MediaError(f"a frame array must be 4-D (T, H, W, 3), got shape {source.shape}")
        return _ArrayBackend(list(source), image_fps)
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return _ArrayBackend(source, image_fps)
    if not isinstance(source, (str, os.PathLike)):
        raise MediaError(f"unsupported source type {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder")
    if path.is_dir():
        return _FolderBackend(path, image_fps)
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: the file is empty (0 bytes)")
    if path.suffix.lower() in SINGLE_IMAGE_SUFFIXES:
        return _SingleImageBackend(path, image_fps)
    return _VideoBackend(path, limits)


def _check_fps(fps: float | None) -> float:
    if fps is None:
        return DEFAULT_IMAGE_FPS
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
        raise MediaError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


class _ArrayBackend(_Backend):
    def __init__(self, frames: Sequence[np.ndarray], fps: float) -> None:
        super().__init__()
        if len(frames) == 0:
            raise MediaError("the frame list is empty")
        shapes = set()
        for i, frame in enumerate(frames):
            if not isinstance(frame, np.ndarray):
                raise MediaError(f"frame {i} is a {type(frame).__name__}, expected a numpy array")
            if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4))):
                raise MediaError(f"frame {i} must be HxWx3 uint8 RGB, got {frame.dtype} array of shape {frame.shape}")
            shapes.add(frame.shape[:2])
        if len(shapes) > 1:
            raise MediaError(f"frames have different sizes: {sorted(shapes)}")
        height, width = shapes.pop()
        if height == 0 or width == 0:
            raise MediaError(f"frames have no pixels (size {width}x{height})")
        self._frames = frames
        count = len(frames)
        self.timestamps = _read_only(np.arange(count, dtype=np.float64) / fps)
        self.info = VideoInfo("arrays", count, fps, width, height, count / fps)

    def _load(self, index: int) -> np.ndarray:
        return _as_rgb_uint8(self._frames[index], f"frame {index}")


class _SingleImageBackend(_Backend):
    def __init__(self, path: Path, fps: float) -> None:
        super().__init__()
        self._path = path
        _image_header_size(path)  # refuses an oversized image before decoding it
        image = _load_image(path)  # decoded fully so a corrupt image fails here, not later
        height, width = image.shape[:2]
        self.cache.put(0, _read_only(image))
        self.timestamps = _read_only(np.zeros(1))
        self.info = VideoInfo("image", 1, fps, width, height, 1 / fps, path=str(path), codec=path.suffix.lower()[1:])

    def set_cache_capacity(self, capacity: int) -> None:
        pass  # the one frame stays cached

    def _load(self, index: int) -> np.ndarray:
        return _load_image(self._path)


class _FolderBackend(_Backend):
    def __init__(self, folder: Path, fps: float) -> None:
        super().__init__()
        paths = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in FRAME_FOLDER_SUFFIXES and not p.name.startswith(".")),
            key=natural_sort_key,
        )
        paths = [p for p in paths if p.is_file()]
        if not paths:
            raise MediaError(f"{folder}: the folder holds no JPEG or PNG frames")
        width, height = _image_header_size(paths[0])
        for path in paths[1:]:
            size = _image_header_size(path)
            if size != (width, height):
                raise MediaError(
                    f"{folder}: frame {path.name} is {size[0]}x{size[1]}, but {paths[0].name} is {width}x{height}"
                )
        self._paths = paths
        count = len(paths)
        self.timestamps = _read_only(np.arange(count, dtype=np.float64) / fps)
        self.info = VideoInfo("frames", count, fps, width, height, count / fps, path=str(folder))

    def _load(self, index: int) -> np.ndarray:
        frame = _load_image(self._paths[index])
        if frame.shape[:2] != self.info.size:
            raise MediaError(f"{self._paths[index].name} changed size while being read")
        return frame


def natural_sort_key(path: Path | str) -> list[object]:
    """Sort key that orders 'frame2' before 'frame10'."""
    name = Path(path).name
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# EXIF orientations 5-8 are transposed, so width and height swap.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


# DecompressionBombError is Pillow's own size guard, raised while opening an image far above its limit.
_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def _image_error(path: Path, error: Exception) -> MediaError:
    if isinstance(error, Image.DecompressionBombError):
        return MediaError(f"{path.name}: the image is too large ({error})")
    return MediaError(f"{path.name}: not a readable image ({error})")


def _image_header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            width, height = image.size
            orientation = 1
            # getexif() on a PNG without an eXIf chunk before the pixels would decode the whole image
            if image.format in ("JPEG", "MPO") or "exif" in image.info:
                orientation = image.getexif().get(0x0112, 1)
    except _IMAGE_ERRORS as error:
        raise _image_error(path, error) from error
    _check_frame_pixels(width, height, path.name)
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def _load_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            image = ImageOps.exif_transpose(image)
            return _pil_to_rgb(image)
    except _IMAGE_ERRORS as error:
        raise _image_error(path, error) from error


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: convert("RGB") would clip everything above 255 to white
        grey = (np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        return _composite_on_black(np.asarray(image.convert("RGBA")))
    return np.asarray(image.convert("RGB"))


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    # Transparent pixels often hide arbitrary colours; showing them would leak noise into the model input.
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    return ((rgba[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _as_rgb_uint8(frame: np.ndarray, what: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise MediaError(f"{what} must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return _composite_on_black(frame)
    raise MediaError(f"{what} must be HxWx3 RGB, got shape {frame.shape}")


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view, so a caller cannot alter cached frames (nor do we lock the caller's own arrays)."""
    view = array.view()
    view.flags.writeable = False
    return view


# --------------------------------------------------------------------------- video files


@dataclass(frozen=True)
class _StreamIndex:
    """Presentation timestamps of the decodable frames, in stream time base, ascending."""

    pts: np.ndarray  # int64 [N]
    keyframes: tuple[int, ...]  # ascending positions into pts of frames a decoder can start from; has 0
    time_base: Fraction

    def position_of(self, pts: int) -> int:
        position = int(np.searchsorted(self.pts, pts))
        if position >= len(self.pts) or (position > 0 and pts - self.pts[position - 1] < self.pts[position] - pts):
            position -= 1
        return max(position, 0)

    def keyframe_at_or_before(self, position: int) -> int:
        return self.keyframes[bisect.bisect_right(self.keyframes, position) - 1]


def _av():
    import av  # imported lazily: PyAV is only needed for video files

    return av


class _VideoBackend(_Backend):
    def __init__(self, path: Path, limits: MediaLimits | None = None) -> None:
        super().__init__()
        self._path = path
        self.info, self._index, self.timestamps = _scan_video(path, limits or MediaLimits())
        self._container = None
        self._stream = None
        self._decoded: Iterator[tuple[int, object]] | None = None
        self._cursor = 0  # position of the next frame the open decoder will produce
        self._floor = 0  # frames before this position (after a seek) may be broken and are dropped
        self._reformatter = None
        self._alpha_formats: dict[str, bool] = {}

    def close(self) -> None:
        super().close()
        self._decoded = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def _load(self, index: int) -> np.ndarray:
        keyframe = self._index.keyframe_at_or_before(index)
        if self._decoded is None or not (keyframe <= self._cursor <= index):
            self._start_decoding_at(keyframe)
        self._decode_through(index)
        frame = self.cache.get(index)
        if frame is None:
            # The decoder skipped this frame (damaged data): show the closest decoded neighbour.
            frame = self.cache.nearest(index)
        if frame is None:
            raise MediaError(f"{self._path.name}: frame {index} could not be decoded")
        return frame

    def _decode_through(self, index: int) -> None:
        first_kept = index - self.cache.capacity + 1
        while self._cursor <= index:
            item = next(self._decoded, None)
            if item is None:
                self._decoded = None
                return
            position, frame = item
            if position < self._floor:
                continue
            if position >= first_kept:
                self.cache.put(position, _read_only(self._to_rgb(frame)))
            self._cursor = position + 1

    def _start_decoding_at(self, keyframe: int) -> None:
        """Position the decoder so that its next output is at or before ``keyframe``."""
        av = _av()
        candidates = [keyframe] + [k for k in reversed(self._index.keyframes) if k < keyframe]
        for candidate in candidates:
            if candidate == 0:
                break
            self._ensure_open()
            try:
                self._container.seek(
                    int(self._index.pts[candidate]), stream=self._stream, backward=True, any_frame=False
                )
            except av.FFmpegError:
                break
            decoded = self._decode_packets()
            first = next(decoded, None)
            if first is not None and first[0] <= candidate:
                self._decoded = _prepend(first, decoded)
                self._cursor = first[0]
                self._floor = candidate
                return
            # The demuxer landed after the keyframe we asked for: try an earlier one.
        self._reopen()
        self._decoded = self._decode_packets()
        self._cursor = 0
        self._floor = 0

    def _ensure_open(self) -> None:
        if self._container is None:
            self._reopen()

    def _reopen(self) -> None:
        av = _av()
        if self._container is not None:
            self._container.close()
        try:
            self._container = open_container(self._path)
        except av.FFmpegError as error:
            raise MediaError(f"{self._path.name}: cannot reopen the video ({error})") from error
        self._stream = self._container.streams.video[0]
        self._reformatter = av.video.reformatter.VideoReformatter()

    def _decode_packets(self) -> Iterator[tuple[int, object]]:
        av = _av()
        previous = -1
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets, None)
            except av.FFmpegError:
                return  # unreadable data: treat as the end; missing frames fall back to neighbours
            if packet is None:
                return
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet loses its frame(s); neighbours stand in for them
            for frame in frames:
                if frame.pts is None:
                    position = previous + 1
                else:
                    position = self._index.position_of(frame.pts)
                previous = position
                yield position, frame

    def _to_rgb(self, frame) -> np.ndarray:
        format_name = frame.format.name
        has_alpha = self._alpha_formats.get(format_name)
        if has_alpha is None:
            has_alpha = any(component.is_alpha for component in frame.format.components)
            self._alpha_formats[format_name] = has_alpha
        if has_alpha:
            rgb = _composite_on_black(self._reformatter.reformat(frame, format="rgba").to_ndarray())
        else:
            rgb = self._reformatter.reformat(frame, format="rgb24").to_ndarray()
        turns = self.info.rotation // 90
        if turns:
            rgb = np.rot90(rgb, k=turns)
        return np.ascontiguousarray(rgb)


def _prepend(first: tuple[int, object], rest: Iterator[tuple[int, object]]) -> Iterator[tuple[int, object]]:
    yield first
    yield from rest


def open_container(path: str | os.PathLike):
    """A PyAV input container for a local video file, read only with the demuxers in VIDEO_DEMUXERS."""
    return _av().open(str(path), metadata_errors="replace", container_options=_CONTAINER_OPTIONS)


def _open_for_scan(path: Path):
    av = _av()
    try:
        return open_container(path)
    except av.ArgumentError as error:  # FFmpeg's answer to a demuxer missing from the whitelist
        raise MediaError(f"{path.name}: not a readable video file (not a supported video format; "
                         "use MP4, MOV, WebM, MKV, AVI or GIF)") from error
    except av.FFmpegError as error:
        raise MediaError(f"{path.name}: not a readable video file ({_describe(error)})") from error


def _scan_video(path: Path, limits: MediaLimits) -> tuple[VideoInfo, _StreamIndex, np.ndarray]:
    """Read the packet index (no decoding) and decode the first frame to check the stream is usable."""
    name = path.name
    with _open_for_scan(path) as container:
        if not container.streams.video:
            what = "an audio-only file" if container.streams.audio else "a file without a video stream"
            raise MediaError(f"{name}: {what}; a video is needed")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise MediaError(f"{name}: the video stream's codec is unknown or unsupported")
        _check_declared_size(stream, limits, name)
        has_audio = bool(container.streams.audio)
        time_base = stream.time_base or Fraction(1, 1)
        scan = _scan_packets(container, stream, _ScanGuard(limits, time_base, name), name)
        if not scan.pts:
            raise MediaError(f"{name}: the video stream holds no frames")
        declared = stream.frames or 0
        if declared > scan.packets_seen:
            raise MediaError(f"{name}: the file is truncated (its header lists {declared} frames, only "
                             f"{scan.packets_seen} are present)")
        average_rate = stream.average_rate or stream.guessed_rate
        codec = stream.codec_context.name
    pts_list, keyframe_pts, last_duration = scan.pts, scan.keyframe_pts, scan.last_duration

    pts = np.unique(np.asarray(pts_list, dtype=np.int64))  # also drops duplicate timestamps
    keyframes = tuple(sorted({0} | {int(np.searchsorted(pts, p)) for p in keyframe_pts}))
    index = _StreamIndex(pts, keyframes, Fraction(time_base))
    timestamps = _read_only((pts - pts[0]).astype(np.float64) * float(time_base))

    first = _decode_first_frame(path)
    _check_frame_pixels(first.width, first.height, name)
    rotation = int(round((first.rotation or 0) / 90.0)) * 90 % 360
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width

    count = len(pts)
    fps = _frame_rate(average_rate, timestamps)
    frame_duration = last_duration * float(time_base) if last_duration else 1.0 / fps
    duration = float(timestamps[-1]) + frame_duration
    info = VideoInfo("video", count, fps, width, height, duration, rotation, has_audio, codec, str(path))
    return info, index, timestamps


@dataclass
class _PacketScan:
    """What the packets of a video stream say, without decoding them."""

    pts: list[int] = field(default_factory=list)  # presentation times, in stream order
    keyframe_pts: set[int] = field(default_factory=set)
    last_duration: int = 0  # of the last packet that gave one, in time-base ticks
    packets_seen: int = 0


def _scan_packets(container, stream, guard: "_ScanGuard", name: str) -> _PacketScan:
    av = _av()
    scan = _PacketScan()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            scan.packets_seen += 1
            if packet.is_corrupt:
                raise MediaError(f"{name}: the video data is truncated or corrupt (damaged frame data)")
            if packet.is_discard:
                continue  # edit-list padding: demuxed but never shown
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                pts = scan.pts[-1] + 1 if scan.pts else 0
            scan.pts.append(int(pts))
            if packet.is_keyframe:
                scan.keyframe_pts.add(int(pts))
            if packet.duration:
                scan.last_duration = int(packet.duration)
            guard.see(int(pts))
    except av.FFmpegError as error:
        raise MediaError(f"{name}: the video data is truncated or corrupt ({_describe(error)})") from error
    return scan


def _check_declared_size(stream, limits: MediaLimits, name: str) -> None:
    """Refuse oversized frames from the stream header, before anything is decoded."""
    width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
    _check_frame_pixels(width, height, name)
    limits.check_size(width, height, name)


class _ScanGuard:
    """Stops the packet scan of a video that is already past a limit (what was seen is a lower bound)."""

    def __init__(self, limits: MediaLimits, time_base: Fraction, name: str) -> None:
        self._limits, self._seconds_per_tick, self._name = limits, float(time_base), name
        self._active = limits.max_frames is not None or limits.max_seconds is not None
        self._distinct: set[int] = set()
        self._first = self._last = 0

    def see(self, pts: int) -> None:
        if not self._active:
            return
        if not self._distinct:
            self._first = self._last = pts
        self._distinct.add(pts)
        self._first, self._last = min(self._first, pts), max(self._last, pts)
        self._limits.check_frame_count(len(self._distinct), self._name, at_least=True)
        span = (self._last - self._first) * self._seconds_per_tick
        max_seconds = self._limits.max_seconds
        # The exact check follows the scan; stopping early needs a margin past any rounding of the duration.
        if max_seconds is not None and span > max_seconds + 1.0:
            raise MediaLimitError(f"{self._name}: the video is longer than {span:.1f} s; at most {max_seconds:g} s "
                                  "are allowed", "seconds", span, at_least=True)


def _decode_first_frame(path: Path):
    av = _av()
    try:
        with open_container(path) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                for frame in packet.decode():
                    return frame
    except av.FFmpegError as error:
        raise MediaError(f"{path.name}: the video cannot be decoded ({_describe(error)})") from error
    raise MediaError(f"{path.name}: the video stream cannot be decoded (no frame came out)")


def _frame_rate(average_rate: Fraction | None, timestamps: np.ndarray) -> float:
    if average_rate and 0 < float(average_rate) < 1000:
        return float(average_rate)
    if len(timestamps) > 1 and timestamps[-1] > 0:
        return (len(timestamps) - 1) / float(timestamps[-1])
    return DEFAULT_IMAGE_FPS


def _describe(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
