"""COCO instances (``coco/instances.json``) that ``pycocotools.coco.COCO`` loads.

One image per tracked frame (``id`` = frame + 1, ``file_name`` ``frame_000000.jpg``, ``frame_index``,
``video_id`` 1), one category per object (``id`` = object id, ``name`` ``obj_{id}``), and one annotation per
object and frame that shows it: ``segmentation`` as compressed RLE (pycocotools), ``area`` (mask pixels),
``bbox`` ``[x, y, w, h]`` (the model's box for box-task objects, else the mask's), ``iscrowd`` 0,
``track_id`` (the object id) and ``score`` (presence probability). ``videos`` describes the video, as
video instance segmentation datasets do (YouTube-VIS, TAO).

Written by hand: Datumaro's COCO exporter keeps every annotation in memory until it writes, puts extra fields
such as ``track_id`` under ``attributes``, and marks RLE masks as crowds; here annotations stream to a
temporary file and the JSON is put together on close.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from typing import Any

import numpy as np

from ..media.export import FrameRecord
from ..media.rle import encode_rle
from .common import IMAGE_EXT, ExportTarget, frame_name, present_objects, xywh

INSTANCES = "instances.json"


class CocoInstancesWriter:
    def __init__(self, target: ExportTarget) -> None:
        self.target = target
        self.path = target.folder / INSTANCES
        target.folder.mkdir(parents=True, exist_ok=True)
        self._objects = set(target.obj_ids)
        self._images: list[dict[str, Any]] = []
        self._annotations = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._count = 0

    def write(self, result: FrameRecord) -> None:
        image_id = result.frame_idx + 1
        self._images.append({"id": image_id, "file_name": frame_name(result.frame_idx) + IMAGE_EXT,
                             "width": result.width, "height": result.height, "frame_index": result.frame_idx,
                             "video_id": 1})
        for i, obj_id, box in present_objects(result):
            if obj_id not in self._objects:
                continue
            self._count += 1
            annotation = {"id": self._count, "image_id": image_id, "category_id": obj_id,
                          "segmentation": encode_rle(result.masks[i]),
                          "area": int(np.count_nonzero(result.masks[i])),
                          "bbox": [round(v, 3) for v in xywh(box)], "iscrowd": 0, "track_id": obj_id,
                          "score": _score(result.scores[i])}
            self._annotations.write(("," if self._count > 1 else "") + json.dumps(annotation) + "\n")

    def close(self) -> None:
        if self._annotations.closed:
            return
        try:
            with open(self.path, "w", encoding="utf-8") as out:
                out.write(json.dumps(self._header())[:-1] + ', "annotations": [\n')
                self._annotations.seek(0)
                shutil.copyfileobj(self._annotations, out)
                out.write("]}\n")
        finally:
            self._annotations.close()

    def _header(self) -> dict[str, Any]:
        video = self.target.video
        return {
            "info": {"description": f"SAM 2++ tracking of {self.target.sequence_name}", "version": "1.0"},
            "licenses": [],
            "videos": [{"id": 1, "name": self.target.sequence_name, "width": video.width, "height": video.height,
                        "length": video.num_frames}],
            "categories": [{"id": obj_id, "name": self.target.name(obj_id), "supercategory": "object"}
                           for obj_id in self.target.obj_ids],
            "images": self._images,
        }


def _score(value: float) -> float | None:
    value = float(value)
    return round(value, 5) if math.isfinite(value) else None
