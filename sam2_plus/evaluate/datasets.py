"""Benchmark datasets: five layouts read into `EvalSequence`s, each sequence's prompts from its first annotation,
and predictions written in (and read back from) each dataset's own format.

Layouts (checked against the sources named; DATASET_DIR is what `read_dataset` gets as `root`):

``davis``: DAVIS 2017 (davischallenge.org, davisvideochallenge/davis2017-evaluation), MOSE, SA-V val/test
  (facebookresearch/sam2: sav_dataset/README.md, tools/vos_inference.py). Frames in ``JPEGImages/480p/<seq>/``
  (DAVIS), ``JPEGImages_24fps/<seq>/`` (SA-V) or ``JPEGImages/<seq>/`` (MOSE); annotations beside them in
  ``Annotations/480p``, ``Annotations_6fps`` or ``Annotations``: an indexed (palette) PNG per annotated frame whose
  pixel values are the object ids (0 background; 255, DAVIS's void, is ignored), or SA-V's per-object folders
  ``<seq>/<obj:03d>/<frame>.png`` (binary masks; folder 000 is object id 1, as prompts need positive ids). The list
  is ``ImageSets/2017/val.txt``, ``sav_val.txt`` or ``sav_test.txt`` (the first present), else every annotated
  sequence. The annotated frames are the PNGs present (SA-V: every 4th frame; MOSE valid: the first only); each
  object's prompt is its first annotated mask, on that frame, so objects that appear later are prompted there.
  The label map cannot hold overlapping objects (SA-V allows them): where they overlap, the lower id wins.
``lasot``: LaSOT (the dataset's files; HengLan/LaSOT_Evaluation_Toolkit). ``<class>/<class>-<n>/img/00000001.jpg``,
  ``groundtruth.txt`` (x,y,w,h a line), ``full_occlusion.txt`` and ``out_of_view.txt`` (a 0/1 flag per frame,
  comma-separated on one line), ``testing_set.txt`` (the sequence names) when present, else every sequence.
  Attributes, when present, from the toolkit's ``att/<seq>.txt`` or ``annos/att/<seq>.txt``: 14 comma-separated
  flags in `LASOT_ATTRIBUTES` order.
``got10k``: GOT-10k (got-10k.aitestunion.com; the ``got10k`` toolkit). ``list.txt``, ``<seq>/00000001.jpg``,
  ``groundtruth.txt`` (the test split holds the first frame's box only), ``absence.label`` (0/1 a line) and
  ``cover.label`` (0..8 a line, 0 = fully covered). DATASET_DIR is a split folder, or GOT-10k's root holding
  ``val/`` (preferred) or ``test/``.
``tag``: SAM 2++'s Tracking-Any-Granularity at box granularity (MCG-NJU/SAM2-Plus
  benchmarks/sot_benchmark/datasets/trackinganygranularitydataset.py). DATASET_DIR is a split folder (``valid/``)
  holding ``JPEGImages/<seq>/``, ``Boxes/<seq>.txt`` (x,y,w,h a line, comma-separated) and ``Visibles/<seq>.txt``
  (0/1 per frame); the list is ``../ImageSets/<split>.txt`` when present. The 18 attributes (`TAG_ATTRIBUTES`, from
  the README's figure) are in no published file that the reference code reads: this module reads them, when
  present, from ``Attributes/<seq>.txt`` as names separated by commas or lines. That file is this module's
  assumption, not the dataset's published layout.
``tapvid``: TAP-Vid (google-deepmind/tapnet). A pickle of ``{video name: {"video": [T, H, W, 3] uint8 RGB (or one
  JPEG byte string per frame), "points": [N, T, 2] (x, y) in 0..1, "occluded": [N, T] bool}}`` (tapvid_davis.pkl),
  or ``.npz`` files with the same keys, one video each, named by the file. DATASET_DIR is such a file or a folder
  of them. A pickle runs code when loaded: read only files you trust. The frames are written once, as PNGs, under
  a cache folder (`read_dataset`'s ``cache``; default ``$XDG_CACHE_HOME/sam2_plus/tapvid``) for sam2_plus to
  track. Points become pixels as x * W, y * H. Tracks visible on no frame are left out (TAP-Vid's query-first
  sampling drops them too); a kept track's object id is its index + 1.

Boxes: x,y,w,h becomes xyxy (x, y, x + w, y + h) without an offset, as the reference trackers feed it (SAM 2++'s
sot_inference, pytracking); frames where the target is absent (its flags, or w or h <= 0) are NaN. A box prompt
is the first present box, clipped to the frame (the prompts JSON refuses boxes outside it).

Predictions (`write_predictions`, from a results JSON written by sam2_plus.media.export.ResultJsonWriter): an
object counts where the results mark it visible.

- davis: ``<out>/<seq>/<frame stem>.png`` for every frame, indexed PNG with the DAVIS palette, pixel = object id,
  the lower id where objects overlap (as SAM 2's vos_inference); for SA-V-style per-object ground truth
  ``<out>/<seq>/<obj folder>/<frame stem>.png`` (0/1 palette PNGs), the layout the SA-V evaluator reads.
- lasot: ``<out>/<seq>.txt``, x,y,w,h a line (3 decimals at most), ``0,0,0,0`` where the tracker said absent.
- got10k: ``<out>/<seq>/<seq>_001.txt``, the same lines (GOT-10k's record of the first run).
- tag: ``<out>/<seq>.txt``, ``x y w h`` in whole pixels (rounded), as SAM 2++'s sot_benchmark reads them with
  ``numpy.loadtxt(dtype=int)``.
- tapvid: ``<out>/<seq>.npz`` with SAM 2++'s pt_benchmark keys: ``trajs_2d`` [T, N, 2] float64 pixels (NaN where
  the tracker gave no point), ``visibs`` [T, N] bool, ``size`` (W, H), and ``obj_ids`` [N].
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image

from ..media.decode import FRAME_FOLDER_SUFFIXES, natural_sort_key
from ..media.export import RESULTS_FORMAT, davis_palette
from ..media.rle import RLEError, decode_rle, encode_rle

LAYOUTS = ("davis", "lasot", "got10k", "tag", "tapvid")
GRANULARITY = {"davis": "mask", "lasot": "box", "got10k": "box", "tag": "box", "tapvid": "point"}

LASOT_ATTRIBUTES = (
    "Illumination Variation", "Partial Occlusion", "Deformation", "Motion Blur", "Camera Motion", "Rotation",
    "Background Clutter", "Viewpoint Change", "Scale Variation", "Full Occlusion", "Fast Motion", "Out-of-View",
    "Low Resolution", "Aspect Ratio Change",
)
TAG_ATTRIBUTES = ("MB", "DEF", "PO", "ROT", "SA", "DB", "POV", "VC", "BC", "OP", "CS", "EA", "RR", "FO", "IV", "FOV",
                  "SC", "TO")

VOID_LABEL = 255  # DAVIS: pixels whose object is unknown; not an object
_DAVIS_FOLDERS = (("JPEGImages/480p", "Annotations/480p"), ("JPEGImages_24fps", "Annotations_6fps"),
                  ("JPEGImages", "Annotations"))
_DAVIS_LISTS = ("ImageSets/2017/val.txt", "sav_val.txt", "sav_test.txt")
_SEPARATORS = re.compile(r"[,\t ]+")
_CACHE_MARK = ".complete.json"


class DatasetError(ValueError):
    """A dataset (or a prediction) is missing a file or holds a malformed one; the message names it."""


@dataclass(frozen=True, eq=False)
class GroundTruth:
    obj_ids: tuple[int, ...]
    masks: Optional[Callable[[int], np.ndarray]] = None  # mask layouts: frame -> [H, W] int label map (0 = bg)
    boxes: Optional[np.ndarray] = None  # box layouts: [T, N, 4] xyxy float, NaN where absent / not annotated
    points: Optional[np.ndarray] = None  # tapvid: [T, N, 2] (x, y) pixels
    occluded: Optional[np.ndarray] = None  # tapvid: [T, N] bool
    annotated: Optional[Sequence[int]] = None  # frames with ground truth (all when None)


@dataclass(frozen=True, eq=False)
class EvalSequence:
    name: str  # unique within the dataset
    video: Path  # what sam2_plus tracks: a folder of JPEG/PNG frames or a video file
    num_frames: int
    size: tuple[int, int]  # (height, width)
    granularity: str  # "mask" | "box" | "point"
    truth: GroundTruth
    attributes: tuple[str, ...] = ()
    layout: str = ""  # which of LAYOUTS it came from: the box layouts write different prediction files


@dataclass(frozen=True, eq=False)
class Prediction:
    masks: Optional[Callable[[int], np.ndarray]] = None
    boxes: Optional[np.ndarray] = None  # [T, N, 4] xyxy, NaN where the tracker said absent
    points: Optional[np.ndarray] = None  # [T, N, 2]
    occluded: Optional[np.ndarray] = None  # [T, N] bool


# --------------------------------------------------------------------------- reading a dataset


def read_dataset(root: Path, layout: str, videos: Optional[Sequence[str]] = None, *,
                 cache: Optional[Path] = None) -> list[EvalSequence]:
    """The sequences of the dataset at `root` in `layout`, in the dataset's order; `videos` keeps only those names
    (each must exist). `cache`: where tapvid's frames are written (see the module's docstring)."""
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; the layouts are {', '.join(LAYOUTS)}")
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if layout == "tapvid":
        return _read_tapvid(root, videos, cache)
    listed = {"davis": _davis_listing, "lasot": _lasot_listing, "got10k": _got10k_listing, "tag": _tag_listing}
    names, load = listed[layout](root)
    return [load(name) for name in _selected(names, videos, root)]


def _selected(names: Sequence[str], videos: Optional[Sequence[str]], root: Path) -> list[str]:
    if videos is None:
        return list(names)
    known = set(names)
    unknown = [name for name in videos if name not in known]
    if unknown:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DatasetError(f"{root}: no sequence named {', '.join(map(repr, unknown))} (it has {len(names)}: {shown})")
    wanted = set(videos)
    return [name for name in names if name in wanted]


def _read_list(path: Path) -> list[tuple[int, str]]:
    """(line number, name) for each non-empty line of a list file."""
    entries: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        _check_name(name, f"{path}:{number}")
        if name in seen:
            raise DatasetError(f"{path}:{number}: {name!r} is listed twice (also line {seen[name]})")
        seen[name] = number
        entries.append((number, name))
    if not entries:
        raise DatasetError(f"{path}: lists no sequences")
    return entries


def _check_name(name: str, where: str) -> None:
    if name in (".", "..") or Path(name).name != name or "\\" in name:
        raise DatasetError(f"{where}: {name!r} is not a sequence name (a name, not a path)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot be read as text ({error})") from None


def _frame_files(folder: Path) -> list[Path]:
    """The frames sam2_plus tracks in `folder` (its frame-folder rules: JPEG/PNG, natural order)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: the frames folder is missing")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_FOLDER_SUFFIXES
                    and not p.name.startswith(".") and p.is_file()), key=natural_sort_key)
    if not files:
        raise DatasetError(f"{folder}: holds no JPEG or PNG frames")
    return files


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError) as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from None
    return height, width


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=natural_sort_key)


# --------------------------------------------------------------------------- text files of boxes and flags


def _numbers(line: str, where: str) -> list[float]:
    values = []
    for field in (f for f in _SEPARATORS.split(line.strip()) if f):
        try:
            values.append(float(field))
        except ValueError:
            raise DatasetError(f"{where}: {field!r} is not a number") from None
    return values


def _lines(path: Path) -> list[str]:
    """The file's lines without the trailing empty ones; an empty line inside is an error."""
    lines = _read_text(path).rstrip().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise DatasetError(f"{path}:{number}: empty line")
    return lines


def read_box_file(path: Path, num_frames: int, first_only: bool = False) -> np.ndarray:
    """x,y,w,h lines (comma, tab or space separated) -> [K, 4] float64; K = num_frames, or 1 when `first_only`
    allows a file with the first frame's box only (GOT-10k's test split)."""
    rows = []
    for number, line in enumerate(_lines(path), 1):
        values = _numbers(line, f"{path}:{number}")
        if len(values) != 4:
            raise DatasetError(f"{path}:{number}: expected 4 numbers x,y,w,h, got {len(values)}")
        if any(v < 0 for v in values[2:]):
            raise DatasetError(f"{path}:{number}: the width and height must not be negative, got {line.strip()!r}")
        rows.append(values)
    if len(rows) != num_frames and not (first_only and len(rows) == 1):
        raise DatasetError(f"{path}: {len(rows)} boxes for {num_frames} frames; give one line per frame")
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def read_flag_file(path: Path, num_frames: int, most: int = 1) -> np.ndarray:
    """Integer flags 0..most, one a line or comma-separated (either way) -> [num_frames] int."""
    flags = []
    for number, line in enumerate(_lines(path), 1):
        for field in (f for f in _SEPARATORS.split(line.strip()) if f):
            if not field.isdigit() or int(field) > most:
                raise DatasetError(f"{path}:{number}: {field!r} is not a flag from 0 to {most}")
            flags.append(int(field))
    if len(flags) != num_frames:
        raise DatasetError(f"{path}: {len(flags)} flags for {num_frames} frames; give one per frame")
    return np.array(flags, dtype=np.int64)


def _optional_flags(path: Path, num_frames: int, most: int = 1) -> np.ndarray:
    return read_flag_file(path, num_frames, most) if path.exists() else np.zeros(num_frames, np.int64)


def _xywh_to_xyxy(xywh: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """[K, 4] x,y,w,h -> [K, 4] xyxy, NaN where `absent` or where w or h is not positive."""
    boxes = np.full(xywh.shape, np.nan)
    present = ~absent & (xywh[:, 2] > 0) & (xywh[:, 3] > 0) & np.isfinite(xywh).all(axis=1)
    x, y, w, h = xywh[present].T
    boxes[present] = np.stack([x, y, x + w, y + h], axis=1)
    return boxes


def _box_sequence(name: str, frames_folder: Path, xywh: np.ndarray, absent: np.ndarray, layout: str,
                  attributes: tuple[str, ...] = ()) -> EvalSequence:
    frames = _frame_files(frames_folder)
    count = len(frames)
    boxes = np.full((count, 1, 4), np.nan)
    boxes[: len(xywh), 0] = _xywh_to_xyxy(xywh, absent[: len(xywh)])
    annotated = None if len(xywh) == count else tuple(range(len(xywh)))
    truth = GroundTruth((1,), boxes=boxes, annotated=annotated)
    return EvalSequence(name, frames_folder, count, _image_size(frames[0]), "box", truth, attributes, layout)


def _frame_count(folder: Path) -> int:
    return len(_frame_files(folder))


# --------------------------------------------------------------------------- lasot


def _lasot_listing(root: Path) -> tuple[list[str], Callable[[str], EvalSequence]]:
    folders: dict[str, Path] = {}
    for class_folder in _subfolders(root):
        for folder in _subfolders(class_folder):
            if (folder / "groundtruth.txt").is_file():
                folders.setdefault(folder.name, folder)
    if not folders:
        raise DatasetError(f"{root}: no LaSOT sequences (<class>/<class>-<n>/ with img/ and groundtruth.txt)")
    listing = root / "testing_set.txt"
    names = sorted(folders, key=natural_sort_key)
    if listing.is_file():
        entries = _read_list(listing)
        for number, name in entries:
            if name not in folders:
                raise DatasetError(f"{listing}:{number}: sequence {name!r} is not in {root}")
        names = [name for _, name in entries]

    def load(name: str) -> EvalSequence:
        folder = folders[name]
        count = _frame_count(folder / "img")
        xywh = read_box_file(folder / "groundtruth.txt", count)
        absent = (_optional_flags(folder / "full_occlusion.txt", count)
                  | _optional_flags(folder / "out_of_view.txt", count)).astype(bool)
        return _box_sequence(name, folder / "img", xywh, absent, "lasot", _lasot_attributes(root, name))

    return names, load


def _lasot_attributes(root: Path, name: str) -> tuple[str, ...]:
    for folder in (root / "att", root / "annos" / "att"):
        path = folder / f"{name}.txt"
        if path.is_file():
            flags = read_flag_file(path, len(LASOT_ATTRIBUTES))
            return tuple(attribute for attribute, flag in zip(LASOT_ATTRIBUTES, flags) if flag)
    return ()


# --------------------------------------------------------------------------- got10k


def _got10k_listing(root: Path) -> tuple[list[str], Callable[[str], EvalSequence]]:
    split = next((folder for folder in (root, root / "val", root / "test") if (folder / "list.txt").is_file()), None)
    if split is None:
        raise DatasetError(f"{root}: no list.txt here or in val/ or test/ (a GOT-10k split folder holds one)")
    listing = split / "list.txt"
    entries = _read_list(listing)
    for number, name in entries:
        if not (split / name).is_dir():
            raise DatasetError(f"{listing}:{number}: sequence folder {split / name} is missing")

    def load(name: str) -> EvalSequence:
        folder = split / name
        count = _frame_count(folder)
        xywh = read_box_file(folder / "groundtruth.txt", count, first_only=True)
        absent = _optional_flags(folder / "absence.label", count).astype(bool)
        cover = folder / "cover.label"
        if cover.exists():
            absent |= read_flag_file(cover, count, most=8) == 0
        return _box_sequence(name, folder, xywh, absent, "got10k")

    return [name for _, name in entries], load


# --------------------------------------------------------------------------- tag


def _tag_listing(root: Path) -> tuple[list[str], Callable[[str], EvalSequence]]:
    boxes = root / "Boxes"
    if not boxes.is_dir() or not (root / "JPEGImages").is_dir():
        raise DatasetError(f"{root}: a Tracking-Any-Granularity split folder holds JPEGImages/ and Boxes/")
    listing = root.resolve().parent / "ImageSets" / f"{root.resolve().name}.txt"
    if listing.is_file():
        entries = _read_list(listing)
        for number, name in entries:
            if not (boxes / f"{name}.txt").is_file():
                raise DatasetError(f"{listing}:{number}: {boxes / (name + '.txt')} is missing")
        names = [name for _, name in entries]
    else:
        names = sorted((p.stem for p in boxes.glob("*.txt")), key=natural_sort_key)
        if not names:
            raise DatasetError(f"{boxes}: holds no <seq>.txt box files")

    def load(name: str) -> EvalSequence:
        frames = root / "JPEGImages" / name
        count = _frame_count(frames)
        xywh = read_box_file(boxes / f"{name}.txt", count)
        visibles = root / "Visibles" / f"{name}.txt"
        absent = read_flag_file(visibles, count) == 0 if visibles.exists() else np.zeros(count, bool)
        return _box_sequence(name, frames, xywh, absent, "tag", _tag_attributes(root / "Attributes" / f"{name}.txt"))

    return names, load


def _tag_attributes(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    names: list[str] = []
    for line in _read_text(path).splitlines():
        names.extend(field.strip() for field in line.split(",") if field.strip())
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- davis (DAVIS 2017, MOSE, SA-V)


class AnnotationFrames:
    """Ground-truth label maps of one sequence, loaded from its PNGs when asked (frame -> [H, W] int32, 0 = bg).

    `first_frames`: object id -> its first annotated frame (where its mask is not empty); `object_folders`: SA-V's
    per-object folder names by object id (empty for indexed PNGs); `annotated`: the frames with annotations.
    """

    def __init__(self, size: tuple[int, int], frame_paths: Mapping[int, Path],
                 object_paths: Mapping[int, Mapping[int, Path]], object_folders: Mapping[int, str]) -> None:
        self.size = size
        self._frame_paths = dict(frame_paths)
        self._object_paths = {obj: dict(paths) for obj, paths in object_paths.items()}
        self.object_folders = dict(object_folders)
        frames = set(self._frame_paths).union(*(paths.keys() for paths in self._object_paths.values()))
        self.annotated = tuple(sorted(frames))
        self._annotated_set = frozenset(frames)
        self.first_frames: dict[int, int] = {}

    @property
    def per_object(self) -> bool:
        return bool(self.object_folders)

    def __call__(self, frame: int) -> np.ndarray:
        if frame not in self._annotated_set:
            raise DatasetError(f"frame {frame} has no annotation (annotated: {_shown_frames(self.annotated)})")
        if not self.per_object:
            labels = load_label_png(self._frame_paths[frame], self.size).astype(np.int32)
            labels[labels == VOID_LABEL] = 0
            return labels
        labels = np.zeros(self.size, np.int32)
        for obj_id in sorted(self._object_paths, reverse=True):  # the lower id painted last: it wins overlaps
            path = self._object_paths[obj_id].get(frame)
            if path is not None:
                labels[load_label_png(path, self.size, binary=True) > 0] = obj_id
        return labels

    def scan(self) -> None:
        """Find the objects and their first frames (reads every annotation once)."""
        if self.per_object:
            for obj_id, paths in self._object_paths.items():
                first = next((f for f in sorted(paths) if load_label_png(paths[f], self.size, binary=True).any()), None)
                if first is not None:
                    self.first_frames[obj_id] = first
            return
        for frame in self.annotated:
            for value in np.unique(self(frame)):
                if value:
                    self.first_frames.setdefault(int(value), frame)


def _shown_frames(frames: Sequence[int]) -> str:
    return ", ".join(map(str, frames[:8])) + (", ..." if len(frames) > 8 else "")


def load_label_png(path: Path, size: tuple[int, int], binary: bool = False) -> np.ndarray:
    """An annotation PNG's label values ([H, W]); refuses colour images, whose pixels are not object ids."""
    allowed = ("P", "L", "1") if binary else ("P", "L")
    try:
        with Image.open(path) as image:
            mode = image.mode
            labels = np.array(image)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable PNG ({error})") from None
    if mode not in allowed:
        raise DatasetError(f"{path}: an annotation must be an indexed (palette) or greyscale PNG, got mode {mode}")
    if labels.shape != tuple(size):
        raise DatasetError(f"{path}: the annotation is {labels.shape[1]}x{labels.shape[0]}, "
                           f"the frames are {size[1]}x{size[0]}")
    return labels


def _davis_listing(root: Path) -> tuple[list[str], Callable[[str], EvalSequence]]:
    pair = next(((root / f, root / a) for f, a in _DAVIS_FOLDERS if (root / f).is_dir() and (root / a).is_dir()), None)
    if pair is None:
        expected = " or ".join(f"{f}/ with {a}/" for f, a in _DAVIS_FOLDERS)
        raise DatasetError(f"{root}: expected {expected}")
    frames_root, truth_root = pair
    listing = next((root / name for name in _DAVIS_LISTS if (root / name).is_file()), None)
    if listing is not None:
        names = [name for _, name in _read_list(listing)]
    else:
        names = [folder.name for folder in _subfolders(truth_root)]
        if not names:
            raise DatasetError(f"{truth_root}: holds no sequence folders")
    return names, lambda name: _davis_sequence(frames_root, truth_root, name)


def _davis_sequence(frames_root: Path, truth_root: Path, name: str) -> EvalSequence:
    frames = _frame_files(frames_root / name)
    size = _image_size(frames[0])
    by_stem = {path.stem: index for index, path in enumerate(frames)}
    folder = truth_root / name
    if not folder.is_dir():
        raise DatasetError(f"{folder}: the annotations folder of {name!r} is missing")
    pngs = sorted(folder.glob("*.png"))
    frame_paths: dict[int, Path] = {}
    object_paths: dict[int, dict[int, Path]] = {}
    object_folders: dict[int, str] = {}
    if pngs:
        frame_paths = {_frame_of(path, by_stem, frames_root / name): path for path in pngs}
    else:
        for obj_folder in _subfolders(folder):
            if not obj_folder.name.isdigit():
                raise DatasetError(f"{obj_folder}: a per-object annotation folder is named by a number (000, 001...)")
            obj_id = int(obj_folder.name) + 1
            object_folders[obj_id] = obj_folder.name
            object_paths[obj_id] = {_frame_of(p, by_stem, frames_root / name): p for p in obj_folder.glob("*.png")}
        if not object_paths:
            raise DatasetError(f"{folder}: holds no annotation PNGs (<frame>.png, or <object>/<frame>.png)")
    masks = AnnotationFrames(size, frame_paths, object_paths, object_folders)
    masks.scan()
    if not masks.first_frames:
        raise DatasetError(f"{folder}: no annotation holds an object")
    annotated = None if len(masks.annotated) == len(frames) else masks.annotated
    truth = GroundTruth(tuple(sorted(masks.first_frames)), masks=masks, annotated=annotated)
    return EvalSequence(name, frames_root / name, len(frames), size, "mask", truth, (), "davis")


def _frame_of(path: Path, by_stem: Mapping[str, int], frames_folder: Path) -> int:
    if path.stem not in by_stem:
        raise DatasetError(f"{path}: no frame {path.stem} in {frames_folder}")
    return by_stem[path.stem]


# --------------------------------------------------------------------------- tapvid


@dataclass(frozen=True)
class _TapVideo:
    name: str
    source: Path
    entry: Mapping[str, Any]


def _read_tapvid(root: Path, videos: Optional[Sequence[str]], cache: Optional[Path]) -> list[EvalSequence]:
    files = [root] if root.is_file() else sorted(
        (p for p in root.iterdir() if p.suffix.lower() in (".pkl", ".pickle", ".npz")), key=natural_sort_key)
    if not files:
        raise DatasetError(f"{root}: holds no TAP-Vid .pkl or .npz files")
    found: dict[str, _TapVideo] = {}
    for path in files:
        for video in _tapvid_entries(path):
            if video.name in found:
                raise DatasetError(f"{path}: video {video.name!r} is also in {found[video.name].source}")
            found[video.name] = video
    names = _selected(list(found), videos, root)
    cache_root = Path(cache) if cache is not None else _default_cache()
    return [_tapvid_sequence(found[name], cache_root) for name in names]


def _tapvid_entries(path: Path) -> list[_TapVideo]:
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = {key: data[key] for key in data.files}
        except (OSError, ValueError) as error:
            raise DatasetError(f"{path}: not a readable npz ({error})") from None
        _check_name(path.stem, str(path))
        return [_TapVideo(path.stem, path, entry)]
    try:
        with open(path, "rb") as file:
            data = pickle.load(file)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise DatasetError(f"{path}: not a readable pickle ({error})") from None
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: a TAP-Vid pickle holds a dict of video name -> video, got {type(data).__name__}")
    entries = []
    for name, entry in data.items():
        _check_name(str(name), str(path))
        if not isinstance(entry, Mapping):
            raise DatasetError(f"{path}: video {name!r} must be a dict with video, points, occluded")
        entries.append(_TapVideo(str(name), path, entry))
    return entries


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sam2_plus" / "tapvid"


def _tapvid_sequence(video: _TapVideo, cache_root: Path) -> EvalSequence:
    where = f"{video.source}: video {video.name!r}"
    for key in ("video", "points", "occluded"):
        if key not in video.entry:
            raise DatasetError(f"{where}: missing {key!r}")
    frames = _tapvid_frames(video.entry["video"], where)
    count, height, width = frames.shape[:3]
    points = np.asarray(video.entry["points"], dtype=np.float64)
    occluded = np.asarray(video.entry["occluded"])
    if points.ndim != 3 or points.shape[1:] != (count, 2):
        raise DatasetError(f"{where}: 'points' must be [N, {count}, 2] (x, y in 0..1), got shape {list(points.shape)}")
    if occluded.shape != points.shape[:2] or occluded.dtype != bool:
        raise DatasetError(f"{where}: 'occluded' must be bool [N, {count}] = {list(points.shape[:2])}, "
                           f"got {occluded.dtype} {list(occluded.shape)}")
    if not np.isfinite(points).all():
        raise DatasetError(f"{where}: 'points' holds NaN or infinite values")
    kept = np.flatnonzero((~occluded).any(axis=1))
    pixels = points[kept] * np.array([width, height], dtype=np.float64)
    folder = _cached_frames(frames, cache_root / _source_digest(video.source) / video.name)
    truth = GroundTruth(tuple(int(n) + 1 for n in kept), points=pixels.transpose(1, 0, 2),
                        occluded=occluded[kept].T.copy())
    return EvalSequence(video.name, folder, count, (height, width), "point", truth, (), "tapvid")


def _tapvid_frames(video: Any, where: str) -> np.ndarray:
    if isinstance(video, (list, tuple)) or (isinstance(video, np.ndarray) and video.dtype == object):
        decoded = []
        for index, item in enumerate(video):
            if isinstance(item, np.ndarray):  # a list of decoded frames
                decoded.append(item)
                continue
            image = cv2.imdecode(np.frombuffer(bytes(item), np.uint8), cv2.IMREAD_COLOR) if isinstance(
                item, (bytes, bytearray, np.bytes_)) else None
            if image is None:
                raise DatasetError(f"{where}: frame {index} is neither an RGB array nor JPEG/PNG bytes")
            decoded.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        if len({frame.shape for frame in decoded}) > 1:
            raise DatasetError(f"{where}: the frames differ in size")
        video = np.stack(decoded) if decoded else np.zeros((0, 0, 0, 3), np.uint8)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[3] != 3 or video.dtype != np.uint8 or video.shape[0] == 0:
        raise DatasetError(f"{where}: 'video' must be [T, H, W, 3] uint8 RGB with T > 0, "
                           f"got {video.dtype} {list(video.shape)}")
    return video


def _source_digest(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def _cached_frames(frames: np.ndarray, folder: Path) -> Path:
    """PNG frames of `frames` in `folder`, written once: a marker written last says they are complete."""
    mark = folder / _CACHE_MARK
    expected = {"frames": int(frames.shape[0]), "height": int(frames.shape[1]), "width": int(frames.shape[2])}
    try:
        if json.loads(mark.read_text(encoding="utf-8")) == expected:
            return folder
    except (OSError, ValueError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        if not cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise DatasetError(f"{folder}: cannot write frame {index}")
    mark.write_text(json.dumps(expected), encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- prompts


def prompts_for(seq: EvalSequence) -> dict:
    """The prompts JSON (sam2_plus/prompts.py) for `seq`: each object's first annotation at the layout's
    granularity (a mask on its first annotated frame, the first present box, the first visible point)."""
    if seq.granularity == "mask":
        objects = _mask_prompts(seq)
    elif seq.granularity == "box":
        objects = _box_prompts(seq)
    elif seq.granularity == "point":
        objects = _point_prompts(seq)
    else:
        raise DatasetError(f"{seq.name}: unknown granularity {seq.granularity!r}")
    if not objects:
        raise DatasetError(f"{seq.name}: no object has an annotation to prompt with")
    return {"objects": objects}


def _first_frames(seq: EvalSequence) -> dict[int, int]:
    known = getattr(seq.truth.masks, "first_frames", None)
    if known:
        return dict(known)
    first: dict[int, int] = {}
    frames = seq.truth.annotated if seq.truth.annotated is not None else range(seq.num_frames)
    for frame in frames:
        for value in np.unique(seq.truth.masks(frame)):
            if value:
                first.setdefault(int(value), frame)
    return first


def _mask_prompts(seq: EvalSequence) -> list[dict]:
    first = _first_frames(seq)
    objects = []
    for obj_id in seq.truth.obj_ids:
        if obj_id not in first:
            continue
        mask = seq.truth.masks(first[obj_id]) == obj_id
        objects.append({"id": int(obj_id), "task": "mask",
                        "prompts": [{"frame": int(first[obj_id]), "mask": encode_rle(mask)}]})
    return objects


def _box_prompts(seq: EvalSequence) -> list[dict]:
    height, width = seq.size
    objects = []
    for column, obj_id in enumerate(seq.truth.obj_ids):
        for frame, box in enumerate(seq.truth.boxes[:, column]):
            if not np.isfinite(box).all():
                continue
            x1, x2 = np.clip(box[[0, 2]], 0, width)
            y1, y2 = np.clip(box[[1, 3]], 0, height)
            if x2 > x1 and y2 > y1:
                objects.append({"id": int(obj_id), "task": "box",
                                "prompts": [{"frame": frame, "box": [float(x1), float(y1), float(x2), float(y2)]}]})
                break
    return objects


def _point_prompts(seq: EvalSequence) -> list[dict]:
    height, width = seq.size
    objects = []
    for column, obj_id in enumerate(seq.truth.obj_ids):
        visible = np.flatnonzero(~seq.truth.occluded[:, column])
        if visible.size == 0:
            continue
        frame = int(visible[0])
        x, y = seq.truth.points[frame, column]
        point = [float(np.clip(x, 0, width)), float(np.clip(y, 0, height))]
        objects.append({"id": int(obj_id), "task": "point", "prompts": [{"frame": frame, "points": [point]}]})
    return objects


# --------------------------------------------------------------------------- predictions: results JSON in


@dataclass(frozen=True)
class _ResultObject:
    visible: bool
    box: Optional[tuple[float, float, float, float]]
    point: Optional[tuple[float, float]]
    mask: Optional[Mapping[str, Any]]


def _results(seq: EvalSequence, path: Path) -> dict[int, dict[int, _ResultObject]]:
    """frame -> object id -> what the tracker said, from a results JSON; checked against the sequence."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a results JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        raise DatasetError(f"{path}: not a results JSON (no \"format\": \"{RESULTS_FORMAT}\")")
    frames = document.get("frames")
    if not isinstance(frames, list):
        raise DatasetError(f"{path}: 'frames' must be a list")
    results: dict[int, dict[int, _ResultObject]] = {}
    for index, entry in enumerate(frames):
        where = f"{path}: frames[{index}]"
        try:
            frame = entry["frame"]
            objects = {int(item["id"]): _result_object(item, where) for item in entry["objects"]}
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{where}: malformed ({type(error).__name__}: {error})") from None
        if not isinstance(frame, int) or not 0 <= frame < seq.num_frames:
            raise DatasetError(f"{where}: frame {frame!r} is not one of the sequence's {seq.num_frames} frames")
        results[frame] = objects
    return results


def _result_object(item: Mapping[str, Any], where: str) -> _ResultObject:
    box, point = item.get("box"), item.get("point")
    box_values = None if box is None or any(v is None for v in box) else tuple(float(v) for v in box)
    point_values = None if point is None or any(v is None for v in point) else tuple(float(v) for v in point)
    if (box_values is not None and len(box_values) != 4) or (point_values is not None and len(point_values) != 2):
        raise DatasetError(f"{where}: object {item.get('id')}: a box has 4 numbers and a point 2")
    return _ResultObject(bool(item["visible"]), box_values, point_values, item.get("mask"))


def _result_boxes(seq: EvalSequence, results: Mapping[int, Mapping[int, _ResultObject]]) -> np.ndarray:
    boxes = np.full((seq.num_frames, len(seq.truth.obj_ids), 4), np.nan)
    for frame, objects in results.items():
        for column, obj_id in enumerate(seq.truth.obj_ids):
            found = objects.get(obj_id)
            if found is not None and found.visible and found.box is not None:
                boxes[frame, column] = found.box
    return boxes


def _result_mask(found: _ResultObject, size: tuple[int, int], where: str) -> np.ndarray:
    try:
        mask = decode_rle(found.mask)
    except RLEError as error:
        raise DatasetError(f"{where}: {error}") from None
    if mask.shape != tuple(size):
        raise DatasetError(f"{where}: the mask is {mask.shape[1]}x{mask.shape[0]}, the frames {size[1]}x{size[0]}")
    return mask


# --------------------------------------------------------------------------- predictions: dataset formats out


def write_predictions(seq: EvalSequence, results_json: Path, out_dir: Path) -> Path:
    """Convert a tracking job's results JSON to the dataset's own prediction format under `out_dir` (see the
    module's docstring); returns the file or folder written."""
    results = _results(seq, Path(results_json))
    out_dir = Path(out_dir)
    if seq.granularity == "mask":
        return _write_masks(seq, results, Path(results_json), out_dir)
    if seq.granularity == "box":
        return _write_boxes(seq, _result_boxes(seq, results), out_dir)
    if seq.granularity == "point":
        return _write_points(seq, results, out_dir)
    raise DatasetError(f"{seq.name}: unknown granularity {seq.granularity!r}")


def _frame_stems(seq: EvalSequence) -> list[str]:
    if Path(seq.video).is_dir():
        stems = [path.stem for path in _frame_files(Path(seq.video))]
        if len(stems) == seq.num_frames:
            return stems
    return [f"{frame:05d}" for frame in range(seq.num_frames)]


def _visible_masks(seq: EvalSequence, objects: Mapping[int, _ResultObject], where: str) -> dict[int, np.ndarray]:
    return {obj_id: _result_mask(objects[obj_id], seq.size, f"{where}, object {obj_id}")
            for obj_id in seq.truth.obj_ids if obj_id in objects and objects[obj_id].visible
            and objects[obj_id].mask is not None}


def _write_masks(seq: EvalSequence, results: Mapping[int, Mapping[int, _ResultObject]], source: Path,
                 out_dir: Path) -> Path:
    folder = out_dir / seq.name
    folder.mkdir(parents=True, exist_ok=True)
    object_folders = getattr(seq.truth.masks, "object_folders", {}) or {}
    if any(obj_id > VOID_LABEL - 1 for obj_id in seq.truth.obj_ids) and not object_folders:
        raise DatasetError(f"{seq.name}: an indexed PNG holds object ids up to {VOID_LABEL - 1}")
    for frame, stem in enumerate(_frame_stems(seq)):
        masks = _visible_masks(seq, results.get(frame, {}), f"{source}: frame {frame}")
        if object_folders:
            for obj_id in seq.truth.obj_ids:
                mask = masks.get(obj_id, np.zeros(seq.size, bool))
                _save_palette_png(folder / object_folders[obj_id] / f"{stem}.png", mask.astype(np.uint8))
            continue
        labels = np.zeros(seq.size, np.uint8)
        for obj_id in sorted(masks, reverse=True):  # the lower id painted last: it wins overlaps
            labels[masks[obj_id]] = obj_id
        _save_palette_png(folder / f"{stem}.png", labels)
    return folder


def _save_palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels, mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    image.save(path, format="PNG")


def box_file(seq: EvalSequence, folder: Path) -> Path:
    """Where `seq`'s box predictions live under `folder`."""
    if seq.layout == "got10k":
        return Path(folder) / seq.name / f"{seq.name}_001.txt"
    return Path(folder) / f"{seq.name}.txt"


def _write_boxes(seq: EvalSequence, boxes: np.ndarray, out_dir: Path) -> Path:
    if boxes.shape[1] != 1:
        raise DatasetError(f"{seq.name}: a box prediction file holds one object; this sequence has {boxes.shape[1]}")
    lines = []
    for box in boxes[:, 0]:
        x1, y1, x2, y2 = box
        # a box without area (an untrained box head gives x2 < x1) is no box: the toolkits' 0,0,0,0
        has_area = np.isfinite(box).all() and x2 > x1 and y2 > y1
        values = [x1, y1, x2 - x1, y2 - y1] if has_area else [0.0, 0.0, 0.0, 0.0]
        if seq.layout == "tag":
            lines.append(" ".join(str(int(np.rint(v))) for v in values))
        else:
            lines.append(",".join(_decimal(v) for v in values))
    path = box_file(seq, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _decimal(value: float) -> str:
    text = f"{float(value):.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _write_points(seq: EvalSequence, results: Mapping[int, Mapping[int, _ResultObject]], out_dir: Path) -> Path:
    count = len(seq.truth.obj_ids)
    trajs = np.full((seq.num_frames, count, 2), np.nan)
    visibs = np.zeros((seq.num_frames, count), bool)
    for frame, objects in results.items():
        for column, obj_id in enumerate(seq.truth.obj_ids):
            found = objects.get(obj_id)
            if found is not None and found.point is not None:
                trajs[frame, column] = found.point
                visibs[frame, column] = found.visible
    path = out_dir / f"{seq.name}.npz"
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = seq.size
    with open(path, "wb") as file:
        np.savez(file, trajs_2d=trajs, visibs=visibs, size=np.array([width, height]),
                 obj_ids=np.array(seq.truth.obj_ids, dtype=np.int64))
    return path


# --------------------------------------------------------------------------- predictions: read back


def read_predictions(seq: EvalSequence, pred_dir: Path) -> Prediction:
    """`seq`'s predictions in the dataset's own format under `pred_dir` (as `write_predictions` writes them, or as
    another tracker wrote them in that format), shaped like the ground truth."""
    pred_dir = Path(pred_dir)
    if seq.granularity == "mask":
        return Prediction(masks=_predicted_masks(seq, pred_dir))
    if seq.granularity == "box":
        return Prediction(boxes=_read_predicted_boxes(seq, box_file(seq, pred_dir)))
    if seq.granularity == "point":
        return _read_predicted_points(seq, pred_dir / f"{seq.name}.npz")
    raise DatasetError(f"{seq.name}: unknown granularity {seq.granularity!r}")


class PredictedMasks:
    """Predicted label maps of one sequence (frame -> [H, W] int32), loaded from its PNGs when asked."""

    def __init__(self, seq: EvalSequence, folder: Path) -> None:
        self.folder = folder
        self.size = seq.size
        self.stems = _frame_stems(seq)
        self.object_folders = dict(getattr(seq.truth.masks, "object_folders", {}) or {})

    def __call__(self, frame: int) -> np.ndarray:
        if not 0 <= frame < len(self.stems):
            raise DatasetError(f"{self.folder}: frame {frame} is outside the sequence's {len(self.stems)} frames")
        stem = self.stems[frame]
        if not self.object_folders:
            return load_label_png(self.folder / f"{stem}.png", self.size).astype(np.int32)
        labels = np.zeros(self.size, np.int32)
        for obj_id in sorted(self.object_folders, reverse=True):
            path = self.folder / self.object_folders[obj_id] / f"{stem}.png"
            labels[load_label_png(path, self.size, binary=True) > 0] = obj_id
        return labels


def _predicted_masks(seq: EvalSequence, pred_dir: Path) -> PredictedMasks:
    folder = pred_dir / seq.name
    if not folder.is_dir():
        raise DatasetError(f"{folder}: the predictions of {seq.name!r} are missing")
    return PredictedMasks(seq, folder)


def _read_predicted_boxes(seq: EvalSequence, path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: the predictions of {seq.name!r} are missing")
    xywh = read_box_file(path, seq.num_frames)
    return _xywh_to_xyxy(xywh, np.zeros(len(xywh), bool))[:, None, :]


def _read_predicted_points(seq: EvalSequence, path: Path) -> Prediction:
    if not path.is_file():
        raise DatasetError(f"{path}: the predictions of {seq.name!r} are missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable npz ({error})") from None
    for key in ("trajs_2d", "visibs"):
        if key not in arrays:
            raise DatasetError(f"{path}: missing {key!r}")
    trajs, visibs = arrays["trajs_2d"].astype(np.float64), arrays["visibs"].astype(bool)
    ids = [int(v) for v in arrays.get("obj_ids", np.array(seq.truth.obj_ids))]
    if trajs.shape != (seq.num_frames, len(ids), 2) or visibs.shape != trajs.shape[:2]:
        raise DatasetError(f"{path}: trajs_2d must be [{seq.num_frames}, N, 2] and visibs [{seq.num_frames}, N] "
                           f"for {len(ids)} objects, got {list(trajs.shape)} and {list(visibs.shape)}")
    missing = [obj_id for obj_id in seq.truth.obj_ids if obj_id not in ids]
    if missing:
        raise DatasetError(f"{path}: no track for object ids {missing}")
    columns = [ids.index(obj_id) for obj_id in seq.truth.obj_ids]
    return Prediction(points=trajs[:, columns], occluded=~visibs[:, columns])
