"""The files of a still image's results, in a folder and as one ZIP of the same files.

A segmentation (`write_segmentation`):

    masks/obj_{id}.png        0/255 greyscale, the image's size, one per object
    cutouts/obj_{id}.png      RGBA: the image inside the object's region (its task's granularity, effects/render.py),
                              transparent outside; none for an object with an empty region
    effect.png                the image with the options' effects (only when effects were given)
    coco/instances.json       COCO instances, written by the tracker's COCO export (exports/coco.py): category
                              and track id = object id, score = the chosen candidate's predicted IoU
    results.json              per object: id, task, prompt kind, chosen candidate, every candidate's predicted
                              IoU and area, box (xyxy, x2/y2 exclusive), point, area, mask (COCO RLE)
    segmentation.zip          all of the above

Proposals (`write_proposals`): masks/obj_{id}.png (id = proposal id), coco/instances.json, proposals.json
(`proposals_document`) and proposals.zip.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from ..effects.render import EffectRenderer
from ..effects.settings import Effect, EffectSettings
from ..exports.coco import CocoInstancesWriter
from ..exports.common import ExportTarget, label_name
from ..media.alpha import rgba_png
from ..media.decode import VideoInfo
from ..media.encode import EncodeError
from ..media.export import FrameRecord
from ..media.rle import encode_rle
from .inputs import FindOptions, StillImage
from .proposals import Proposal, proposals_record
from .still import ImageSegmentation, ObjectSegmentation

RESULTS_FORMAT = "sam2plus-image-results"
PROPOSALS_FORMAT = "sam2plus-proposals"
FORMAT_VERSION = 1
FILES = {"results": "results.json", "proposals": "proposals.json", "coco": "coco/instances.json",
         "effect": "effect.png", "zip": "segmentation.zip", "proposals_zip": "proposals.zip"}
_DECIMALS = 5


@dataclass(frozen=True)
class WrittenFiles:
    folder: Path
    archive: Path  # the ZIP of every other file
    document: Path  # results.json or proposals.json
    files: tuple[Path, ...]  # every file but the ZIP, in the order written

    def relative(self) -> list[str]:
        return [p.relative_to(self.folder).as_posix() for p in self.files]


def mask_name(obj_id: int) -> str:
    return f"masks/{label_name(obj_id)}.png"


def cutout_name(obj_id: int) -> str:
    return f"cutouts/{label_name(obj_id)}.png"


def grey_png(mask: np.ndarray) -> bytes:
    """A 0/255 greyscale PNG of an HxW bool mask."""
    ok, encoded = cv2.imencode(".png", mask.astype(np.uint8) * np.uint8(255), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise EncodeError("PNG encoding failed")
    return encoded.tobytes()


def rgb_png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise EncodeError("PNG encoding failed")
    return encoded.tobytes()


def cutout_rgba(image: StillImage, record: FrameRecord, obj_id: int, tasks: Mapping[int, str],
                effects: Optional[EffectSettings] = None) -> Optional[np.ndarray]:
    """HxWx4: the image with the object's effect (none by default) inside its region, transparent outside
    (feathered by `effects.feather`); None when its region is empty."""
    effects = effects or EffectSettings()
    alone = EffectSettings(objects=((obj_id, effects.effect_for(obj_id)),), background=Effect("erase"),
                           feather=effects.feather, point_radius=effects.point_radius)
    composed = EffectRenderer(alone, tasks, with_alpha=True).compose(image.pixels, record)
    if not composed.alpha.any():
        return None
    return composed.rgba(clear_transparent=True)


def segmentation_document(result: ImageSegmentation, files: Mapping[int, Mapping[str, str]] = {}
                          ) -> dict[str, Any]:
    """results.json: the image, the model and every object (`files`: object id -> its file names)."""
    return {"format": RESULTS_FORMAT, "version": FORMAT_VERSION, "image": _image_json(result.image),
            "model": result.model,
            "objects": [_object_json(obj, files.get(obj.obj_id, {})) for obj in result.objects]}


def _object_json(obj: ObjectSegmentation, files: Mapping[str, str]) -> dict[str, Any]:
    box = obj.box
    return {"id": obj.obj_id, "task": obj.task, "prompt": obj.prompt_kind, "chosen": obj.chosen,
            "candidates": [{"predicted_iou": _score(c.iou), "area": c.area} for c in obj.candidates],
            "predicted_iou": _score(obj.iou), "box": None if box is None else [round(v, 3) for v in box],
            "point": [round(v, 3) for v in obj.point], "area": obj.area, "mask": encode_rle(obj.mask),
            "files": dict(files)}


def proposals_document(proposals: Sequence[Proposal], image: StillImage, options: FindOptions,
                       model: str) -> dict[str, Any]:
    """proposals.json: the image (and frame), the settings, the proposals in order."""
    return {"format": PROPOSALS_FORMAT, "version": FORMAT_VERSION, "image": _image_json(image), "model": model,
            "settings": options.to_json(), "sort": options.sort, "proposals": [p.to_json() for p in proposals]}


def _image_json(image: StillImage) -> dict[str, Any]:
    return {"name": image.name, "width": image.width, "height": image.height, "frame": image.frame}


def _score(value: Optional[float]) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else round(float(value), _DECIMALS)


def write_segmentation(result: ImageSegmentation, folder: str | os.PathLike,
                       effects: Optional[EffectSettings] = None) -> WrittenFiles:
    """Every file of a segmentation into `folder` (module doc), and their ZIP."""
    out = _Folder(Path(folder))
    record = result.record()
    per_object: dict[int, dict[str, str]] = {}
    for obj in result.objects:
        names = {"mask": out.put(mask_name(obj.obj_id), grey_png(obj.mask))}
        cutout = cutout_rgba(result.image, record, obj.obj_id, result.tasks, effects)
        if cutout is not None:
            names["cutout"] = out.put(cutout_name(obj.obj_id), rgba_png(cutout))
        per_object[obj.obj_id] = names
    if effects is not None:
        rendered = EffectRenderer(effects, result.tasks).render(result.image.pixels, record)
        out.put(FILES["effect"], rgb_png(rendered))
    out.coco(record, result.image, result.tasks)
    document = out.put(FILES["results"], _json_bytes(segmentation_document(result, per_object)))
    return out.finish(FILES["zip"], document)


def write_proposals(proposals: Sequence[Proposal], image: StillImage, options: FindOptions, model: str,
                    folder: str | os.PathLike) -> WrittenFiles:
    """Mask PNGs, COCO JSON and proposals.json of Find objects into `folder`, and their ZIP."""
    out = _Folder(Path(folder))
    record = proposals_record(proposals, image)
    for proposal, mask in zip(proposals, record.masks):
        out.put(mask_name(proposal.id), grey_png(mask))
    out.coco(record, image, {p.id: "mask" for p in proposals})
    document = out.put(FILES["proposals"], _json_bytes(proposals_document(proposals, image, options, model)))
    return out.finish(FILES["proposals_zip"], document)


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=1) + "\n").encode("utf-8")


class _Folder:
    """Files written under one folder, remembered for the ZIP."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files.append(path)
        return name

    def coco(self, record: FrameRecord, image: StillImage, tasks: Mapping[int, str]) -> None:
        info = VideoInfo("image", image.frame + 1, 1.0, image.width, image.height, 1.0, path=image.name)
        writer = CocoInstancesWriter(ExportTarget(self.folder / Path(FILES["coco"]).parent, info, tasks))
        try:
            writer.write(record)
        finally:
            writer.close()
        self.files.append(writer.path)

    def finish(self, archive_name: str, document: str) -> WrittenFiles:
        archive = self.folder / archive_name
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in self.files:
                bundle.write(path, path.relative_to(self.folder).as_posix())
        return WrittenFiles(self.folder, archive, self.folder / document, tuple(self.files))
