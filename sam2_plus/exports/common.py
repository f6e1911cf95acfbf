"""What the export formats share: frame and label names, which objects a frame holds, box conversions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..media.decode import VideoInfo
from ..media.export import FrameRecord

IMAGE_EXT = ".jpg"  # the frame images the exports refer to (see frames.write_frame_images)


class ExportError(ValueError):
    """An export that cannot be written for these objects or this video."""


def frame_name(frame: int) -> str:
    """The name of a frame's image without its extension: CVAT names a video task's frames so."""
    return f"frame_{frame:06d}"


def label_name(obj_id: int, label: str = "") -> str:
    """An object's name in the tools' formats: obj_3, or with a label (a found object's phrase) person_3."""
    word = re.sub(r"[^0-9A-Za-z]+", "_", label).strip("_")
    return f"{word or 'obj'}_{obj_id}"


@dataclass(frozen=True)
class ExportTarget:
    """Where one format's files go and what they describe: the video and its objects, in order."""

    folder: Path
    video: VideoInfo
    tasks: Mapping[int, str]
    labels: Mapping[int, str] = field(default_factory=dict)  # a found object's phrase

    @property
    def obj_ids(self) -> list[int]:
        return [int(obj_id) for obj_id in self.tasks]

    def name(self, obj_id: int) -> str:
        """The object's name in the format (`label_name`)."""
        return label_name(obj_id, self.labels.get(obj_id, ""))

    @property
    def sequence_name(self) -> str:
        return Path(self.video.path).stem if self.video.path else "video"


def present_objects(result: FrameRecord) -> Iterator[tuple[int, int, np.ndarray]]:
    """(index, object id, xyxy box) of every object the frame shows: visible, with a box. The corners are put
    in order, since a box head may give them crossed (the tools take x1 <= x2, y1 <= y2)."""
    for i, obj_id in enumerate(result.obj_ids):
        if result.visible[i]:
            box = result.box_for(i)
            if box is not None:
                yield i, obj_id, ordered(box)


def ordered(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], dtype=np.float64)


def xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]
