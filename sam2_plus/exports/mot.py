"""MOT Challenge ground truth: boxes (``mot``) and MOTS masks (``mots``).

Both are a sequence folder as the benchmarks lay it out: ``seqinfo.ini`` (name, frame rate, length, frame
size, ``imDir=img1``, ``imExt=.jpg``) and ``gt/gt.txt``. Frames are numbered from 1, as the benchmarks do
(frame k of the video is line frame k + 1).

- MOT (``gt/gt.txt``): ``frame,id,left,top,width,height,1,1,1.0`` per object shown on a frame: the id is the
  object id, then "consider" 1, class 1 (the class that MOT evaluations score) and visibility 1.0. Boxes are
  pixels from the frame's top-left corner, as CVAT and Datumaro write them.
- MOTS (``gt/gt.txt``, MOTS Challenge's text format): ``frame id class height width rle`` with class 2 and
  ``id = 2000 + object id`` (MOTS packs the class into the id, so object ids must be under 1000) and the mask as
  COCO's compressed RLE (pycocotools). MOTS forbids overlapping masks: a pixel that several objects claim goes
  to the one with the higher presence score (the earlier object on a tie).

Written by hand: Datumaro's MOT exporter renumbers the tracks and writes no ``seqinfo.ini``, and it reads
and writes MOTS as PNGs only; these are text files of one line per object and frame.
"""

from __future__ import annotations

import configparser
import io
from collections.abc import Iterable

import numpy as np

from ..media.export import FrameRecord
from ..media.rle import encode_rle
from .common import IMAGE_EXT, ExportError, ExportTarget, present_objects, xywh

MOTS_CLASS = 2  # MOTS Challenge: 2 pedestrian (its only class; 10 "ignore")
MOTS_ID_FACTOR = 1000


def write_seqinfo(target: ExportTarget) -> None:
    """MOT Challenge's ``seqinfo.ini`` for the tracked video."""
    video = target.video
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keep the benchmark's camelCase keys
    parser["Sequence"] = {"name": target.sequence_name, "imDir": "img1", "frameRate": str(round(video.fps)),
                          "seqLength": str(video.num_frames), "imWidth": str(video.width),
                          "imHeight": str(video.height), "imExt": IMAGE_EXT}
    text = io.StringIO()
    parser.write(text, space_around_delimiters=False)
    (target.folder / "seqinfo.ini").write_text(text.getvalue(), encoding="utf-8")


class _SequenceWriter:
    """``gt/gt.txt`` streamed line by line; ``seqinfo.ini`` on close."""

    def __init__(self, target: ExportTarget) -> None:
        self.target = target
        self.path = target.folder / "gt" / "gt.txt"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._objects = set(target.obj_ids)
        self._file = open(self.path, "w", encoding="utf-8")

    def write(self, result: FrameRecord) -> None:
        for line in self.lines(result):
            self._file.write(line + "\n")

    def lines(self, result: FrameRecord) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            write_seqinfo(self.target)


class MotWriter(_SequenceWriter):
    def lines(self, result: FrameRecord) -> list[str]:
        return [",".join([str(result.frame_idx + 1), str(obj_id), *(f"{v:.2f}" for v in xywh(box)), "1", "1", "1.0"])
                for _, obj_id, box in present_objects(result) if obj_id in self._objects]


def check_mots_ids(obj_ids: Iterable[int]) -> None:
    too_large = [obj_id for obj_id in obj_ids if not 0 < obj_id < MOTS_ID_FACTOR]
    if too_large:
        raise ExportError(f"the mots export needs object ids from 1 to {MOTS_ID_FACTOR - 1} (MOTS writes "
                          f"class * {MOTS_ID_FACTOR} + id); object {too_large[0]} is not")


class MotsWriter(_SequenceWriter):
    def __init__(self, target: ExportTarget) -> None:
        check_mots_ids(target.obj_ids)
        super().__init__(target)

    def lines(self, result: FrameRecord) -> list[str]:
        lines = []
        for i, mask in non_overlapping(result).items():
            obj_id = result.obj_ids[i]
            if obj_id in self._objects and mask.any():
                counts = encode_rle(mask)["counts"]
                track = MOTS_CLASS * MOTS_ID_FACTOR + obj_id
                lines.append(f"{result.frame_idx + 1} {track} {MOTS_CLASS} {result.height} {result.width} {counts}")
        return lines


def non_overlapping(result: FrameRecord) -> dict[int, np.ndarray]:
    """The masks of the visible objects (by index) with every pixel given to one object only: the one with the
    higher presence score, the earlier one on a tie. In object order."""
    shown = [i for i, _, _ in present_objects(result)]
    order = sorted(shown, key=lambda i: (-float(result.scores[i]), i))
    taken = np.zeros(result.masks.shape[1:], dtype=bool)
    masks = {}
    for i in order:
        masks[i] = result.masks[i] & ~taken
        taken |= masks[i]
    return {i: masks[i] for i in shown}
