"""Independent readers of the tool exports (sam2_plus.exports), for tests: Datumaro's importers (CVAT for
video, YOLO detection, MOT), supervision's YOLO loader (segmentation), pycocotools (COCO) and a MOTS text reader
on pycocotools as the MOTS devkit reads it. Each gives (object id, frame) -> (xyxy box or None, HxW bool mask or
None) for every object a frame shows; the Datumaro and supervision readers skip the test without them."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

Found = dict[tuple[int, int], tuple]


def object_id(label: str) -> int:
    return int(label.removeprefix("obj_"))


def rasterise(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Polygons as CVAT and Datumaro turn them into masks (pycocotools)."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)


def mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def read_cvat(folder: Path, height: int, width: int) -> tuple[Found, set[tuple[int, int]]]:
    """CVAT for video through Datumaro: boxes and polygon masks, and the (object, frame)s marked outside."""
    dm = pytest.importorskip("datumaro")
    dataset = dm.Dataset.import_from(str(folder), "cvat")
    labels = dataset.categories()[dm.AnnotationType.label]
    boxes, masks, outside = {}, {}, set()
    for item in dataset:
        frame = item.attributes["frame"]
        for ann in item.annotations:
            key = object_id(labels[ann.label].name), frame
            if ann.attributes["outside"]:
                outside.add(key)
            elif ann.type == dm.AnnotationType.bbox:
                boxes[key] = [ann.x, ann.y, ann.x + ann.w, ann.y + ann.h]
            elif ann.type == dm.AnnotationType.polygon:
                masks[key] = rasterise([ann.points], height, width)
    assert sorted(boxes) == sorted(masks)
    return {key: (boxes[key], masks[key]) for key in boxes}, outside


def write_blank_frames(folder: Path, frames: int, height: int, width: int) -> None:
    """Stand-ins for the frame images YOLO readers open for their size."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        cv2.imwrite(str(folder / f"frame_{t:06d}.jpg"), np.zeros((height, width, 3), np.uint8))


def read_yolo_seg(folder: Path) -> Found:
    """Ultralytics YOLO segmentation through supervision (needs images/train/); a mask per class (object)."""
    sv = pytest.importorskip("supervision")
    dataset = sv.DetectionDataset.from_yolo(str(folder / "images" / "train"), str(folder / "labels" / "train"),
                                            str(folder / "data.yaml"), force_masks=True)
    found = {}
    for path, _, detections in dataset:
        frame = int(Path(path).stem.removeprefix("frame_"))
        for class_id in set(detections.class_id.tolist()):
            union = detections.mask[detections.class_id == class_id].any(axis=0)
            found[object_id(dataset.classes[class_id]), frame] = (mask_box(union), union)
    return found


def read_yolo_det(folder: Path) -> Found:
    """Ultralytics YOLO detection through Datumaro (needs images/train/)."""
    dm = pytest.importorskip("datumaro")
    dataset = dm.Dataset.import_from(str(folder), "yolo")
    labels = dataset.categories()[dm.AnnotationType.label]
    return {(object_id(labels[ann.label].name), int(item.id.removeprefix("frame_"))):
            ([ann.x, ann.y, ann.x + ann.w, ann.y + ann.h], None) for item in dataset for ann in item.annotations}


def read_mot(folder: Path) -> tuple[Found, int, tuple[int, int]]:
    """MOT Challenge through Datumaro: the boxes, the sequence length and the frame size from seqinfo.ini."""
    dm = pytest.importorskip("datumaro")
    dataset = dm.Dataset.import_from(str(folder), "mot_seq")
    found = {(ann.attributes["track_id"], int(item.id) - 1): ([ann.x, ann.y, ann.x + ann.w, ann.y + ann.h], None)
             for item in dataset for ann in item.annotations}
    sizes = {item.media.size for item in dataset}
    assert len(sizes) == 1
    return found, len(dataset), sizes.pop()


def read_mots(path: Path) -> Found:
    """MOTS Challenge's text format, as its devkit reads it: frame id class height width rle (pycocotools)."""
    found = {}
    for line in path.read_text().splitlines():
        frame, track, cls, height, width, counts = line.split(" ")
        assert int(cls) == int(track) // 1000 == 2
        mask = mask_utils.decode({"size": [int(height), int(width)], "counts": counts.encode()}).astype(bool)
        found[int(track) % 1000, int(frame) - 1] = (None, mask)
    return found


def read_coco(path: Path) -> Found:
    """COCO instances through pycocotools."""
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    found = {}
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert ann["category_id"] == ann["track_id"] and ann["iscrowd"] == 0
        mask = coco.annToMask(ann).astype(bool)
        assert ann["area"] == mask.sum()
        x, y, w, h = ann["bbox"]
        found[ann["track_id"], coco.loadImgs(ann["image_id"])[0]["frame_index"]] = ([x, y, x + w, y + h], mask)
    return found


def check_tool_exports(root: Path, frames_folder: Path | None = None) -> None:
    """An unzipped export with every format against its own results.json (what a real run tracked): same
    objects and frames everywhere, boxes within 1 px, RLE masks exact, CVAT's polygons covering the mask (a
    model's masks may have holes, which outlines leave out). `frames_folder`: the frame images for YOLO."""
    from sam2_plus.exports.common import ordered
    from sam2_plus.media.export import read_results_json

    header, results = read_results_json(root / "results.json")
    height, width = header["video"]["height"], header["video"]["width"]
    # the formats hold boxes and masks: a visible point object without a mask pixel has neither, and no entry
    shown = {(obj_id, r.frame_idx): (ordered(r.box_for(i)), r.masks[i]) for r in results
             for i, obj_id in enumerate(r.obj_ids) if r.visible[i] and r.box_for(i) is not None}
    assert shown, "nothing visible was tracked"
    mots = read_mots(root / "mots" / "gt" / "gt.txt")  # the readers without optional packages first
    assert set(mots) <= set(shown) and all(not (m & ~shown[key][1]).any() for key, (_, m) in mots.items())
    readers = (lambda: read_coco(root / "coco" / "instances.json"), lambda: read_mot(root / "mot")[0],
               lambda: read_cvat(root / "cvat", height, width)[0])
    for read, exact in zip(readers, (True, False, False)):
        found = read()
        assert sorted(found) == sorted(shown)
        for key, (box, mask) in shown.items():
            assert np.abs(np.asarray(found[key][0], float) - box).max() <= 1.0, key
            assert np.array_equal(found[key][1], mask) if exact else (found[key][1] is None
                                                                      or not (mask & ~found[key][1]).any())
    if frames_folder is not None:
        for name in ("yolo-det", "yolo-seg"):
            shutil.copytree(frames_folder, root / name / "images" / "train")
        assert sorted(read_yolo_det(root / "yolo-det")) == sorted(shown)
        assert set(read_yolo_seg(root / "yolo-seg")) <= set(shown)
