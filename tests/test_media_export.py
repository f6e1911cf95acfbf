"""Exports: every writer's output read back and compared with what was written; COCO RLE."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from sam2_plus.media import rle
from sam2_plus.media.decode import VideoInfo
from sam2_plus.media.export import (
    BoxCsvWriter,
    FrameRecord,
    LasotWriter,
    MaskZipWriter,
    PointTrackWriter,
    ResultExporter,
    ResultJsonWriter,
    davis_palette,
    mask_to_box,
    read_box_csv,
    read_lasot,
    read_mask_zip,
    read_point_tracks,
    read_results_json,
)

H, W = 37, 53  # odd on purpose: column-major RLE bugs show
NUM_FRAMES = 6
VIDEO = VideoInfo("video", NUM_FRAMES, 10.0, W, H, 0.6)
TASKS = {5: "mask", 2: "box", 9: "point"}


def _results() -> list[FrameRecord]:
    """Frames 0, 1, 3, 4: object 9 appears at frame 1; object 2 is invisible at 3; frame 2 and 5 missing."""
    rng = np.random.default_rng(11)
    results = []
    for frame_idx in (0, 1, 3, 4):
        obj_ids = [5, 2] if frame_idx == 0 else [5, 2, 9]
        masks = rng.random((len(obj_ids), H, W)) < 0.3
        masks[0, 5:20, 5:25] = True  # objects 5 and 2 overlap here
        masks[1, 10:25, 15:35] = True
        boxes = np.array([[1.25, 2.5, 30.0, 20.75], [15, 10, 35, 25], [40, 4, 50, 9]][: len(obj_ids)], np.float32)
        if frame_idx == 4:
            boxes = None  # box comes from the masks
        points = np.array([[10.5, 11.25], [20, 12], [44.5 + frame_idx, 6]][: len(obj_ids)], np.float32)
        visible = [True, frame_idx != 3, True][: len(obj_ids)]
        scores = [0.95, 0.5 - frame_idx / 10, 3.25][: len(obj_ids)]
        results.append(FrameRecord(frame_idx, obj_ids, masks, boxes, points, scores, visible))
    return results


def test_frame_result_validation():
    masks = np.zeros((2, 4, 5), bool)
    with pytest.raises(ValueError, match="unique"):
        FrameRecord(0, [1, 1], masks, None, None, [1, 1], [1, 1])
    with pytest.raises(ValueError, match=r"masks must have shape \[3, H, W\]"):
        FrameRecord(0, [1, 2, 3], masks, None, None, [1, 1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match=r"boxes must have shape \[2, 4\]"):
        FrameRecord(0, [1, 2], masks, np.zeros((2, 3)), None, [1, 1], [1, 1])
    with pytest.raises(ValueError, match="scores and visible"):
        FrameRecord(0, [1, 2], masks, None, None, [1], [1, 1])
    result = FrameRecord(0, [1, 2], masks, None, None, [1, 1], [1, 0])
    assert result.box_for(0) is None and result.point_for(0) is None
    assert (result.height, result.width) == (4, 5)


def test_a_record_without_some_objects_keeps_the_others_rows():
    record = _results()[1]  # objects 5, 2, 9
    record.motion_scores = np.array([0.5, 0.25, np.nan], np.float32)
    kept = record.without([2, 7])  # 7: not on this frame
    assert kept.obj_ids == (5, 9) and kept.frame_idx == record.frame_idx
    for name in ("masks", "boxes", "points", "scores", "visible", "motion_scores"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(record, name)[[0, 2]])
    assert record.without([7]) is record and record.without([5, 2, 9]).obj_ids == ()
    assert record.without([5, 2, 9]).masks.shape == (0, H, W)


def test_mask_to_box_uses_exclusive_far_edges():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_to_box(mask), [3, 2, 9, 5])
    assert mask_to_box(np.zeros((3, 3), bool)) is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under NumPy 2
def test_json_round_trip_and_pycocotools_compatibility(tmp_path):
    results = _results()
    path = tmp_path / "results.json"
    with ResultJsonWriter(path, VIDEO, TASKS) as writer:
        writer.write_all(results)
    header, back = read_results_json(path)
    assert header["video"] == {"width": W, "height": H, "fps": 10.0, "num_frames": NUM_FRAMES}
    assert header["objects"] == [{"id": 5, "task": "mask"}, {"id": 2, "task": "box"}, {"id": 9, "task": "point"}]
    assert [r.frame_idx for r in back] == [0, 1, 3, 4]
    mask_utils = pytest.importorskip("pycocotools.mask")
    raw = json.loads(path.read_text())
    for written, read, entry in zip(results, back, raw["frames"], strict=True):
        assert read.obj_ids == written.obj_ids
        np.testing.assert_array_equal(read.masks, written.masks)
        np.testing.assert_array_equal(read.visible, written.visible)
        np.testing.assert_allclose(read.scores, written.scores, atol=1e-5)
        for i in range(len(written.obj_ids)):
            np.testing.assert_allclose(read.boxes[i], written.box_for(i), atol=1e-3)
            np.testing.assert_allclose(read.points[i], written.point_for(i), atol=1e-3)
            coco_rle = dict(entry["objects"][i]["mask"])
            assert coco_rle["size"] == [H, W] and isinstance(coco_rle["counts"], str)
            decoded = mask_utils.decode({"size": coco_rle["size"], "counts": coco_rle["counts"].encode()})
            np.testing.assert_array_equal(decoded.astype(bool), written.masks[i])
    np.testing.assert_array_equal(back[3].boxes[0], mask_to_box(results[3].masks[0]))  # derived box


def test_mask_zip_round_trip(tmp_path):
    results = _results()
    path = tmp_path / "masks.zip"
    with MaskZipWriter(path, obj_ids=[5, 2]) as writer:  # 9 is appended when first seen
        writer.write_all(results)
    contents = read_mask_zip(path)
    assert contents.davis_obj_ids == {1: 5, 2: 2, 3: 9}
    assert sorted(contents.object_masks) == [2, 5, 9]
    assert sorted(contents.davis) == [0, 1, 3, 4]
    np.testing.assert_array_equal(contents.davis_palette[:3], [[0, 0, 0], [128, 0, 0], [0, 128, 0]])
    for result in results:
        expected_index = np.zeros((H, W), np.uint8)
        for i, obj_id in enumerate(result.obj_ids):
            visible_mask = result.masks[i] & result.visible[i]
            np.testing.assert_array_equal(contents.object_masks[obj_id][result.frame_idx], visible_mask)
            palette_index = {5: 1, 2: 2, 9: 3}[obj_id]
            expected_index[visible_mask & (expected_index == 0)] = palette_index  # earlier object wins
        np.testing.assert_array_equal(contents.davis[result.frame_idx], expected_index)
    overlap = contents.davis[0][10:20, 15:25]
    assert (overlap == 1).all(), "object 5 comes first and must win the overlap"
    with zipfile.ZipFile(path) as archive:
        assert "masks/obj_5/00003.png" in archive.namelist()
        assert "davis/00004.png" in archive.namelist()


def test_box_csv_round_trip(tmp_path):
    results = _results()
    path = tmp_path / "boxes.csv"
    with BoxCsvWriter(path) as writer:
        writer.write_all(results)
    rows = read_box_csv(path)
    expected = [(r, i) for r in results for i in range(len(r.obj_ids))]
    assert len(rows) == len(expected)
    for row, (result, i) in zip(rows, expected, strict=True):
        assert (row.frame, row.obj_id, row.visible) == (result.frame_idx, result.obj_ids[i], bool(result.visible[i]))
        np.testing.assert_allclose(row.box, result.box_for(i), atol=1e-3)
        assert row.score == pytest.approx(float(result.scores[i]), abs=1e-5)


def test_lasot_text_round_trip(tmp_path):
    results = _results()
    with LasotWriter(tmp_path / "lasot", num_frames=NUM_FRAMES) as writer:
        writer.write_all(results)
    tracks = read_lasot(tmp_path / "lasot")
    assert sorted(tracks) == [2, 5, 9]
    for track in tracks.values():
        assert track.shape == (NUM_FRAMES, 4)
    by_frame = {r.frame_idx: r for r in results}
    for obj_id, track in tracks.items():
        for frame_idx in range(NUM_FRAMES):
            result = by_frame.get(frame_idx)
            if result is None or obj_id not in result.obj_ids or not result.visible[result.obj_ids.index(obj_id)]:
                np.testing.assert_array_equal(track[frame_idx], [0, 0, 0, 0])
                continue
            x1, y1, x2, y2 = result.box_for(result.obj_ids.index(obj_id))
            np.testing.assert_allclose(track[frame_idx], [x1, y1, x2 - x1, y2 - y1], atol=1e-3)
    assert (tmp_path / "lasot" / "obj_2.txt").read_text().splitlines()[0] == "15,10,20,15"


def test_lasot_requires_increasing_frames(tmp_path):
    results = _results()
    with LasotWriter(tmp_path) as writer:
        writer.write(results[1])
        with pytest.raises(ValueError, match="increasing order"):
            writer.write(results[0])


def test_point_tracks_in_tapvid_layout(tmp_path):
    results = _results()
    path = tmp_path / "points.npz"
    with PointTrackWriter(path, num_frames=NUM_FRAMES, obj_ids=[5, 2, 9]) as writer:
        writer.write_all(results)
    tracks = read_point_tracks(path)
    assert tracks.trajs_2d.shape == (NUM_FRAMES, 3, 2) and tracks.trajs_2d.dtype == np.float32
    assert tracks.visibs.shape == (NUM_FRAMES, 3) and tracks.visibs.dtype == bool
    np.testing.assert_array_equal(tracks.obj_ids, [5, 2, 9])
    for result in results:
        for i, obj_id in enumerate(result.obj_ids):
            column = [5, 2, 9].index(obj_id)
            np.testing.assert_allclose(tracks.trajs_2d[result.frame_idx, column], result.points[i])
            assert tracks.visibs[result.frame_idx, column] == result.visible[i]
    assert np.isnan(tracks.trajs_2d[2]).all() and not tracks.visibs[2].any()  # frame never written
    assert np.isnan(tracks.trajs_2d[0, 2]).all()  # object 9 not yet present


def test_result_exporter_writes_everything(tmp_path):
    with ResultExporter(tmp_path / "out", VIDEO, TASKS) as exporter:
        exporter.write_all(_results())
    for path in exporter.paths.values():
        assert path.exists(), path
    assert read_point_tracks(exporter.paths["points"]).trajs_2d.shape == (NUM_FRAMES, 3, 2)
    assert len(read_lasot(exporter.paths["lasot"])[5]) == NUM_FRAMES
    assert read_mask_zip(exporter.paths["masks"]).davis_obj_ids == {1: 5, 2: 2, 3: 9}


# --------------------------------------------------------------------------- RLE


def _rle_cases():
    rng = np.random.default_rng(5)
    cases = [np.zeros((0, 0), bool), np.zeros((1, 7), bool), np.ones((7, 1), bool), np.ones((3, 4), bool)]
    sizes = zip(rng.integers(1, 60, 40), rng.integers(1, 60, 40), rng.random(40), strict=True)
    cases += [rng.random((int(h), int(w))) < p for h, w, p in sizes]
    big = np.zeros((720, 1280), bool)
    big[100:600, 200:1100] = True
    big[300:310, :] = False
    return cases + [big]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_numpy_rle_fallback_matches_pycocotools_exactly():
    mask_utils = pytest.importorskip("pycocotools.mask")
    for mask in _rle_cases():
        ours = rle.encode_rle(mask, use_pycocotools=False)
        if mask.size:
            coco = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            assert ours["counts"] == coco["counts"].decode("ascii")
        assert ours == rle.encode_rle(mask)
        for use_pycocotools in (False, True):
            np.testing.assert_array_equal(rle.decode_rle(ours, use_pycocotools=use_pycocotools), mask)


def test_uncompressed_counts_decode():
    mask = np.zeros((4, 5), bool)
    mask[2:4, 1:3] = True
    counts = rle.mask_to_counts(mask)
    assert counts == [6, 2, 2, 2, 8]
    np.testing.assert_array_equal(rle.decode_rle({"size": [4, 5], "counts": counts}), mask)
    assert rle.encode_rle(mask)["counts"] == rle.counts_to_string(counts)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"size": [4, 5], "counts": [6, 2, 2]}, "sum to 10"),
        ({"size": [4, 5], "counts": [6, -2, 16]}, "negative"),
        ({"size": [4, 5], "counts": "zz~"}, "invalid character"),
        ({"size": [4], "counts": "0"}, "size"),
        ({"size": [4, 5], "counts": 7}, "string or a list"),
        ({"size": [4, 5], "counts": [1.5, 18.5]}, "integers"),
    ],
)
def test_malformed_rle_is_rejected(bad, message):
    with pytest.raises(rle.RLEError, match=message):
        rle.decode_rle(bad)


def test_davis_palette_is_the_standard_one():
    palette = davis_palette()
    assert palette.shape == (256, 3)
    np.testing.assert_array_equal(palette[:5], [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]])
    np.testing.assert_array_equal(palette[255], [224, 224, 192])
