"""A tracking job's effect outputs, written frame by frame like its overlay (``sam2_plus.outputs``):

- the effect video: H.264 MP4 at the source's size, timing and audio (``media.encode.VideoWriter``);
- cut-outs, the effect frame with the chosen objects' region as alpha: WebM (VP9, yuva420p), MOV (ProRes
  4444) and an RGBA PNG sequence (``cutout/{frame:05d}.png`` in a ZIP, or ``{frame:05d}.png`` in a folder).

Each frame is composed once (``EffectRenderer``) for all of them. The cut-out videos start at the first
written frame, as the overlay does, and have no audio.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..media.alpha import AlphaVideoWriter, alpha_encoder_available, rgba_png
from ..media.decode import FrameSource
from ..media.encode import EncodeError, VideoWriter
from ..media.export import FrameRecord
from .render import EffectFrame, EffectRenderer
from .settings import EffectSettings

PNG_FOLDER = "cutout"  # the PNG sequence's folder in a ZIP
FOLDER_FILES = {"effect": "effect.mp4", "cutout_webm": "cutout.webm", "cutout_mov": "cutout.mov"}


@dataclass(frozen=True)
class EffectOutputs:
    """What to render (settings) and where; None skips an output."""

    settings: EffectSettings
    video: Optional[Path] = None  # the effect MP4
    webm: Optional[Path] = None  # cut-out: VP9 with alpha
    mov: Optional[Path] = None  # cut-out: ProRes 4444
    png: Optional[Path] = None  # cut-out: RGBA PNGs into a .zip (added to it, under cutout/) or a folder
    bundle: Optional[Path] = None  # a ZIP that also gets the three videos (the app's /track returns one ZIP)

    @classmethod
    def in_folder(cls, settings: EffectSettings, folder: str | os.PathLike, results_zip: Optional[Path] = None,
                  names: Mapping[str, str] = FOLDER_FILES, bundle: bool = False) -> "EffectOutputs":
        """The effect video in `folder`; when the background is erased, the cut-outs of `settings.cutout` whose
        encoder this FFmpeg has, the PNGs into `results_zip`. `bundle`: `results_zip` gets the videos too."""
        folder = Path(folder)
        formats = settings.cutout if settings.erases_background else ()
        webm, mov = (folder / names[f"cutout_{kind}"] if kind in formats and alpha_encoder_available(kind)
                     else None for kind in ("webm", "mov"))
        png = results_zip if "png" in formats else None
        return cls(settings, folder / names["effect"], webm, mov, png, results_zip if bundle else None)

    def paths(self) -> dict[str, Path]:
        named = {"effect": self.video, "cutout_webm": self.webm, "cutout_mov": self.mov, "cutout_png": self.png}
        return {name: Path(path) for name, path in named.items() if path is not None}

    @property
    def with_alpha(self) -> bool:
        return any(path is not None for path in (self.webm, self.mov, self.png))

    def check(self) -> None:
        """EncodeError when a cut-out's encoder is missing from this FFmpeg."""
        for kind, path in (("webm", self.webm), ("mov", self.mov)):
            if path is not None and not alpha_encoder_available(kind):
                raise EncodeError(f"cannot write the cut-out {path}: this FFmpeg has no encoder for {kind} "
                                  "with alpha; use another cut-out format")


class EffectWriter:
    """Writes every output of an EffectOutputs; like OverlayVideoWriter, the first frame is time zero."""

    def __init__(self, outputs: EffectOutputs, frames: FrameSource, tasks: Mapping[int, str],
                 keep_audio: bool = True) -> None:
        self.outputs = outputs
        self._frames = frames
        self._renderer = EffectRenderer(outputs.settings, tasks, with_alpha=outputs.with_alpha)
        self._keep_audio = keep_audio
        self._videos: list[tuple[VideoWriter, bool]] = []  # (writer, takes RGBA)
        self._pngs = PngSequenceWriter(outputs.png) if outputs.png is not None else None
        self._origin: Optional[float] = None
        self.frames_written = 0

    def write(self, result: FrameRecord) -> None:
        timestamp = float(self._frames.timestamps[result.frame_idx])
        if self._origin is None:
            self._origin = timestamp
            self._open_videos()
        composed = self._renderer.compose(self._frames[result.frame_idx], result)
        self._write_videos(composed, timestamp - self._origin)
        if self._pngs is not None:
            self._pngs.write(result.frame_idx, composed)
        self.frames_written += 1

    def _write_videos(self, composed: EffectFrame, timestamp: float) -> None:
        rgba = composed.rgba() if composed.alpha is not None else None
        for writer, alpha in self._videos:
            writer.write(rgba if alpha else composed.rgb, timestamp=timestamp)

    def _open_videos(self) -> None:
        info = self._frames.info
        size = {"fps": info.fps, "width": info.width, "height": info.height}
        if self.outputs.video is not None:
            audio = info.path if (self._keep_audio and info.has_audio and info.path) else None
            self._videos.append((VideoWriter(self.outputs.video, audio_source=audio, audio_offset=self._origin,
                                             **size), False))
        for kind, path in (("webm", self.outputs.webm), ("mov", self.outputs.mov)):
            if path is not None:
                self._videos.append((AlphaVideoWriter(path, kind, **size), True))

    def close(self) -> None:
        """Finish every file (all of them, even when one fails; the first error is raised), then bundle."""
        error: Optional[BaseException] = None
        closers = [writer.close for writer, _ in self._videos] + ([self._pngs.close] if self._pngs else [])
        for close in closers:
            try:
                close()
            except Exception as e:  # keep closing the others
                error = error or e
        if error is not None:
            raise error
        if self.outputs.bundle is not None:
            videos = [p for p in (self.outputs.video, self.outputs.webm, self.outputs.mov) if p and p.exists()]
            add_to_zip(self.outputs.bundle, {path.name: path for path in videos})


class PngSequenceWriter:
    """RGBA PNGs, fully transparent pixels black: into a folder as they come, or for a ZIP into a temporary
    folder first and added under ``cutout/`` when closed (the ZIP may still be written by another writer)."""

    def __init__(self, destination: Path) -> None:
        self.destination = Path(destination)
        self._zip = self.destination.suffix.lower() == ".zip"
        self._tmp = tempfile.TemporaryDirectory(prefix="sam2plus-cutout-") if self._zip else None
        self._folder = Path(self._tmp.name) if self._tmp else self.destination
        self._folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame_idx: int, composed: EffectFrame) -> None:
        (self._folder / f"{frame_idx:05d}.png").write_bytes(rgba_png(composed.rgba(clear_transparent=True)))

    def close(self) -> None:
        if self._tmp is None:
            return
        try:
            files = sorted(self._folder.glob("*.png"))
            add_to_zip(self.destination, {f"{PNG_FOLDER}/{file.name}": file for file in files})
        finally:
            self._tmp.cleanup()
            self._tmp = None


def add_to_zip(archive: Path, files: Mapping[str, Path]) -> None:
    """Add files (already compressed media: stored as they are) to a ZIP, creating it when missing."""
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as bundle:
        for name, path in files.items():
            with open(path, "rb") as source, bundle.open(name, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1 << 20)
