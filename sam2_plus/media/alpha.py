"""Video and images with an alpha channel, for cut-outs an editor can place on another track.

    with AlphaVideoWriter("cutout.webm", "webm", fps=info.fps, width=info.width, height=info.height) as writer:
        writer.write(rgba, timestamp=seconds)        # HxWx4 uint8, straight (not premultiplied) alpha
    frames = list(read_alpha_video("cutout.webm"))  # RGBA frames back

- ``webm``: VP9 in WebM, ``yuva420p`` (browsers show its alpha); small, lossy.
- ``mov``: ProRes 4444 in QuickTime, ``yuva444p10le`` (the usual alpha format of editing software); alpha kept
  exactly, about 1 MB a 1280x720 frame, and FFmpeg's encoder is slow (``bench/bench_effects.py``).
- ``rgba_png``: one RGBA PNG (for a PNG sequence).

Sizes need not be even (VP9 and 4:4:4 ProRes take odd ones); audio is not written.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from .encode import EncodeError, EncodeSettings, VideoWriter


@dataclass(frozen=True)
class AlphaCodec:
    container: str
    encoder: str
    pixel_format: str
    options: Mapping[str, str] = field(default_factory=dict)
    via: str | None = None  # an 8-bit format to convert RGBA to first (see AlphaVideoWriter._video_frame)


ALPHA_CODECS: dict[str, AlphaCodec] = {
    # realtime / cpu-used 8: several times faster than "good" at the same crf, which sets the quality.
    "webm": AlphaCodec("webm", "libvpx-vp9", "yuva420p",
                       {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "24", "b": "0"}),
    "mov": AlphaCodec("mov", "prores_ks", "yuva444p10le", {"profile": "4444", "vendor": "apl0"}, via="yuva444p"),
}
_ALPHA_DECODERS = {"vp9": "libvpx-vp9"}  # FFmpeg's native VP9 decoder drops the alpha plane


def alpha_encoder_available(kind: str) -> bool:
    """Whether this FFmpeg (PyAV's) has the encoder of `kind` ("webm" or "mov")."""
    try:
        av.Codec(ALPHA_CODECS[kind].encoder, "w")
    except (av.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
        return False
    return True


class AlphaVideoWriter(VideoWriter):
    """Write RGBA frames to a WebM (VP9) or MOV (ProRes 4444) with alpha; timing as ``VideoWriter``'s."""

    EVEN_SIZE = False
    INPUT_FORMAT = "rgba"

    def __init__(self, path: str | os.PathLike, kind: str, *, fps: float, width: int, height: int) -> None:
        if kind not in ALPHA_CODECS:
            raise ValueError(f"unknown alpha video kind {kind!r}; expected one of {', '.join(ALPHA_CODECS)}")
        if not alpha_encoder_available(kind):
            raise EncodeError(f"this FFmpeg has no {ALPHA_CODECS[kind].encoder} encoder for {kind} cut-outs")
        self.codec = ALPHA_CODECS[kind]
        self.PIXEL_FORMAT = self.codec.pixel_format
        self._widen = av.video.reformatter.VideoReformatter()
        super().__init__(path, fps=fps, width=width, height=height)

    def _open_container(self):
        return av.open(str(self.path), mode="w", format=self.codec.container)

    def _add_video_stream(self, settings: EncodeSettings):
        stream = self._new_stream(self.codec.encoder)
        stream.options = dict(self.codec.options)
        return stream

    def _video_frame(self, frame: np.ndarray) -> av.VideoFrame:
        if self.codec.via is None:
            return super()._video_frame(frame)
        # swscale's direct RGBA -> 10-bit YUVA conversion now and then fills a run of 8 pixels of a row with
        # garbage (all planes; PyAV 18's FFmpeg, about 1 frame in 100); RGBA -> 8-bit YUVA -> 10 bits is exact.
        return self._widen.reformat(self._yuv(frame, self.codec.via), format=self.PIXEL_FORMAT)


def read_alpha_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The RGBA frames of a video written by ``AlphaVideoWriter`` (or any VP9 / ProRes video with alpha)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = _decoder_for(stream)
        reformatter = av.video.reformatter.VideoReformatter()
        for packet in container.demux(stream):
            for frame in decoder.decode(packet):
                yield reformatter.reformat(
                    frame, format="rgba",
                    src_colorspace=av.video.reformatter.Colorspace.ITU709,
                    dst_colorspace=av.video.reformatter.Colorspace.ITU709,
                    src_color_range=av.video.reformatter.ColorRange.MPEG,
                    dst_color_range=av.video.reformatter.ColorRange.JPEG,
                ).to_ndarray()


def _decoder_for(stream):
    decoder = _ALPHA_DECODERS.get(stream.codec_context.name)
    return stream.codec_context if decoder is None else av.CodecContext.create(decoder, "r")


def rgba_png(rgba: np.ndarray, compression: int = 1) -> bytes:
    """An RGBA PNG (HxWx4 uint8, straight alpha)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION,
                                                                                 compression])
    if not ok:
        raise EncodeError("PNG encoding failed")
    return encoded.tobytes()


def read_rgba_png(data: bytes) -> np.ndarray:
    """HxWx4 RGBA from PNG bytes (an image without alpha gets an opaque one)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a readable PNG")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


def read_png_sequence(folder_or_zip: str | os.PathLike, prefix: str = "cutout/") -> dict[int, np.ndarray]:
    """{frame index: RGBA} of the PNGs ``{prefix}{frame:05d}.png`` in a ZIP, or of a folder's ``*.png``."""
    path = Path(folder_or_zip)
    if path.is_dir():
        return {int(file.stem): read_rgba_png(file.read_bytes()) for file in sorted(path.glob("*.png"))}
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".png")]
        return {int(Path(n).stem): read_rgba_png(archive.read(n)) for n in sorted(names)}
