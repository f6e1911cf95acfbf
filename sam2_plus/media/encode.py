"""Streaming H.264 MP4 writer that browsers play: yuv420p, BT.709 tagged, moov atom first.

    with VideoWriter("out.mp4", fps=info.fps, width=info.width, height=info.height,
                     audio_source=info.path) as writer:
        for frame in frames:
            writer.write(frame)

Odd widths/heights are padded to even ones by repeating the last column/row
(yuv420p needs even sizes), so source pixel coordinates still line up.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .decode import open_container

# Codecs copied into MP4 without re-encoding and that Chromium plays; anything else becomes AAC.
_COPYABLE_AUDIO_CODECS = frozenset({"aac", "mp3"})
_TICKS_PER_FRAME = 1000  # time base is 1/(fps*1000) so per-frame timestamps from VFR sources survive


class EncodeError(RuntimeError):
    """The video could not be written."""


@dataclass(frozen=True)
class EncodeSettings:
    crf: int = 20
    preset: str = "veryfast"
    threads: int = 0  # 0: let x264 decide


class VideoWriter:
    """Write RGB frames one at a time to an H.264 (yuv420p) MP4 with faststart.

    ``fps`` sets the nominal rate; ``write(frame, timestamp=...)`` can place a
    frame at an explicit time in seconds (for variable-frame-rate sources),
    otherwise frame *i* is shown at ``i / fps``. ``audio_source`` (a media file
    path) muxes its first audio stream, starting ``audio_offset`` seconds into
    it, cut at the end of the video.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        width: int,
        height: int,
        audio_source: str | os.PathLike | None = None,
        audio_offset: float = 0.0,
        settings: EncodeSettings = EncodeSettings(),
    ) -> None:
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.encoded_width = self.width + self.width % 2 if self.EVEN_SIZE else self.width
        self.encoded_height = self.height + self.height % 2 if self.EVEN_SIZE else self.height
        self.frames_written = 0
        self._rate = Fraction(fps).limit_denominator(1001)
        self._time_base = 1 / (self._rate * _TICKS_PER_FRAME)
        self._last_pts = -1
        self._closed = False
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._container = self._open_container()
        try:
            self._stream = self._add_video_stream(settings)
            self._audio = (
                _AudioMuxer(self._container, Path(audio_source), audio_offset) if audio_source is not None else None
            )
        except Exception:
            self._container.close()
            raise

    # What a subclass changes to write another codec (see media/alpha.py): the container, the frames it takes
    # (write() checks their channels) and the pixel format they are converted to.
    EVEN_SIZE = True  # yuv420p H.264 needs even sizes: odd ones are padded
    INPUT_FORMAT = "rgb24"
    PIXEL_FORMAT = "yuv420p"

    def _open_container(self):
        return av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})

    def _add_video_stream(self, settings: EncodeSettings):
        stream = self._new_stream("libx264")
        stream.codec_context.thread_count = settings.threads
        stream.options = {"crf": str(settings.crf), "preset": settings.preset}
        return stream

    def _new_stream(self, codec: str):
        """A stream of `codec` at this writer's size, rate and time base, tagged BT.709 limited range."""
        stream = self._container.add_stream(codec, rate=self._rate)
        stream.width = self.encoded_width
        stream.height = self.encoded_height
        stream.pix_fmt = self.PIXEL_FORMAT
        stream.time_base = self._time_base
        context = stream.codec_context
        context.time_base = self._time_base
        context.framerate = self._rate
        # Tagging matches the conversion in _video_frame, so players show the colours we computed.
        context.colorspace = av.video.reformatter.Colorspace.ITU709
        context.color_range = av.video.reformatter.ColorRange.MPEG
        context.color_primaries = av.video.reformatter.ColorPrimaries.BT709
        context.color_trc = av.video.reformatter.ColorTrc.BT709
        return stream

    def _video_frame(self, frame: np.ndarray) -> av.VideoFrame:
        return self._yuv(frame, self.PIXEL_FORMAT)

    def _yuv(self, frame: np.ndarray, pixel_format: str) -> av.VideoFrame:
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self.INPUT_FORMAT)
        return self._reformatter.reformat(
            video_frame,
            format=pixel_format,
            src_colorspace=av.video.reformatter.Colorspace.ITU709,
            dst_colorspace=av.video.reformatter.Colorspace.ITU709,
            src_color_range=av.video.reformatter.ColorRange.JPEG,
            dst_color_range=av.video.reformatter.ColorRange.MPEG,
        )

    def write(self, frame: np.ndarray, timestamp: float | None = None) -> None:
        """Append one HxWx3 uint8 RGB frame (H, W as given to the constructor; HxWx4 RGBA for alpha writers)."""
        if self._closed:
            raise EncodeError("the writer is closed")
        frame = np.asarray(frame)
        channels = 4 if self.INPUT_FORMAT == "rgba" else 3
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, channels):
            raise ValueError(
                f"frame must be a {self.height}x{self.width}x{channels} uint8 array, got {frame.dtype} {frame.shape}"
            )
        if frame.shape[:2] != (self.encoded_height, self.encoded_width):
            frame = np.pad(
                frame, ((0, self.encoded_height - self.height), (0, self.encoded_width - self.width), (0, 0)), "edge"
            )
        if timestamp is None:
            pts = self.frames_written * _TICKS_PER_FRAME
        else:
            pts = int(round(timestamp / self._time_base))
        if pts <= self._last_pts:
            raise ValueError(f"frame timestamps must increase (got {timestamp} after an earlier frame at or later)")
        video_frame = self._video_frame(frame)
        video_frame.pts = pts
        video_frame.time_base = self._time_base
        self._last_pts = pts
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1
        if self._audio is not None:
            self._audio.mux_until(float(pts * self._time_base))

    def close(self) -> None:
        """Flush the encoder and finish the file (the moov atom is moved to the front here)."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                end = (self._last_pts + _TICKS_PER_FRAME) * self._time_base
                self._audio.mux_until(float(end), final=True)
        finally:
            if self._audio is not None:
                self._audio.close()
            self._container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


class _AudioMuxer:
    """Copies (or, if MP4 cannot hold it, re-encodes to AAC) the source's first audio stream."""

    def __init__(self, output, source: Path, offset: float) -> None:
        try:
            self._input = open_container(source)
        except av.FFmpegError as error:
            raise EncodeError(f"cannot read audio from {source.name}: {error}") from error
        self._offset = max(0.0, float(offset))
        self._finished = False
        if not self._input.streams.audio:
            self._input.close()
            raise EncodeError(f"{source.name} has no audio stream to mux")
        self._source_stream = self._input.streams.audio[0]
        self._copy = self._source_stream.codec_context.name in _COPYABLE_AUDIO_CODECS
        if self._copy:
            self._output_stream = output.add_stream_from_template(self._source_stream)
        else:
            rate = self._source_stream.codec_context.sample_rate or 48000
            self._output_stream = output.add_stream("aac", rate=rate)
            self._output_stream.layout = "stereo" if (self._source_stream.codec_context.channels or 2) > 1 else "mono"
        self._output = output
        if self._offset > 0:
            self._input.seek(int(self._offset * 1_000_000), backward=True)  # AV_TIME_BASE units
        self._packets = self._source_packets()
        self._pending = None

    def _source_packets(self) -> Iterator:
        for packet in self._input.demux(self._source_stream):
            if packet.size == 0 or packet.pts is None:
                continue
            seconds = float(packet.pts * packet.time_base)
            # keep packets that overlap the start: AAC priming packets have negative timestamps
            if seconds + float((packet.duration or 0) * packet.time_base) <= self._offset:
                continue
            yield packet, seconds - self._offset

    def mux_until(self, end_seconds: float, final: bool = False) -> None:
        if self._finished:
            return
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    self._finish()
                    return
            packet, seconds = self._pending
            if seconds >= end_seconds:
                if final:
                    self._finish()
                return
            self._pending = None
            self._write(packet)

    def _write(self, packet) -> None:
        if self._copy:
            shift = int(round(self._offset / packet.time_base))
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._output_stream
            self._output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder counts samples itself
            for encoded in self._output_stream.encode(frame):
                self._output.mux(encoded)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if not self._copy:
            for encoded in self._output_stream.encode(None):
                self._output.mux(encoded)

    def close(self) -> None:
        self._input.close()


# --------------------------------------------------------------------------- inspection helpers


def mp4_top_level_boxes(path: str | os.PathLike) -> list[str]:
    """Names of the top-level MP4 boxes in file order (e.g. ['ftyp', 'moov', 'free', 'mdat'])."""
    names: list[str] = []
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        offset = 0
        while offset + 8 <= file_size:
            file.seek(offset)
            size, name = struct.unpack(">I4s", file.read(8))
            if size == 1:
                size = struct.unpack(">Q", file.read(8))[0]
            elif size == 0:
                size = file_size - offset
            if size < 8:
                break
            names.append(name.decode("latin-1"))
            offset += size
    return names


def is_faststart(path: str | os.PathLike) -> bool:
    """True when the moov atom comes before the media data, so playback can start while downloading."""
    boxes = mp4_top_level_boxes(path)
    return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
