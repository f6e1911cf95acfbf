"""CVAT for video 1.1 (``cvat/annotations.xml``): import it into a CVAT task made from the same video
(Actions > Upload annotations > "CVAT 1.1").

Each object has two tracks, grouped (``group_id``) and labelled ``obj_{id}``: its box (``<box>``) and its
mask outline (``<polygon>``; a mask in several parts is one polygon with bridges, see
``polygons.single_polygon``). Every frame that shows the object is a keyframe; the frame after the last
one that showed it is ``outside="1"``, and a later frame that shows it again is a keyframe again, which is
how CVAT marks an object leaving and returning. Coordinates are pixels of the frame with two decimals.

Written by hand: Datumaro's CVAT exporter writes "CVAT for images" only (no tracks, no ``outside``), and
CVAT's own writer lives inside its server. The shapes stream into one temporary file per track, since
CVAT's XML groups them by track while results come frame by frame.
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from typing import Optional, TextIO

import numpy as np

from ..media.export import FrameRecord
from ..media.render import color_for_id, hex_color
from .common import ExportTarget, present_objects
from .polygons import format_points, mask_polygons, single_polygon

ANNOTATIONS = "annotations.xml"


class _Track:
    """One track's shapes so far, in a temporary file, and the last shape, for its ``outside`` frame."""

    def __init__(self, track_id: int, obj_id: int, kind: str, label: str) -> None:
        self.track_id, self.obj_id, self.kind, self.label = track_id, obj_id, kind, label
        self._file: TextIO = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.last: Optional[dict[str, str]] = None  # the last shape's attributes, while the object is shown

    def shown(self, frame: int, geometry: dict[str, str]) -> None:
        self.last = geometry
        self._add(frame, outside=False, geometry=geometry)

    def hidden(self, frame: int) -> None:
        if self.last is not None:
            self._add(frame, outside=True, geometry=self.last)
            self.last = None

    def _add(self, frame: int, outside: bool, geometry: dict[str, str]) -> None:
        attributes = {"frame": str(frame), "keyframe": "1", "outside": str(int(outside)), "occluded": "0",
                      **geometry, "z_order": "0"}
        self._file.write("    " + ET.tostring(ET.Element(self.kind, attributes), encoding="unicode") + "\n")

    def write_to(self, out: TextIO) -> None:
        if self._file.tell() == 0:
            return  # never shown: CVAT has no empty tracks
        attributes = {"id": str(self.track_id), "label": self.label, "source": "auto",
                      "group_id": str(self.track_id // 2 + 1)}
        out.write("  " + ET.tostring(ET.Element("track", attributes), encoding="unicode").replace(" />", ">\n"))
        self._file.seek(0)
        for line in self._file:
            out.write(line)
        out.write("  </track>\n")

    def close(self) -> None:
        self._file.close()


class CvatVideoWriter:
    """Streams results into ``folder/annotations.xml`` (CVAT for video 1.1), written on close."""

    def __init__(self, target: ExportTarget) -> None:
        self.target = target
        self.path = target.folder / ANNOTATIONS
        target.folder.mkdir(parents=True, exist_ok=True)
        self._boxes = {obj_id: _Track(2 * k, obj_id, "box", target.name(obj_id))
                       for k, obj_id in enumerate(target.obj_ids)}
        self._polygons = {obj_id: _Track(2 * k + 1, obj_id, "polygon", target.name(obj_id))
                          for k, obj_id in enumerate(target.obj_ids)}
        self._next_frame: Optional[int] = None
        self._closed = False

    def write(self, result: FrameRecord) -> None:
        shown: set[int] = set()
        for i, obj_id, box in present_objects(result):
            if obj_id not in self._boxes:
                continue  # an object the export was not opened for
            shown.add(obj_id)
            self._boxes[obj_id].shown(result.frame_idx, _box_geometry(box))
            polygon = single_polygon(mask_polygons(result.masks[i]))
            if len(polygon) >= 3:
                self._polygons[obj_id].shown(result.frame_idx, {"points": _points(polygon)})
            else:
                self._polygons[obj_id].hidden(result.frame_idx)
        for obj_id in set(self._boxes) - shown:
            self._boxes[obj_id].hidden(result.frame_idx)
            self._polygons[obj_id].hidden(result.frame_idx)
        self._next_frame = result.frame_idx + 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tracks = [track for obj_id in self._boxes for track in (self._boxes[obj_id], self._polygons[obj_id])]
        try:
            if self._next_frame is not None and self._next_frame < self.target.video.num_frames:
                for track in tracks:  # the tracks end with the tracked frames, not with the video
                    track.hidden(self._next_frame)
            with open(self.path, "w", encoding="utf-8") as out:
                out.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n')
                out.write(_meta(self.target) + "\n")
                for track in tracks:
                    track.write_to(out)
                out.write("</annotations>\n")
        finally:
            for track in tracks:
                track.close()


def _box_geometry(box: np.ndarray) -> dict[str, str]:
    return {name: f"{float(v):.2f}" for name, v in zip(("xtl", "ytl", "xbr", "ybr"), box)}


def _points(polygon: np.ndarray) -> str:
    values = format_points(polygon)
    return ";".join(f"{x},{y}" for x, y in zip(values[0::2], values[1::2]))


def _meta(target: ExportTarget) -> str:
    """CVAT's <meta>: the task (frames, mode, labels with their colours) and the frame size."""
    video = target.video
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    for name, value in (("name", target.sequence_name), ("size", video.num_frames), ("mode", "interpolation"),
                        ("overlap", 0), ("start_frame", 0), ("stop_frame", max(video.num_frames - 1, 0)),
                        ("frame_filter", "")):
        ET.SubElement(task, name).text = str(value)
    labels = ET.SubElement(task, "labels")
    for obj_id in target.obj_ids:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = target.name(obj_id)
        ET.SubElement(label, "color").text = hex_color(color_for_id(obj_id))
        ET.SubElement(label, "type").text = "any"
        ET.SubElement(label, "attributes")
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(video.width)
    ET.SubElement(size, "height").text = str(video.height)
    ET.indent(meta, space="  ", level=1)
    return "  " + ET.tostring(meta, encoding="unicode")
