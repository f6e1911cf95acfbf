"""Exports into annotation and training tools, chosen by name (``--export-format cvat,yolo-seg``, the options
JSON's ``export_formats``) and written beside the usual exports, each in a folder of its name:

| name | folder | what |
| --- | --- | --- |
| ``cvat`` | ``cvat/`` | CVAT for video 1.1 XML: a box and a polygon track per object, ``outside`` where absent |
| ``yolo-seg`` | ``yolo-seg/`` | Ultralytics YOLO segmentation dataset: ``data.yaml``, ``labels/train/*.txt`` |
| ``yolo-det`` | ``yolo-det/`` | Ultralytics YOLO detection dataset, the same with boxes |
| ``mot`` | ``mot/`` | MOT Challenge ground truth: ``gt/gt.txt`` (boxes), ``seqinfo.ini`` |
| ``mots`` | ``mots/`` | MOTS Challenge text ground truth: ``gt/gt.txt`` (RLE masks), ``seqinfo.ini`` |
| ``coco`` | ``coco/`` | COCO instances JSON with RLE masks, boxes, areas and ``track_id`` |
| ``tapvid`` | | TAP-Vid points: ``points.npz``, which every export has |

The formats refer to frames by name (``frame_000000.jpg``; MOT ``img1/000001.jpg``); `frames` writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

from ..media.decode import VideoInfo
from ..media.export import FrameRecord
from .coco import CocoInstancesWriter
from .common import ExportError, ExportTarget
from .cvat import CvatVideoWriter
from .mot import MotsWriter, MotWriter, check_mots_ids
from .yolo import YoloWriter


class FormatWriter(Protocol):
    """What every format's writer is (the service's ResultWriter)."""

    def write(self, result: FrameRecord) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    open: Optional[Callable[[ExportTarget], FormatWriter]]  # None: written by every export already
    check: Optional[Callable[[Sequence[int]], None]] = None  # ExportError for objects it cannot hold


EXPORT_FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("cvat", "CVAT for video 1.1 XML (box and polygon tracks)", CvatVideoWriter),
    ExportFormat("yolo-seg", "Ultralytics YOLO segmentation labels", lambda t: YoloWriter(t, segment=True)),
    ExportFormat("yolo-det", "Ultralytics YOLO detection labels", lambda t: YoloWriter(t, segment=False)),
    ExportFormat("mot", "MOT Challenge boxes (gt/gt.txt, seqinfo.ini)", MotWriter),
    ExportFormat("mots", "MOTS Challenge RLE masks (gt/gt.txt, seqinfo.ini)", MotsWriter, check_mots_ids),
    ExportFormat("coco", "COCO instances JSON with RLE masks and track ids", CocoInstancesWriter),
    ExportFormat("tapvid", "TAP-Vid points (points.npz, in every export)", None),
)}
ALL = "all"


class ExportFormatError(ValueError):
    """An export format name that does not exist, or a value that is not a list of names."""


def parse_export_formats(value: str | Iterable[str] | None, what: str = "export format") -> tuple[str, ...]:
    """Names from comma-separated text or a list ("all" for every format), checked, without repeats."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    try:
        names = [item.strip().lower() for item in items]
    except (AttributeError, TypeError):
        raise ExportFormatError(f"{what}s must be names, e.g. \"cvat,coco\" or [\"cvat\", \"coco\"]; got "
                                f"{value!r}") from None
    names = [name for name in names if name]
    if ALL in names:
        return tuple(EXPORT_FORMATS)
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown:
        raise ExportFormatError(f"unknown {what} {unknown[0]!r}; valid formats: {', '.join(EXPORT_FORMATS)} "
                                f"(or {ALL})")
    return tuple(dict.fromkeys(names))


def check_export_formats(formats: Iterable[str], obj_ids: Iterable[int]) -> tuple[str, ...]:
    """The formats checked by name and against the objects, before anything is tracked (ExportFormatError,
    ExportError)."""
    names = parse_export_formats(list(formats))
    ids = [int(obj_id) for obj_id in obj_ids]
    for name in names:
        if EXPORT_FORMATS[name].check is not None:
            EXPORT_FORMATS[name].check(ids)
    return names


def open_format_writers(formats: Iterable[str], folder: Path, video: VideoInfo, tasks: Mapping[int, str],
                        labels: Optional[Mapping[int, str]] = None) -> list[FormatWriter]:
    """A writer per format, each into ``folder/<name>/``; the ones opened are closed again on a failure.
    `labels`: found objects' phrases, part of their names in the formats."""
    writers: list[FormatWriter] = []
    try:
        for name in formats:
            export = EXPORT_FORMATS[name]
            if export.open is not None:
                writers.append(export.open(ExportTarget(Path(folder) / name, video, tasks, dict(labels or {}))))
    except Exception:
        for writer in writers:
            writer.close()
        raise
    return writers


__all__ = ["ALL", "EXPORT_FORMATS", "ExportError", "ExportFormat", "ExportFormatError", "ExportTarget",
           "FormatWriter", "check_export_formats", "open_format_writers", "parse_export_formats"]
