"""Where a tracking job's results go, one frame at a time and in frame order.

- ``OverlayVideoWriter``: draws each object at its task's granularity on the source frame and encodes an
  H.264 MP4 at the source's size and frame timing, with the source's audio when it has any.
- ``ExportZipWriter``: one ZIP with everything: ``masks/obj_{id}/{frame:05d}.png``, ``davis/{frame:05d}.png``
  (+ ``davis/objects.json``), ``results.json``, ``boxes.csv``, ``lasot/obj_{id}.txt`` and ``points.npz``
  (the layouts of ``media.export``; read the parts back with its readers), and a folder per export format
  asked for (``sam2_plus.exports``: CVAT, YOLO, MOT, MOTS, COCO).
- ``ResultSpool``: results parked in a temporary folder on disk and replayed in frame order (for the frames
  a backward pass produces in reverse order).
- ``RecordWriter``: every written frame's results exactly as they were (masks as COCO RLE, the floats
  unrounded), one JSON line a frame, so that a job's files can be made again without the model
  (``RecordFile`` reads them back; the app re-renders effects and export formats from them).
- ``OutputSet``: fans results out to several writers and closes them all, even after an error; with
  ``background=True`` it writes on its own thread, so rendering and encoding overlap the model.

All writers take ``media.export.FrameRecord`` records.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from .media.decode import FrameSource, VideoInfo
from .media.encode import VideoWriter
from .media.export import (
    BoxCsvWriter,
    FrameRecord,
    LasotWriter,
    MaskZipWriter,
    PointTrackWriter,
    ResultExporter,
    ResultJsonWriter,
)
from .media.render import TrackRenderer
from .media.rle import decode_rle, encode_rle
from .exports import open_format_writers
from .media.export import ResultAnnotator


class ResultWriter(Protocol):
    def write(self, result: FrameRecord) -> None: ...

    def close(self) -> None: ...


class OverlayVideoWriter:
    """Renders results onto the source frames and encodes them as an MP4.

    The encoder is opened on the first frame, whose presentation time becomes time zero (so a run that
    starts later in the video still gives a playable file; the audio is cut to match)."""

    def __init__(self, path: str | os.PathLike, frames: FrameSource, tasks: Mapping[int, str],
                 keep_audio: bool = True) -> None:
        self.path = Path(path)
        self._frames = frames
        self._renderer = TrackRenderer(tasks)
        self._keep_audio = keep_audio
        self._writer: VideoWriter | None = None
        self._origin = 0.0

    @property
    def frames_written(self) -> int:
        return 0 if self._writer is None else self._writer.frames_written

    def write(self, result: FrameRecord) -> None:
        timestamp = float(self._frames.timestamps[result.frame_idx])
        if self._writer is None:
            self._writer = self._open(timestamp)
        image = self._renderer.render(self._frames[result.frame_idx], result)
        self._writer.write(image, timestamp=timestamp - self._origin)

    def _open(self, origin: float) -> VideoWriter:
        info = self._frames.info
        audio = info.path if (self._keep_audio and info.has_audio and info.path) else None
        self._origin = origin
        return VideoWriter(self.path, fps=info.fps, width=info.width, height=info.height,
                           audio_source=audio, audio_offset=origin)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ExportZipWriter:
    """Every export in one ZIP (see the module docstring). The mask PNGs stream straight into the ZIP;
    the other files are written to a temporary folder and added when the writer is closed."""

    def __init__(self, path: str | os.PathLike, video: VideoInfo, tasks: Mapping[int, str],
                 formats: Sequence[str] = (), review: ResultAnnotator | None = None,
                 object_fields: Optional[Mapping[int, Mapping[str, Any]]] = None) -> None:
        self.path = Path(path)
        obj_ids = list(tasks)
        self._tmp = tempfile.TemporaryDirectory(prefix="sam2plus-export-")
        folder = Path(self._tmp.name)
        self._closed = False
        self._writers: list[ResultWriter] = []
        try:
            self._masks = MaskZipWriter(self.path, obj_ids)
            self._writers.append(ResultJsonWriter(folder / "results.json", video, tasks, review, object_fields))
            self._writers.append(BoxCsvWriter(folder / "boxes.csv"))
            self._writers.append(LasotWriter(folder / "lasot", video.num_frames))
            self._writers.append(PointTrackWriter(folder / "points.npz", video.num_frames, obj_ids))
            self._writers.extend(open_format_writers(formats, folder, video, tasks, labels_of(object_fields)))
        except Exception:
            self.close()
            raise

    def write(self, result: FrameRecord) -> None:
        self._masks.write(result)
        for writer in self._writers:
            writer.write(result)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for writer in self._writers:
                writer.close()
            if hasattr(self, "_masks"):
                self._masks.close()
                self._add_files(Path(self._tmp.name))
        finally:
            self._tmp.cleanup()

    def _add_files(self, folder: Path) -> None:
        with zipfile.ZipFile(self.path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(file, arcname=file.relative_to(folder).as_posix())


def open_export(path: str | os.PathLike, video: VideoInfo, tasks: Mapping[int, str], formats: Sequence[str] = (),
                review: ResultAnnotator | None = None,
                object_fields: Optional[Mapping[int, Mapping[str, Any]]] = None) -> ResultWriter:
    """A ``.zip`` path gives one ZIP with every export; any other path is a folder (``ResultExporter`` and a
    folder per export format). `review` adds the flags to results.json; `object_fields` adds fields to its
    objects (a found object's label and score)."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        return ExportZipWriter(path, video, tasks, formats, review, object_fields)
    folder = OutputSet([ResultExporter(path, video, tasks, review, object_fields)])
    try:
        for writer in open_format_writers(formats, path, video, tasks, labels_of(object_fields)):
            folder.add(writer)
    except Exception:
        folder.close()
        raise
    return folder


def labels_of(object_fields: Optional[Mapping[int, Mapping[str, Any]]]) -> dict[int, str]:
    """The objects' labels among their fields (found objects' phrases)."""
    return {obj_id: str(fields["label"]) for obj_id, fields in (object_fields or {}).items() if fields.get("label")}


class ResultSpool:
    """Results parked on disk (one compressed ``.npz`` per frame, masks bit-packed) and replayed in
    increasing frame order, so memory does not grow with the number of parked frames."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="sam2plus-spool-")
        self._frames: set[int] = set()

    def __len__(self) -> int:
        return len(self._frames)

    def _path(self, frame_idx: int) -> Path:
        return Path(self._tmp.name) / f"{frame_idx:08d}.npz"

    def put(self, result: FrameRecord) -> None:
        count, height, width = result.masks.shape
        nan = np.full((count, 4), np.nan, np.float32)
        with open(self._path(result.frame_idx), "wb") as file:
            np.savez_compressed(
                file,
                obj_ids=np.asarray(result.obj_ids, dtype=np.int64),
                masks=np.packbits(result.masks, axis=-1),
                size=np.array([height, width], dtype=np.int64),
                boxes=nan if result.boxes is None else result.boxes,
                points=nan[:, :2] if result.points is None else result.points,
                scores=result.scores,
                visible=result.visible,
                motion_scores=nan[:, 0] if result.motion_scores is None else result.motion_scores,
            )
        self._frames.add(result.frame_idx)

    def replay(self) -> Iterator[FrameRecord]:
        for frame_idx in sorted(self._frames):
            yield self._load(frame_idx)

    def join(self, result: FrameRecord) -> None:
        """Add `result`'s objects to the frame parked for its frame (or park it when none is)."""
        parked = self._load(result.frame_idx) if result.frame_idx in self._frames else None
        self.put(result if parked is None else parked.joined(result))

    def _load(self, frame_idx: int) -> FrameRecord:
        with np.load(self._path(frame_idx), allow_pickle=False) as data:
            height, width = (int(v) for v in data["size"])
            masks = np.unpackbits(data["masks"], axis=-1, count=width).astype(bool)
            motion = data["motion_scores"]
            return FrameRecord(frame_idx, data["obj_ids"].tolist(), masks.reshape(-1, height, width),
                               data["boxes"], data["points"], data["scores"], data["visible"],
                               None if np.isnan(motion).all() else motion)

    def close(self) -> None:
        self._frames.clear()
        self._tmp.cleanup()

    def __enter__(self) -> "ResultSpool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


RECORDS_FORMAT = "sam2plus-records"
RECORDS_VERSION = 1


class RecordWriter:
    """Every written frame's `FrameRecord`, lossless: a header line (the video's size and frame count, the
    objects and their tasks), then one JSON line per frame with the masks as COCO RLE (pycocotools when
    installed, `media.rle`) and every float as it was (float32 values are exact in JSON's doubles; NaN kept).
    The results JSON rounds its scores and coordinates and has no motion scores, so it cannot stand in."""

    def __init__(self, path: str | os.PathLike, video: VideoInfo, tasks: Mapping[int, str],
                 object_fields: Optional[Mapping[int, Mapping[str, Any]]] = None) -> None:
        self.path = Path(path)
        self._file = open(self.path, "w", encoding="utf-8")
        fields = object_fields or {}
        header = {"format": RECORDS_FORMAT, "version": RECORDS_VERSION,
                  "video": {"width": video.width, "height": video.height, "num_frames": video.num_frames},
                  "objects": [{"id": int(obj_id), "task": task, **fields.get(obj_id, {})}
                              for obj_id, task in tasks.items()]}
        self._file.write(json.dumps(header) + "\n")

    def write(self, result: FrameRecord) -> None:
        line = {"frame": result.frame_idx, "ids": list(result.obj_ids),
                "masks": [encode_rle(mask)["counts"] for mask in result.masks],
                "boxes": _floats(result.boxes), "points": _floats(result.points), "scores": _floats(result.scores),
                "visible": result.visible.tolist(), "motion_scores": _floats(result.motion_scores)}
        self._file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self._file.close()


def _floats(array: Optional[np.ndarray]) -> Optional[list]:
    return None if array is None else array.astype(np.float32).tolist()


class RecordError(ValueError):
    """A records file that cannot be read back (missing, of another format, cut short)."""


class RecordFile:
    """A `RecordWriter` file read back: its objects' tasks, the video's size, the frames it holds (in the
    order written) and each frame's `FrameRecord`, in turn or by frame index (the file is indexed once)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._offsets: dict[int, int] = {}
        try:
            with open(self.path, "rb") as file:
                header = self._header(file.readline())
                while line := file.readline():
                    if not line.endswith(b"\n"):
                        raise RecordError(f"{self.path.name} is cut short after {len(self._offsets)} frames")
                    self._offsets[int(json.loads(line)["frame"])] = file.tell() - len(line)
        except FileNotFoundError:
            raise RecordError(f"the stored results {self.path.name} are gone") from None
        video = header["video"]
        self.size = (int(video["height"]), int(video["width"]))
        self.num_frames = int(video["num_frames"])
        self.tasks = {int(entry["id"]): str(entry["task"]) for entry in header["objects"]}
        # what else the job knew of its objects (a found object's label, score, first frame)
        self.object_fields = {int(entry["id"]): {k: v for k, v in entry.items() if k not in ("id", "task")}
                              for entry in header["objects"] if len(entry) > 2}

    def _header(self, line: bytes) -> dict[str, Any]:
        try:
            header = json.loads(line)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != RECORDS_FORMAT:
            raise RecordError(f"{self.path.name} is not a records file of this version")
        if header.get("version") != RECORDS_VERSION:
            raise RecordError(f"{self.path.name} is a records file of version {header.get('version')}, not "
                              f"{RECORDS_VERSION}")
        return header

    @property
    def frames(self) -> list[int]:
        return list(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)

    def __iter__(self) -> Iterator[FrameRecord]:
        with open(self.path, "rb") as file:
            file.readline()
            for line in file:
                yield self._record(json.loads(line))

    def get(self, frame_idx: int) -> Optional[FrameRecord]:
        """The frame's results; None when the file has no such frame."""
        offset = self._offsets.get(int(frame_idx))
        if offset is None:
            return None
        with open(self.path, "rb") as file:
            file.seek(offset)
            return self._record(json.loads(file.readline()))

    def _record(self, line: Mapping[str, Any]) -> FrameRecord:
        height, width = self.size
        masks = [decode_rle({"size": [height, width], "counts": counts}) for counts in line["masks"]]
        motion = line["motion_scores"]
        return FrameRecord(line["frame"], line["ids"],
                           np.stack(masks) if masks else np.zeros((0, height, width), bool),
                           _array(line["boxes"], 4), _array(line["points"], 2), line["scores"], line["visible"],
                           None if motion is None else np.asarray(motion, np.float32))


def _array(values: Optional[list], columns: int) -> Optional[np.ndarray]:
    return None if values is None else np.asarray(values, np.float32).reshape(-1, columns)


class OutputSet:
    """Writes each result to every writer; ``close()`` closes them all and re-raises the first error.

    With ``background=True``, ``write()`` hands the result to a writer thread through a queue of at most
    ``max_pending`` results (so memory stays bounded when the writers are slower than the model) and
    returns. A writer's error is raised by the next ``write()`` or by ``close()``; ``close()`` first
    writes everything already handed over."""

    def __init__(self, writers: Sequence[ResultWriter] = (), *, background: bool = False,
                 max_pending: int = 4) -> None:
        self.writers: list[ResultWriter] = list(writers)
        self.frames_written = 0
        self.first_frame: int | None = None
        self.last_frame: int | None = None
        self._error: BaseException | None = None
        self._pending: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._pending = queue.Queue(maxsize=max_pending)
            self._thread = threading.Thread(target=self._write_pending, name="sam2plus-writer", daemon=True)
            self._thread.start()

    def add(self, writer: ResultWriter) -> ResultWriter:
        self.writers.append(writer)
        return writer

    def write(self, result: FrameRecord) -> None:
        if self._error is not None:
            raise self._error
        if self._pending is None:
            self._write_now(result)
        else:
            self._pending.put(result)

    def _write_now(self, result: FrameRecord) -> None:
        for writer in self.writers:
            writer.write(result)
        self.frames_written += 1
        if self.first_frame is None:
            self.first_frame = result.frame_idx
        self.last_frame = result.frame_idx

    def _write_pending(self) -> None:
        while (result := self._pending.get()) is not None:
            if self._error is None:  # after an error, drain without writing so write() never blocks
                try:
                    self._write_now(result)
                except BaseException as e:
                    self._error = e

    def close(self) -> None:
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()
            self._thread = None
        error: BaseException | None = self._error
        for writer in self.writers:
            try:
                writer.close()
            except Exception as e:  # keep closing the others
                error = error or e
        if error is not None:
            raise error

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
