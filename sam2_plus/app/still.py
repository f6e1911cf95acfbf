"""The results of a still image on the page: every object's preview (an image-predictor call, or its prompt as
the tracker takes it on its frame) put together as `sam2_plus.segment`'s `ImageSegmentation` (`segmentation`),
whose writers (`write_segmentation`) make the files: a mask PNG and an RGBA cut-out per object, COCO instances
JSON, the results JSON, the effect PNG with effects, and their ZIP. The masks are the ones the page showed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..effects.settings import EffectSettings
from ..media.export import FrameRecord
from ..segment import StillImage
from ..segment.still import Candidate, ImageSegmentation, ObjectSegmentation
from ..segment.writers import WrittenFiles, write_segmentation
from .candidates import MaskCandidates


@dataclass(frozen=True)
class ObjectResult:
    """One object's result on the image, as the page has it."""

    obj_id: int
    task: str
    prompt_kind: str  # "clicks", "box", "clicks+box" or "mask" (segment.still.prompt_kind's words)
    record: FrameRecord  # its preview: this object alone
    candidates: Optional[MaskCandidates] = None  # a click or box prompt's, from the image predictor
    in_use: Optional[int] = None  # the candidate that is its prompt (a pick), else the clicks' own


def segmentation(image: StillImage, model: str, results: list[ObjectResult]) -> ImageSegmentation:
    return ImageSegmentation(image, model, tuple(_object(result) for result in results))


def _object(result: ObjectResult) -> ObjectSegmentation:
    record, found = result.record, result.candidates
    if found is not None:
        candidates = tuple(Candidate(found.masks[i], float(found.ious[i]), tuple(map(float, found.points[i])))
                           for i in range(len(found)))
        chosen = found.chosen if result.in_use is None else result.in_use
        return ObjectSegmentation(result.obj_id, result.task, result.prompt_kind, candidates, chosen)
    mask = record.masks[0] & bool(record.visible[0])
    head = record.boxes[0] if result.task == "box" and record.boxes is not None else None
    head = None if head is None or not np.isfinite(head).all() else tuple(float(v) for v in head)
    point = (np.nan, np.nan) if record.points is None else tuple(float(v) for v in record.points[0])
    candidate = Candidate(mask, None, point, head)
    return ObjectSegmentation(result.obj_id, result.task, result.prompt_kind, (candidate,), 0)


@dataclass(frozen=True)
class ImageResults:
    """An image's segmentation on the page: its files, and what they were written from."""

    segmentation: ImageSegmentation
    files: WrittenFiles
    effects: Optional[EffectSettings]

    def downloads(self) -> list[str]:
        """The ZIP first, then the cut-outs, the effect image, the COCO JSON and the results JSON."""
        order = {"cutouts": 0, "effect.png": 1, "coco": 2}
        shown = sorted((p for p in self.files.files if p.relative_to(self.files.folder).parts[0] in order),
                       key=lambda p: order[p.relative_to(self.files.folder).parts[0]])
        return [str(p) for p in (self.files.archive, *shown, self.files.document)]

    def describe(self) -> str:
        objects = self.segmentation.objects
        shown = sum(obj.visible for obj in objects)
        return f"Done: {shown} of {len(objects)} object(s) segmented on the image."


def write_image_results(found: ImageSegmentation, folder: Path, effects: Optional[EffectSettings]) -> ImageResults:
    return ImageResults(found, write_segmentation(found, folder, effects), effects)
