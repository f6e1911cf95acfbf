"""The results of a still image on the page: every object's mask on the image (its preview: an image-predictor
call, or its mask prompt) put together (`image_record`) and written as files (`write_image_results`): one mask PNG
per object, COCO instances JSON, the RGBA cut-out (the objects opaque, with their effects), the overlay PNG and,
with effects, the effect PNG; all of them in one ZIP too."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..effects.render import EffectRenderer
from ..effects.settings import EffectSettings
from ..exports.coco import INSTANCES, CocoInstancesWriter
from ..exports.common import ExportTarget
from ..media.alpha import rgba_png
from ..media.decode import VideoInfo
from ..media.export import FrameRecord
from ..media.render import TrackRenderer

NAMES = {"export": "sam2plus_image_results.zip", "cutout": "sam2plus_cutout.png", "coco": "sam2plus_coco.json",
         "overlay": "sam2plus_overlay.png", "effect": "sam2plus_effect.png"}


@dataclass(frozen=True)
class ImageFiles:
    export: Path  # the ZIP: masks/object_<id>.png, coco/instances.json, cutout.png, overlay.png (effect.png)
    cutout: Path  # RGBA PNG: alpha 255 in the objects (soft with a feather), 0 elsewhere
    coco: Path
    overlay: Path
    effect: Optional[Path] = None

    def downloads(self) -> list[str]:
        return [str(p) for p in (self.cutout, self.export, self.coco, self.overlay, self.effect) if p is not None]


def image_record(records: Mapping[int, FrameRecord], frame: int = 0) -> FrameRecord:
    """One record of every object from their one-object records (previews), in the mapping's order."""
    parts = [records[obj_id] for obj_id in records]
    if not parts:
        raise ValueError("no object has a result on the image")

    def joined(name: str) -> Optional[np.ndarray]:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return FrameRecord(frame, [i for p in parts for i in p.obj_ids], joined("masks"), joined("boxes"),
                       joined("points"), joined("scores"), joined("visible"))


def write_image_results(image: np.ndarray, record: FrameRecord, tasks: Mapping[int, str], info: VideoInfo,
                        effects: Optional[EffectSettings], folder: Path) -> ImageFiles:
    """The files of `record` on `image` in `folder` (module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    composed = EffectRenderer(effects or EffectSettings(), tasks, with_alpha=True).compose(image, record)
    cutout = folder / NAMES["cutout"]
    cutout.write_bytes(rgba_png(composed.rgba()))
    overlay = folder / NAMES["overlay"]
    Image.fromarray(TrackRenderer(dict(tasks)).render(np.array(image, copy=True), record)).save(overlay)
    effect = None
    if effects is not None and _has_effect(effects, tasks):
        effect = folder / NAMES["effect"]
        Image.fromarray(composed.rgb).save(effect)
    coco = _write_coco(record, tasks, info, folder)
    export = folder / NAMES["export"]
    with zipfile.ZipFile(export, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, obj_id in enumerate(record.obj_ids):
            mask = np.where(record.masks[i] & record.visible[i], 255, 0).astype(np.uint8)
            archive.writestr(f"masks/object_{obj_id}.png", _png(mask))
        archive.write(coco, "coco/" + INSTANCES)
        archive.write(cutout, "cutout.png")
        archive.write(overlay, "overlay.png")
        if effect is not None:
            archive.write(effect, "effect.png")
    return ImageFiles(export, cutout, coco, overlay, effect)


def _has_effect(effects: EffectSettings, tasks: Mapping[int, str]) -> bool:
    return not effects.background.is_none or any(not effects.effect_for(obj_id).is_none for obj_id in tasks)


def _write_coco(record: FrameRecord, tasks: Mapping[int, str], info: VideoInfo, folder: Path) -> Path:
    writer = CocoInstancesWriter(ExportTarget(folder / "coco", info, dict(tasks)))
    try:
        writer.write(record)
    finally:
        writer.close()
    return writer.path.replace(folder / NAMES["coco"])


def _png(grey: np.ndarray) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()
