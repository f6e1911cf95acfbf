"""Ultralytics YOLO datasets: segmentation (``yolo-seg``) and detection (``yolo-det``).

Layout (Ultralytics' own)::

    data.yaml                        names: {0: obj_1, 1: obj_2, ...}; train and val: images/train
    labels/train/frame_000000.txt    one file per tracked frame (empty when no object shows)
    images/train/                    the frames, not included (see below)

A class is an object (class k is the k-th object of the prompts). A detection line is
``class x_centre y_centre width height`` (the box clipped to the frame), a segmentation line
``class x1 y1 x2 y2 ...``, normalised by the frame's width and height; an object in several parts has one
segmentation line per part. The vertices are the centres of the mask's edge pixels, as Ultralytics' own mask
converter writes them, so Ultralytics and supervision fill them back to the same pixels (``polygons`` says
more). The labels refer to the frames by name: put the video's
frames in ``images/train/`` as ``frame_000000.jpg`` and so on (``python -m sam2_plus.exports.frames VIDEO
DIR/images/train``), and the folder is a dataset that Ultralytics trains on; CVAT's "Ultralytics YOLO" importers
match the same names to a video task's frames.

Written by hand: Datumaro (1.13) writes and reads YOLO detection only, and the ``ultralytics`` package
needs the non-headless OpenCV, which clashes with this project's ``opencv-python-headless``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import yaml

from ..media.export import FrameRecord
from .common import ExportTarget, frame_name, present_objects
from .polygons import format_points, mask_polygons

SUBSET = "train"
_DECIMALS = 6


class YoloWriter:
    """Streams label files; ``data.yaml`` is written on close. `segment` picks polygons over boxes."""

    def __init__(self, target: ExportTarget, segment: bool) -> None:
        self.target = target
        self.segment = segment
        self.labels = target.folder / "labels" / SUBSET
        self.labels.mkdir(parents=True, exist_ok=True)
        self._classes = {obj_id: k for k, obj_id in enumerate(target.obj_ids)}
        self._closed = False

    def write(self, result: FrameRecord) -> None:
        size = (result.width, result.height)
        lines = []
        for i, obj_id, box in present_objects(result):
            cls = self._classes.get(obj_id)
            if cls is None:
                continue
            if self.segment:
                lines.extend(_polygon_line(cls, p, size) for p in mask_polygons(result.masks[i], edges=False))
            else:
                lines.append(_box_line(cls, box, size))
        text = "".join(line + "\n" for line in lines if line is not None)
        (self.labels / f"{frame_name(result.frame_idx)}.txt").write_text(text, encoding="utf-8")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        names = {k: self.target.name(obj_id) for obj_id, k in self._classes.items()}
        config = {"train": f"images/{SUBSET}", "val": f"images/{SUBSET}", "names": names}
        note = (f"# {'Segmentation' if self.segment else 'Detection'} labels of {self.target.sequence_name}, "
                f"one class per tracked object.\n# Put the video's frames in images/{SUBSET}/ as "
                "frame_000000.jpg, ... (python -m sam2_plus.exports.frames VIDEO images/train).\n")
        (self.target.folder / "data.yaml").write_text(note + yaml.safe_dump(config, sort_keys=False),
                                                      encoding="utf-8")


def _box_line(cls: int, box: np.ndarray, size: tuple[int, int]) -> str:
    """Clipped to the frame: Ultralytics drops a whole label file with a coordinate outside 0..1 (a box
    head's box may reach past the frame's edge)."""
    width, height = size
    x1, y1, x2, y2 = (float(v) for v in np.clip(box, 0, [width, height, width, height]))
    values = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
    return " ".join([str(cls), *(f"{v:.{_DECIMALS}f}" for v in values)])


def _polygon_line(cls: int, polygon: np.ndarray, size: tuple[int, int]) -> Optional[str]:
    if len(polygon) < 3:
        return None
    return " ".join([str(cls), *format_points(polygon, size, _DECIMALS)])
