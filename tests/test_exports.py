"""Exports into annotation and training tools (sam2_plus.exports), each read back by an independent reader:
Datumaro's importers (CVAT for video, YOLO detection, MOT), supervision's YOLO loader (segmentation),
pycocotools (COCO) and a MOTS text reader on pycocotools. The results are constructed and go through the
writers the service uses (`outputs.open_export`): 3 objects, one of which (id 2) leaves the frame and returns,
one (id 3) a box-task object in two parts. Boxes must agree within 1 px, polygon masks within 1 % IoU and RLE
masks exactly. (tests/test_track_cli.py runs the real model through the CLI into these exports.)"""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from export_readers import (
    mask_box,
    rasterise,
    read_coco,
    read_cvat,
    read_mot,
    read_mots,
    read_yolo_det,
    read_yolo_seg,
    write_blank_frames,
)
from sam2_plus.exports import EXPORT_FORMATS, ExportFormatError, parse_export_formats
from sam2_plus.exports.polygons import mask_polygons, single_polygon
from sam2_plus.media.decode import VideoInfo
from sam2_plus.media.export import FrameRecord, read_results_json
from sam2_plus.outputs import open_export
from sam2_plus.review import ReviewTracker

H, W, T = 72, 96, 8
TASKS = {1: "mask", 7: "mask", 3: "box"}  # 7 leaves the frame on frames 3-4 and returns
FORMATS = ("cvat", "yolo-seg", "yolo-det", "mot", "mots", "coco", "tapvid")
VIDEO = VideoInfo(kind="video", num_frames=T + 2, fps=10.0, width=W, height=H, duration=(T + 2) / 10,
                  path="/videos/clip.mp4")


def ellipse(t: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, (20 + 4 * t, 20), (12, 8), 15 * t, 0, 360, 1, -1)
    return mask.astype(bool)


def leaving_block(t: int) -> np.ndarray | None:
    """A block sliding left out of the frame (cut by the edge on frame 2), absent on 3-4, back from 5."""
    mask = np.zeros((H, W), bool)
    if t in (3, 4):
        return None
    x = {0: 14, 1: 6, 2: -4}.get(t, 4 * (t - 5))
    mask[45:62, max(x, 0):x + 16] = True
    return mask


def two_parts(t: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[30:40, 60 + t:70 + t] = True
    mask[48:66, 74:90 - t] = True
    return mask


def frame_result(t: int) -> FrameRecord:
    masks = np.zeros((3, H, W), bool)
    masks[0], masks[2] = ellipse(t), two_parts(t)
    block = leaving_block(t)
    if block is not None:
        masks[1] = block
    boxes = np.full((3, 4), np.nan, np.float32)
    ys, xs = np.nonzero(masks[2])
    boxes[2] = [xs.min() - 0.6, ys.min() + 0.4, xs.max() + 1.3, ys.max() + 0.8]  # the box head's own box
    scores = [0.95, 0.2 if block is None else 0.9, 0.8]
    return FrameRecord(t, list(TASKS), masks, boxes, None, scores, [True, block is not None, True])


RESULTS = [frame_result(t) for t in range(T)]


def truth() -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(object id, frame) -> (box xyxy, mask) of every object a frame shows."""
    shown = {}
    for result in RESULTS:
        for i, obj_id in enumerate(result.obj_ids):
            if result.visible[i]:
                shown[obj_id, result.frame_idx] = (result.box_for(i), result.masks[i])
    return shown


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The results ZIP with every format, unzipped, and blank frame images where the formats refer to them."""
    folder = tmp_path_factory.mktemp("exports")
    review = ReviewTracker(TASKS)
    writer = open_export(folder / "results.zip", VIDEO, TASKS, FORMATS, review)
    for result in RESULTS:
        review.write(result)
        writer.write(result)
    writer.close()
    out = folder / "unzipped"
    with zipfile.ZipFile(folder / "results.zip") as archive:
        archive.extractall(out)
    for name in ("yolo-seg", "yolo-det"):
        write_blank_frames(out / name / "images" / "train", T, H, W)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def assert_same(found: dict, *, boxes: bool = True, masks: str | None = None, box_from_mask: bool = False) -> None:
    """`found`: (object id, frame) -> (box or None, mask or None) as a reader gave them."""
    expected = truth()
    assert sorted(found) == sorted(expected)
    for key, (box, mask) in expected.items():
        got_box, got_mask = found[key]
        if boxes:
            want = mask_box(mask) if box_from_mask else box
            assert np.abs(np.asarray(got_box, float) - want).max() <= 1.0, key
        if masks == "exact":
            assert np.array_equal(got_mask, mask), key
        elif masks == "polygon":
            assert iou(got_mask, mask) >= 0.99, (key, iou(got_mask, mask))


def test_cvat_for_video_read_by_datumaro(exported):
    found, outside = read_cvat(exported / "cvat", H, W)
    assert outside == {(7, 3), (1, T), (7, T), (3, T)}  # 7 leaves; every track ends after the tracked frames
    assert_same(found, masks="polygon")


def test_yolo_segmentation_read_by_supervision(exported):
    assert_same(read_yolo_seg(exported / "yolo-seg"), masks="polygon", box_from_mask=True)
    names = (exported / "yolo-seg" / "data.yaml").read_text()
    assert "names:\n  0: obj_1\n  1: obj_7\n  2: obj_3\n" in names


def test_yolo_detection_read_by_datumaro(exported):
    assert_same(read_yolo_det(exported / "yolo-det"))


def test_mot_read_by_datumaro(exported):
    found, length, size = read_mot(exported / "mot")
    assert_same(found)
    assert (length, size) == (VIDEO.num_frames, (H, W))  # seqinfo.ini


def test_mots_read_as_the_mots_devkit_does(exported):
    assert_same(read_mots(exported / "mots" / "gt" / "gt.txt"), boxes=False, masks="exact")
    seqinfo = (exported / "mots" / "seqinfo.ini").read_text().split()
    assert seqinfo == ["[Sequence]", "name=clip", "imDir=img1", "frameRate=10", f"seqLength={T + 2}",
                       f"imWidth={W}", f"imHeight={H}", "imExt=.jpg"]


def test_coco_read_by_pycocotools(exported):
    assert_same(read_coco(exported / "coco" / "instances.json"), masks="exact")


def test_the_usual_exports_and_the_flags_are_still_there(exported):
    header, results = read_results_json(exported / "results.json")
    assert [r.frame_idx for r in results] == list(range(T)) and "review" in header
    assert {p.name for p in exported.iterdir()} >= {"masks", "davis", "boxes.csv", "lasot", "points.npz",
                                                     *[f for f in FORMATS if f != "tapvid"]}


def test_an_export_folder_holds_the_same_formats(tmp_path):
    writer = open_export(tmp_path / "out", VIDEO, TASKS, ("mot", "cvat"))
    for result in RESULTS:
        writer.write(result)
    writer.close()
    assert (tmp_path / "out" / "mot" / "gt" / "gt.txt").is_file()
    assert (tmp_path / "out" / "cvat" / "annotations.xml").is_file()
    assert (tmp_path / "out" / "results.json").is_file()


def test_parse_export_formats():
    assert parse_export_formats("cvat, YOLO-seg,cvat") == ("cvat", "yolo-seg")
    assert parse_export_formats(["coco"]) == ("coco",)
    assert parse_export_formats("all") == tuple(EXPORT_FORMATS)
    assert parse_export_formats(None) == () and parse_export_formats("") == ()
    with pytest.raises(ExportFormatError, match="unknown export format 'yolo'; valid formats: cvat, yolo-seg, "
                                                "yolo-det, mot, mots, coco, tapvid"):
        parse_export_formats("cvat,yolo")
    with pytest.raises(ExportFormatError, match="must be names"):
        parse_export_formats([1, 2])


def test_mots_refuses_object_ids_from_1000(tmp_path):
    from sam2_plus.exports import ExportError

    with pytest.raises(ExportError, match="object ids from 1 to 999 .* object 1000 is not"):
        open_export(tmp_path / "r.zip", VIDEO, {1: "mask", 1000: "mask"}, ("mots",))


@pytest.mark.parametrize("seed", range(6))
def test_polygons_rasterise_back_exactly(seed):
    """Blobs in several parts: OpenCV's fill of truncated coordinates (Ultralytics) and pycocotools (CVAT, COCO)
    both give the mask back from the edge polygons, pycocotools also from the bridged single polygon; OpenCV's
    fill of rounded or truncated coordinates (supervision, Ultralytics) from the centre polygons, but for the
    parts too thin for a polygon."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 4)
    mask = noise > np.quantile(noise, 0.8)
    mask = _without_holes(mask)
    edges = mask_polygons(mask)
    assert np.array_equal(opencv_fill(edges, np.trunc), mask)  # Ultralytics
    assert np.array_equal(rasterise([p.ravel().tolist() for p in edges], H, W), mask)
    assert np.array_equal(rasterise([single_polygon(edges).ravel().tolist()], H, W), mask)
    centres = mask_polygons(mask, edges=False)  # leaves out parts of one or two pixels in a row
    for filled in (opencv_fill(centres, np.trunc), opencv_fill(centres, np.round)):
        assert not (filled & ~mask).any() and iou(filled, mask) >= 0.99


def opencv_fill(polygons: list[np.ndarray], to_int) -> np.ndarray:
    filled = np.zeros((H, W), np.uint8)
    for polygon in polygons:
        cv2.fillPoly(filled, [to_int(polygon).astype(np.int32)], 1)
    return filled.astype(bool)


def _without_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled.astype(bool)
