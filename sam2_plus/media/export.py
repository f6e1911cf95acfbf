"""Streaming writers (and round-trip readers) for tracking results.

Every writer consumes one ``FrameRecord`` per frame, in frame order, and keeps
memory flat, except ``PointTrackWriter`` which holds the (small) T x N x 2
point array until it is closed.

Conventions: coordinates are pixels of the source frame, x right and y down.
Boxes are ``[x1, y1, x2, y2]`` with exclusive right/bottom edges, so the box of
a mask covering columns a..b is ``[a, ., b + 1, .]`` (as COCO's ``toBbox``).
A point is ``(x, y)``. Image outputs (PNG masks) only show visible objects;
the JSON keeps the raw mask next to the ``visible`` flag. A frame's record
may leave an object out (one removed during the run: ``FrameRecord.without``):
it then has no row, mask PNG or annotation on that frame, and the formats
with a slot per frame (LaSOT lines, the point array) mark it absent there.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

from .decode import VideoInfo
from .rle import decode_rle, encode_rle

RESULTS_FORMAT = "sam2plus-results"
RESULTS_VERSION = 1
_COORD_DECIMALS = 3
_SCORE_DECIMALS = 5


@dataclass
class FrameRecord:
    """One frame's results as written to files: numpy arrays on the host, scores as presence probabilities
    (the predictor's `FrameResult`, tensors on its device, becomes one by `service.to_frame_record`). Arrays
    are converted and checked on creation."""

    frame_idx: int
    obj_ids: Sequence[int]
    masks: np.ndarray  # [N, H, W] bool
    boxes: np.ndarray | None  # [N, 4] float32 xyxy, or None when the model gave none
    points: np.ndarray | None  # [N, 2] float32 (x, y), or None
    scores: np.ndarray  # [N] float32 object score
    visible: np.ndarray  # [N] bool
    motion_scores: np.ndarray | None = None  # [N] float32 Kalman IoU (motion-aware; NaN where not scored)

    def __post_init__(self) -> None:
        self.frame_idx = int(self.frame_idx)
        if self.frame_idx < 0:
            raise ValueError(f"frame_idx must be >= 0, got {self.frame_idx}")
        self.obj_ids = tuple(int(i) for i in self.obj_ids)
        count = len(self.obj_ids)
        if len(set(self.obj_ids)) != count:
            raise ValueError(f"obj_ids must be unique, got {self.obj_ids}")
        self.masks = np.asarray(self.masks)
        if self.masks.ndim != 3 or self.masks.shape[0] != count:
            raise ValueError(f"masks must have shape [{count}, H, W], got {self.masks.shape}")
        self.masks = self.masks.astype(bool, copy=False)
        self.boxes = _optional_float_array(self.boxes, (count, 4), "boxes")
        self.points = _optional_float_array(self.points, (count, 2), "points")
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        if self.scores.shape != (count,) or self.visible.shape != (count,):
            raise ValueError(f"scores and visible must have {count} entries each")
        if self.motion_scores is not None:
            self.motion_scores = np.asarray(self.motion_scores, dtype=np.float32).reshape(-1)
            if self.motion_scores.shape != (count,):
                raise ValueError(f"motion_scores must have {count} entries, got {self.motion_scores.shape[0]}")

    @property
    def height(self) -> int:
        return int(self.masks.shape[1])

    @property
    def width(self) -> int:
        return int(self.masks.shape[2])

    def box_for(self, i: int) -> np.ndarray | None:
        """Box of object ``i``: the model's box if it gave one, else the mask's bounding box (None if empty)."""
        if self.boxes is not None and np.all(np.isfinite(self.boxes[i])):
            return self.boxes[i]
        return mask_to_box(self.masks[i])

    def point_for(self, i: int) -> np.ndarray | None:
        """Point of object ``i`` if the model gave one."""
        if self.points is not None and np.all(np.isfinite(self.points[i])):
            return self.points[i]
        return None

    def visible_mask(self, i: int) -> np.ndarray:
        return self.masks[i] if self.visible[i] else np.zeros(self.masks.shape[1:], dtype=bool)

    def without(self, obj_ids: Iterable[int]) -> "FrameRecord":
        """This frame's results with the objects `obj_ids` left out (absent, not merely invisible: the writers
        give them no row on this frame); itself when it has none of them."""
        gone = {int(obj_id) for obj_id in obj_ids}
        kept = [i for i, obj_id in enumerate(self.obj_ids) if obj_id not in gone]
        if len(kept) == len(self.obj_ids):
            return self

        def rows(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[kept]

        return FrameRecord(self.frame_idx, [self.obj_ids[i] for i in kept], self.masks[kept], rows(self.boxes),
                           rows(self.points), self.scores[kept], self.visible[kept], rows(self.motion_scores))

    def joined(self, other: "FrameRecord") -> "FrameRecord":
        """This frame's results with `other`'s objects of the same frame added after them (objects tracked apart,
        e.g. a found object tracked backward); an object in both keeps this record's entry."""
        if other.frame_idx != self.frame_idx:
            raise ValueError(f"cannot join frame {other.frame_idx}'s results to frame {self.frame_idx}'s")
        other = other.without(self.obj_ids)
        if not other.obj_ids:
            return self

        def rows(a: np.ndarray | None, b: np.ndarray | None, width: int | None) -> np.ndarray | None:
            if a is None and b is None:
                return None
            blank = (lambda n: np.full((n, width), np.nan, np.float32)) if width else (
                lambda n: np.full(n, np.nan, np.float32))
            return np.concatenate([blank(len(self.obj_ids)) if a is None else a,
                                   blank(len(other.obj_ids)) if b is None else b])

        return FrameRecord(self.frame_idx, [*self.obj_ids, *other.obj_ids],
                           np.concatenate([self.masks, other.masks]), rows(self.boxes, other.boxes, 4),
                           rows(self.points, other.points, 2), np.concatenate([self.scores, other.scores]),
                           np.concatenate([self.visible, other.visible]),
                           rows(self.motion_scores, other.motion_scores, None))


def _optional_float_array(value: Any, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")
    return array


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Bounding box [x1, y1, x2, y2] (exclusive x2/y2) of a boolean mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


class _Writer:
    def write(self, result: FrameRecord) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def write_all(self, results: Iterable[FrameRecord]) -> None:
        for result in results:
            self.write(result)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


class _InOrder:
    """Rejects frames that do not arrive in increasing frame order (gaps are fine)."""

    def __init__(self) -> None:
        self.last_frame = -1

    def check(self, frame_idx: int) -> None:
        if frame_idx <= self.last_frame:
            raise ValueError(f"frames must be written in increasing order: {frame_idx} after {self.last_frame}")
        self.last_frame = frame_idx


# --------------------------------------------------------------------------- mask ZIP


def davis_palette() -> np.ndarray:
    """The 256-colour palette of DAVIS/PASCAL VOC annotation PNGs, as [256, 3] uint8."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (red, green, blue)
    return palette


class MaskZipWriter(_Writer):
    """ZIP of ``masks/obj_{id}/{frame:05d}.png`` (0/255 greyscale) and ``davis/{frame:05d}.png``.

    The DAVIS image holds, per pixel, 1 + the position of the object in
    ``obj_ids`` order (0 is background); where objects overlap, the earlier one
    wins. Ids not given up front are appended in order of first appearance.
    ``davis/objects.json`` maps palette indices back to object ids.
    """

    MAX_DAVIS_OBJECTS = 255

    def __init__(self, path: str | os.PathLike, obj_ids: Sequence[int] = ()) -> None:
        self.path = Path(path)
        self._position: dict[int, int] = {}  # obj_id -> 0-based position; palette index is position + 1
        for obj_id in obj_ids:
            self._add_object(int(obj_id))
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED)
        self._palette = davis_palette().reshape(-1).tolist()
        self._written_frames: set[int] = set()

    def _add_object(self, obj_id: int) -> None:
        if obj_id not in self._position:
            if len(self._position) >= self.MAX_DAVIS_OBJECTS:
                raise ValueError(f"a DAVIS palette image holds at most {self.MAX_DAVIS_OBJECTS} objects")
            self._position[obj_id] = len(self._position)

    def write(self, result: FrameRecord) -> None:
        if result.frame_idx in self._written_frames:
            raise ValueError(f"frame {result.frame_idx} was already written")
        self._written_frames.add(result.frame_idx)
        index_map = np.zeros((result.height, result.width), dtype=np.uint8)
        for obj_id in result.obj_ids:
            self._add_object(obj_id)
        by_order = sorted(range(len(result.obj_ids)), key=lambda i: self._position[result.obj_ids[i]])
        for i in reversed(by_order):  # earlier objects are painted last, so they win overlaps
            index_map[result.visible_mask(i)] = self._position[result.obj_ids[i]] + 1
        for i, obj_id in enumerate(result.obj_ids):
            binary = result.visible_mask(i).astype(np.uint8) * 255
            self._zip.writestr(f"masks/obj_{obj_id}/{result.frame_idx:05d}.png", _png_bytes(binary))
        palette_image = Image.fromarray(index_map, mode="P")
        palette_image.putpalette(self._palette)
        buffer = io.BytesIO()
        palette_image.save(buffer, format="PNG", compress_level=1)
        self._zip.writestr(f"davis/{result.frame_idx:05d}.png", buffer.getvalue())

    def close(self) -> None:
        if self._zip.fp is None:
            return
        mapping = {str(position + 1): obj_id for obj_id, position in self._position.items()}
        self._zip.writestr("davis/objects.json", json.dumps({"index_to_obj_id": mapping}, indent=1))
        self._zip.close()


def _png_bytes(grey: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


@dataclass
class MaskZipContents:
    object_masks: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)  # obj_id -> frame -> bool HxW
    davis: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> uint8 index map
    davis_obj_ids: dict[int, int] = field(default_factory=dict)  # palette index -> obj_id
    davis_palette: np.ndarray | None = None


def read_mask_zip(path: str | os.PathLike) -> MaskZipContents:
    contents = MaskZipContents()
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if parts[0] == "masks" and len(parts) == 3 and parts[2].endswith(".png"):
                obj_id = int(parts[1].removeprefix("obj_"))
                grey = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_UNCHANGED)
                contents.object_masks.setdefault(obj_id, {})[int(parts[2][:-4])] = grey > 127
            elif parts[0] == "davis" and name.endswith(".png"):
                with Image.open(io.BytesIO(archive.read(name))) as image:
                    if image.mode != "P":
                        raise ValueError(f"{name} is not a palette PNG (mode {image.mode})")
                    contents.davis[int(parts[1][:-4])] = np.asarray(image)
                    contents.davis_palette = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
            elif name == "davis/objects.json":
                mapping = json.loads(archive.read(name))["index_to_obj_id"]
                contents.davis_obj_ids = {int(k): int(v) for k, v in mapping.items()}
    return contents


# --------------------------------------------------------------------------- JSON


class ResultAnnotator(Protocol):
    """Extra fields of a results JSON (the review's flags): a header entry and per frame one dict per object."""

    def header(self) -> dict[str, Any]: ...

    def object_fields(self, result: FrameRecord) -> list[dict[str, Any]]: ...


class ResultJsonWriter(_Writer):
    """Streams results to JSON: per frame and object the COCO RLE mask, box, point, visibility, score.

    Layout::

        {"format": "sam2plus-results", "version": 1,
         "video": {"width", "height", "fps", "num_frames"} | null,
         "objects": [{"id", "task"}, ...],
         "frames": [{"frame": 0, "objects": [{"id": 1, "visible": true, "score": 0.9,
                      "box": [x1, y1, x2, y2] | null, "point": [x, y] | null,
                      "mask": {"size": [H, W], "counts": "..."}}]}]}

    With a `review` (sam2_plus.review.ReviewTracker), the header also has ``"review": {"thresholds", "reasons"}``
    and every object of a frame ``"flags": [{"reason", "value"}]``.
    """

    def __init__(
        self, path: str | os.PathLike, video: VideoInfo | None = None, tasks: Mapping[int, str] | None = None,
        review: ResultAnnotator | None = None, object_fields: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self._review = review
        self._file = open(self.path, "w", encoding="utf-8")
        self._first_frame = True
        header: dict[str, Any] = {"format": RESULTS_FORMAT, "version": RESULTS_VERSION, "video": None, "objects": []}
        if video is not None:
            header["video"] = {
                "width": video.width,
                "height": video.height,
                "fps": video.fps,
                "num_frames": video.num_frames,
            }
        if tasks:
            fields = object_fields or {}
            header["objects"] = [{"id": int(obj_id), "task": task, **fields.get(obj_id, {})}
                                 for obj_id, task in tasks.items()]
        if review is not None:
            header["review"] = review.header()
        opening = json.dumps(header)[:-1]  # drop the closing brace; frames follow
        self._file.write(opening + ', "frames": [\n')

    def write(self, result: FrameRecord) -> None:
        objects = []
        for i, obj_id in enumerate(result.obj_ids):
            box = result.box_for(i)
            point = result.point_for(i)
            objects.append(
                {
                    "id": obj_id,
                    "visible": bool(result.visible[i]),
                    "score": _json_float(result.scores[i], _SCORE_DECIMALS),
                    "box": None if box is None else [_json_float(v, _COORD_DECIMALS) for v in box],
                    "point": None if point is None else [_json_float(v, _COORD_DECIMALS) for v in point],
                    "mask": encode_rle(result.masks[i]),
                }
            )
        if self._review is not None:
            for entry, extra in zip(objects, self._review.object_fields(result)):
                entry.update(extra)
        separator = "" if self._first_frame else ",\n"
        self._first_frame = False
        self._file.write(separator + json.dumps({"frame": result.frame_idx, "objects": objects}))

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.write("\n]}\n")
        self._file.close()


def _json_float(value: float, decimals: int) -> float | None:
    value = float(value)
    return round(value, decimals) if math.isfinite(value) else None


def read_results_json(path: str | os.PathLike) -> tuple[dict[str, Any], list[FrameRecord]]:
    """Read a results JSON back: (header without frames, one FrameRecord per frame)."""
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    frames = document.pop("frames")
    results = []
    for entry in frames:
        objects = entry["objects"]
        masks = [decode_rle(o["mask"]) for o in objects]
        height, width = masks[0].shape if masks else _header_size(document)
        boxes = [o["box"] if o["box"] is not None else [np.nan] * 4 for o in objects]
        points = [o["point"] if o["point"] is not None else [np.nan] * 2 for o in objects]
        results.append(
            FrameRecord(
                frame_idx=entry["frame"],
                obj_ids=[o["id"] for o in objects],
                masks=np.stack(masks) if masks else np.zeros((0, height, width), bool),
                boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
                points=np.array(points, dtype=np.float32).reshape(-1, 2),
                scores=[np.nan if o["score"] is None else o["score"] for o in objects],
                visible=[o["visible"] for o in objects],
            )
        )
    return document, results


def _header_size(document: Mapping[str, Any]) -> tuple[int, int]:
    video = document.get("video") or {}
    return int(video.get("height", 0)), int(video.get("width", 0))


# --------------------------------------------------------------------------- boxes


BOX_CSV_COLUMNS = ("frame", "obj_id", "x1", "y1", "x2", "y2", "score", "visible")


class BoxCsvWriter(_Writer):
    """CSV with one row per frame and object; the box columns are empty when there is no box."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(BOX_CSV_COLUMNS)

    def write(self, result: FrameRecord) -> None:
        for i, obj_id in enumerate(result.obj_ids):
            box = result.box_for(i)
            coords = ["" for _ in range(4)] if box is None else [_fmt(v) for v in box]
            self._csv.writerow(
                [result.frame_idx, obj_id, *coords, _fmt(result.scores[i], _SCORE_DECIMALS), int(result.visible[i])]
            )

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@dataclass(frozen=True)
class BoxRow:
    frame: int
    obj_id: int
    box: np.ndarray | None
    score: float
    visible: bool


def read_box_csv(path: str | os.PathLike) -> list[BoxRow]:
    rows = []
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != BOX_CSV_COLUMNS:
            raise ValueError(f"unexpected CSV columns {reader.fieldnames}")
        for row in reader:
            coords = [row[k] for k in ("x1", "y1", "x2", "y2")]
            box = None if all(c == "" for c in coords) else np.array([float(c) for c in coords], np.float32)
            score = float(row["score"]) if row["score"] not in ("", "nan") else math.nan
            rows.append(BoxRow(int(row["frame"]), int(row["obj_id"]), box, score, row["visible"] == "1"))
    return rows


def _fmt(value: float, decimals: int = _COORD_DECIMALS) -> str:
    value = float(value)
    if not math.isfinite(value):
        return "nan"
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


class LasotWriter(_Writer):
    """One ``obj_{id}.txt`` per object, line k = frame k as ``x,y,w,h`` (LaSOT/GOT-10k style).

    Frames where the object is absent or not visible, and frames before it
    first appears, are written as ``0,0,0,0``. Frames must come in increasing
    order; ``num_frames`` pads every file to the video length on close.
    """

    ABSENT = "0,0,0,0"

    def __init__(self, folder: str | os.PathLike, num_frames: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._num_frames = num_frames
        self._files: dict[int, Any] = {}
        self._lines_written: dict[int, int] = {}
        self._order = _InOrder()

    def _pad(self, obj_id: int, until: int) -> None:
        if obj_id not in self._files:
            self._files[obj_id] = open(self.folder / f"obj_{obj_id}.txt", "w", encoding="utf-8")
            self._lines_written[obj_id] = 0
        missing = until - self._lines_written[obj_id]
        if missing > 0:
            self._files[obj_id].write((self.ABSENT + "\n") * missing)
            self._lines_written[obj_id] = until

    def write(self, result: FrameRecord) -> None:
        self._order.check(result.frame_idx)
        for i, obj_id in enumerate(result.obj_ids):
            self._pad(obj_id, result.frame_idx)
            box = result.box_for(i) if result.visible[i] else None
            line = self.ABSENT if box is None else ",".join(_fmt(v) for v in _xyxy_to_xywh(box))
            self._files[obj_id].write(line + "\n")
            self._lines_written[obj_id] += 1

    def close(self) -> None:
        end = self._order.last_frame + 1 if self._num_frames is None else self._num_frames
        for obj_id, file in self._files.items():
            if not file.closed:
                self._pad(obj_id, end)
                file.close()


def _xyxy_to_xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def read_lasot(folder: str | os.PathLike) -> dict[int, np.ndarray]:
    """obj_id -> [T, 4] float32 x, y, w, h."""
    tracks = {}
    for path in sorted(Path(folder).glob("obj_*.txt")):
        lines = path.read_text(encoding="utf-8").split()
        values = [[float(v) for v in line.split(",")] for line in lines]
        tracks[int(path.stem.removeprefix("obj_"))] = np.array(values, dtype=np.float32).reshape(-1, 4)
    return tracks


# --------------------------------------------------------------------------- points


class PointTrackWriter(_Writer):
    """NPZ in TAP-Vid layout: ``trajs_2d`` [T, N, 2] float32 (x, y), ``visibs`` [T, N] bool.

    Also stores ``obj_ids`` [N] int64 (column order) and ``frame_indices``.
    Frames with no result and objects without a point are NaN and not visible.
    The arrays are built in memory (T x N x 2 floats) and written on close.
    """

    def __init__(self, path: str | os.PathLike, num_frames: int | None = None, obj_ids: Sequence[int] = ()) -> None:
        self.path = Path(path)
        self._num_frames = num_frames
        self._columns: dict[int, int] = {}
        for obj_id in obj_ids:
            self._columns.setdefault(int(obj_id), len(self._columns))
        self._points: dict[int, dict[int, tuple[float, float, bool]]] = {}
        self._closed = False

    def write(self, result: FrameRecord) -> None:
        if self._num_frames is not None and result.frame_idx >= self._num_frames:
            raise ValueError(f"frame {result.frame_idx} is beyond num_frames={self._num_frames}")
        per_object = self._points.setdefault(result.frame_idx, {})
        for i, obj_id in enumerate(result.obj_ids):
            self._columns.setdefault(obj_id, len(self._columns))
            point = result.point_for(i)
            if point is None:
                per_object[obj_id] = (math.nan, math.nan, False)
            else:
                per_object[obj_id] = (float(point[0]), float(point[1]), bool(result.visible[i]))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        count = self._num_frames if self._num_frames is not None else max(self._points, default=-1) + 1
        trajs = np.full((count, len(self._columns), 2), np.nan, dtype=np.float32)
        visibs = np.zeros((count, len(self._columns)), dtype=bool)
        for frame_idx, per_object in self._points.items():
            for obj_id, (x, y, visible) in per_object.items():
                column = self._columns[obj_id]
                trajs[frame_idx, column] = (x, y)
                visibs[frame_idx, column] = visible
        obj_ids = np.array(list(self._columns), dtype=np.int64)
        with open(self.path, "wb") as file:
            np.savez_compressed(
                file, trajs_2d=trajs, visibs=visibs, obj_ids=obj_ids, frame_indices=np.arange(count, dtype=np.int64)
            )


@dataclass(frozen=True)
class PointTracks:
    trajs_2d: np.ndarray
    visibs: np.ndarray
    obj_ids: np.ndarray


def read_point_tracks(path: str | os.PathLike) -> PointTracks:
    with np.load(path, allow_pickle=False) as data:
        return PointTracks(data["trajs_2d"], data["visibs"], data["obj_ids"])


# --------------------------------------------------------------------------- everything at once


class ResultExporter(_Writer):
    """Writes every export into one folder: results.json, boxes.csv, lasot/, points.npz, masks.zip."""

    def __init__(
        self,
        folder: str | os.PathLike,
        video: VideoInfo | None = None,
        tasks: Mapping[int, str] | None = None,
        review: ResultAnnotator | None = None,
        object_fields: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        obj_ids = list(tasks or ())
        num_frames = video.num_frames if video is not None else None
        self.paths = {
            "json": self.folder / "results.json",
            "csv": self.folder / "boxes.csv",
            "lasot": self.folder / "lasot",
            "points": self.folder / "points.npz",
            "masks": self.folder / "masks.zip",
        }
        self._writers: list[_Writer] = []
        try:
            self._writers.append(ResultJsonWriter(self.paths["json"], video, tasks, review, object_fields))
            self._writers.append(BoxCsvWriter(self.paths["csv"]))
            self._writers.append(LasotWriter(self.paths["lasot"], num_frames))
            self._writers.append(PointTrackWriter(self.paths["points"], num_frames, obj_ids))
            self._writers.append(MaskZipWriter(self.paths["masks"], obj_ids))
        except Exception:
            self.close()
            raise

    def write(self, result: FrameRecord) -> None:
        for writer in self._writers:
            writer.write(result)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
