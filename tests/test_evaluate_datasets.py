"""sam2_plus.evaluate.datasets: each layout's tiny dataset (tests/eval_datasets.py) read back exactly, its prompts
valid for the video, predictions written in the dataset's format and read back exactly, and malformed files
refused with the file (and line) named."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from eval_datasets import (FRAMES, NAMES, SIZE, Made, label_map, make_davis, make_got10k, make_lasot, make_tag,
                           make_tapvid)
from sam2_plus.evaluate.datasets import (GRANULARITY, LAYOUTS, DatasetError, EvalSequence, prompts_for,
                                         read_dataset, read_predictions, write_predictions)
from sam2_plus.media.decode import probe
from sam2_plus.media.export import FrameRecord, ResultJsonWriter, davis_palette
from sam2_plus.prompts import parse_prompts

VARIANTS = {
    "davis": lambda base: make_davis(base, "davis"),
    "mose": lambda base: make_davis(base, "mose"),
    "sav": lambda base: make_davis(base, "sav"),
    "lasot": make_lasot,
    "got10k": lambda base: make_got10k(base, "val"),
    "got10k-test": lambda base: make_got10k(base, "test"),
    "tag": make_tag,
    "tapvid-pkl": lambda base: make_tapvid(base, "pkl"),
    "tapvid-npz": lambda base: make_tapvid(base, "npz"),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Made]:
    base = tmp_path_factory.mktemp("eval-datasets")
    return {name: make(base) for name, make in VARIANTS.items()}


@pytest.fixture(scope="module")
def read(made, tmp_path_factory) -> dict[str, list[EvalSequence]]:
    cache = tmp_path_factory.mktemp("tapvid-cache")
    return {name: read_dataset(m.root, m.layout, cache=cache) for name, m in made.items()}


def _copy(made: Made, tmp_path: Path) -> Path:
    """A private copy of a made dataset (for tests that break it); its root."""
    top = made.root
    while not top.parent.name.startswith("eval-datasets"):
        top = top.parent
    shutil.copytree(top, tmp_path / top.name)
    return tmp_path / top.name / made.root.relative_to(top)


# --------------------------------------------------------------------------- read back exactly


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_layout_reads_back_what_was_made(variant, made, read):
    expected, sequences = made[variant], read[variant]
    assert [seq.name for seq in sequences] == [seq.name for seq in expected.sequences]
    for seq, want in zip(sequences, expected.sequences):
        assert seq.num_frames == want.num_frames == FRAMES and seq.size == want.size == SIZE
        assert seq.granularity == GRANULARITY[expected.layout] and seq.layout == expected.layout
        assert seq.truth.obj_ids == want.obj_ids
        assert seq.attributes == want.attributes
        assert (None if seq.truth.annotated is None else tuple(seq.truth.annotated)) == want.annotated
        info = probe(seq.video)
        assert (info.num_frames, info.height, info.width) == (FRAMES, *SIZE)
        if expected.layout == "davis":
            for frame, labels in want.labels.items():
                np.testing.assert_array_equal(seq.truth.masks(frame), labels)
        elif expected.layout == "tapvid":
            np.testing.assert_array_equal(seq.truth.points, want.points)
            np.testing.assert_array_equal(seq.truth.occluded, want.occluded)
        else:
            np.testing.assert_array_equal(seq.truth.boxes, want.boxes)


def test_davis_objects_that_appear_later_and_annotated_frames(made, read):
    seq1 = {seq.name: seq for seq in read["davis"]}["seq1"]
    assert seq1.truth.masks.first_frames == {1: 0, 2: 3}  # the yellow square enters on frame 3
    sav = {seq.name: seq for seq in read["sav"]}
    assert sav["seq1"].truth.annotated == (0, 4, 8) and sav["seq1"].truth.masks.first_frames == {1: 0, 2: 4}
    with pytest.raises(DatasetError, match="frame 1 has no annotation"):
        sav["seq1"].truth.masks(1)


def test_tapvid_frames_are_cached_losslessly_and_reused(made, read, tmp_path):
    for variant in ("tapvid-pkl", "tapvid-npz"):
        for seq, want in zip(read[variant], made[variant].sequences):
            frames = sorted(Path(seq.video).glob("*.png"))
            assert len(frames) == FRAMES
            first = cv2.cvtColor(cv2.imread(str(frames[0])), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(first, want.frames[0])
    again = read_dataset(made["tapvid-pkl"].root, "tapvid", cache=tmp_path)
    written = {p: p.stat().st_mtime_ns for p in Path(again[0].video).iterdir()}
    third = read_dataset(made["tapvid-pkl"].root, "tapvid", cache=tmp_path)
    assert third[0].video == again[0].video
    assert {p: p.stat().st_mtime_ns for p in Path(third[0].video).iterdir()} == written


def test_videos_filter_keeps_the_dataset_order(made):
    chosen = read_dataset(made["davis"].root, "davis", videos=["seq2", "seq0"])
    assert [seq.name for seq in chosen] == ["seq0", "seq2"]
    with pytest.raises(DatasetError, match=r"no sequence named 'nope'.*it has 3: seq0, seq1, seq2"):
        read_dataset(made["davis"].root, "davis", videos=["nope"])


# --------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prompts_are_valid_for_the_video_and_hold_the_first_annotation(variant, read):
    for seq in read[variant]:
        prompts = prompts_for(seq)
        parsed = parse_prompts(json.dumps(prompts), probe(seq.video))
        assert [obj.obj_id for obj in parsed] == list(seq.truth.obj_ids)
        for obj in parsed:
            (prompt,) = obj.prompts
            column = seq.truth.obj_ids.index(obj.obj_id)
            if seq.granularity == "mask":
                first = seq.truth.masks.first_frames[obj.obj_id]
                assert (obj.task, prompt.frame) == ("mask", first)
                np.testing.assert_array_equal(prompt.mask, seq.truth.masks(first) == obj.obj_id)
            elif seq.granularity == "box":
                frame = int(np.flatnonzero(np.isfinite(seq.truth.boxes[:, column, 0]))[0])
                assert (obj.task, prompt.frame) == ("box", frame)
                np.testing.assert_array_equal(prompt.box, seq.truth.boxes[frame, column].astype(np.float32))
            else:
                frame = int(np.flatnonzero(~seq.truth.occluded[:, column])[0])
                assert (obj.task, prompt.frame) == ("point", frame)
                np.testing.assert_array_equal(prompt.points[0], seq.truth.points[frame, column].astype(np.float32))


def test_a_box_reaching_outside_the_frame_is_clipped_in_its_prompt(made, tmp_path):
    root = _copy(made["lasot"], tmp_path)
    path = root / "shape" / "shape-1" / "groundtruth.txt"
    lines = path.read_text().splitlines()
    lines[0] = "-5,-3,30,20"
    path.write_text("\n".join(lines) + "\n")
    seq = read_dataset(root, "lasot", videos=["shape-1"])[0]
    np.testing.assert_array_equal(seq.truth.boxes[0, 0], [-5, -3, 25, 17])  # the truth as given
    assert prompts_for(seq)["objects"][0]["prompts"][0] == {"frame": 0, "box": [0.0, 0.0, 25.0, 17.0]}


# --------------------------------------------------------------------------- predictions round trip


def _results_json(seq: EvalSequence, path: Path, records: list[FrameRecord]) -> Path:
    writer = ResultJsonWriter(path, probe(seq.video), {obj: seq.granularity for obj in seq.truth.obj_ids})
    with writer:
        writer.write_all(records)
    return path


def _mask_records(seq: EvalSequence) -> tuple[list[FrameRecord], dict[int, np.ndarray]]:
    """Predicted masks: the truth moved 1 px right; object 2 invisible on frame 4; on frame 2 object 1 also covers
    object 2 (the lower id wins the overlap in the indexed PNG); frame 9 has no result (an empty PNG)."""
    records, expected = [], {}
    for frame in range(FRAMES - 1):
        truth = label_map(seq.name, frame)
        masks = np.stack([np.roll(truth == obj, 1, axis=1) for obj in seq.truth.obj_ids])
        if frame == 2:
            masks[0] |= masks[1]
        visible = np.array([mask.any() and not (obj == 2 and frame == 4)
                            for mask, obj in zip(masks, seq.truth.obj_ids)])
        records.append(FrameRecord(frame, seq.truth.obj_ids, masks, None, None, np.ones(len(masks)), visible))
        labels = np.zeros(SIZE, np.int32)
        for i in reversed(range(len(masks))):
            if visible[i]:
                labels[masks[i]] = seq.truth.obj_ids[i]
        expected[frame] = labels
    expected[FRAMES - 1] = np.zeros(SIZE, np.int32)
    return records, expected


@pytest.mark.parametrize("variant", ["davis", "sav"])
def test_mask_predictions_round_trip_as_indexed_pngs(variant, read, tmp_path):
    seq = read[variant][0]
    records, expected = _mask_records(seq)
    results = _results_json(seq, tmp_path / "results.json", records)
    written = write_predictions(seq, results, tmp_path / "pred")
    assert written == tmp_path / "pred" / seq.name
    if variant == "davis":
        assert sorted(p.name for p in written.iterdir()) == [f"{f:05d}.png" for f in range(FRAMES)]
        with Image.open(written / "00002.png") as image:
            assert image.mode == "P"
            np.testing.assert_array_equal(np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)[:3],
                                          davis_palette()[:3])
            np.testing.assert_array_equal(np.asarray(image), expected[2])
    else:  # the SA-V evaluator's per-object layout, the folders named as the truth's
        assert sorted(p.name for p in written.iterdir()) == ["000", "001"]
        with Image.open(written / "001" / "00004.png") as image:
            assert not np.asarray(image).any()  # object 2 invisible on frame 4
    predicted = read_predictions(seq, tmp_path / "pred")
    for frame in range(FRAMES):  # SA-V's per-object PNGs keep the overlap; its label map shows the lower id
        np.testing.assert_array_equal(predicted.masks(frame), expected[frame], err_msg=f"frame {frame}")


def _box_records(seq: EvalSequence, offset: np.ndarray) -> tuple[list[FrameRecord], np.ndarray]:
    """Predicted boxes: the truth plus `offset`; invisible on frame 4; frame 9 has no result; where the truth is
    absent the tracker gives no box."""
    records = []
    expected = np.full((FRAMES, 1, 4), np.nan)
    for frame in range(FRAMES - 1):
        box = seq.truth.boxes[frame, 0] + offset
        visible = frame != 4 and np.isfinite(box).all()
        boxes = box[None] if np.isfinite(box).all() else None
        records.append(FrameRecord(frame, (1,), np.zeros((1, *SIZE), bool), boxes, None, [0.9], [visible]))
        if visible:
            expected[frame, 0] = box
    return records, expected


@pytest.mark.parametrize("variant", ["lasot", "got10k", "tag"])
def test_box_predictions_round_trip_in_the_datasets_text_format(variant, read, tmp_path):
    offset = np.array([1.0, 2.0, 1.0, 2.0]) if variant == "tag" else np.array([0.5, 0.25, 1.5, 1.25])
    for seq in read[variant]:
        records, expected = _box_records(seq, offset)
        results = _results_json(seq, tmp_path / f"{seq.name}.json", records)
        written = write_predictions(seq, results, tmp_path / "pred")
        if variant == "got10k":
            assert written == tmp_path / "pred" / seq.name / f"{seq.name}_001.txt"
        else:
            assert written == tmp_path / "pred" / f"{seq.name}.txt"
        lines = written.read_text().splitlines()
        assert len(lines) == FRAMES
        x1, y1, x2, y2 = expected[0, 0]
        if variant == "tag":  # SAM 2++'s sot_benchmark reads whole pixels, space-separated
            assert lines[0] == f"{x1:.0f} {y1:.0f} {x2 - x1:.0f} {y2 - y1:.0f}" and lines[4] == "0 0 0 0"
            assert np.loadtxt(written, dtype=int).shape == (FRAMES, 4)
        else:
            assert lines[0] == f"{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g}" and lines[4] == "0,0,0,0"
        np.testing.assert_array_equal(read_predictions(seq, tmp_path / "pred").boxes, expected)


def test_tag_box_predictions_are_rounded_to_whole_pixels(read, tmp_path):
    seq = read["tag"][0]
    record = FrameRecord(0, (1,), np.zeros((1, *SIZE), bool), [[10.4, 20.6, 30.4, 40.6]], None, [1.0], [True])
    written = write_predictions(seq, _results_json(seq, tmp_path / "r.json", [record]), tmp_path / "pred")
    assert written.read_text().splitlines()[0] == "10 21 20 20"
    np.testing.assert_array_equal(read_predictions(seq, tmp_path / "pred").boxes[0, 0], [10, 21, 30, 41])


@pytest.mark.parametrize("variant", ["tapvid-pkl", "tapvid-npz"])
def test_point_predictions_round_trip_as_npz(variant, read, tmp_path):
    seq = read[variant][1]
    records = []
    expected_points = np.full((FRAMES, 2, 2), np.nan)
    expected_occluded = np.ones((FRAMES, 2), bool)
    for frame in range(FRAMES):
        points = np.nan_to_num(seq.truth.points[frame], nan=0.0) + 0.5
        visible = ~seq.truth.occluded[frame]
        given = points.copy()
        if frame == 2:
            given[1] = np.nan  # no point for object 2: NaN and occluded when read back
        records.append(FrameRecord(frame, seq.truth.obj_ids, np.zeros((2, *SIZE), bool), None, given,
                                   [1.0, 1.0], visible))
        for column in range(2):
            if np.isfinite(given[column]).all():
                expected_points[frame, column] = [round(float(v), 3) for v in given[column].astype(np.float32)]
                expected_occluded[frame, column] = not visible[column]
    written = write_predictions(seq, _results_json(seq, tmp_path / "r.json", records), tmp_path / "pred")
    assert written == tmp_path / "pred" / f"{seq.name}.npz"
    with np.load(written) as data:
        assert set(data.files) == {"trajs_2d", "visibs", "size", "obj_ids"}
        assert data["size"].tolist() == [SIZE[1], SIZE[0]] and data["obj_ids"].tolist() == [1, 2]
    predicted = read_predictions(seq, tmp_path / "pred")
    np.testing.assert_array_equal(predicted.points, expected_points)
    np.testing.assert_array_equal(predicted.occluded, expected_occluded)


# --------------------------------------------------------------------------- malformed inputs


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("line, message", [
    ("10,20,abc,5", r"groundtruth.txt:3: 'abc' is not a number"),
    ("10,20,5", r"groundtruth.txt:3: expected 4 numbers x,y,w,h, got 3"),
    ("10,20,-5,5", r"groundtruth.txt:3: the width and height must not be negative"),
    ("", r"groundtruth.txt:3: empty line"),
])
def test_a_malformed_box_line_is_named_by_file_and_line(line, message, made, tmp_path):
    root = _copy(made["lasot"], tmp_path)
    _replace_line(root / "shape" / "shape-2" / "groundtruth.txt", 3, line)
    with pytest.raises(DatasetError, match=message):
        read_dataset(root, "lasot")
    assert len(read_dataset(root, "lasot", videos=["shape-1"])) == 1  # only the sequences asked for are read


def test_missing_and_malformed_files_are_named(made, tmp_path):
    lasot = _copy(made["lasot"], tmp_path)
    seq = lasot / "shape" / "shape-1"
    seq.joinpath("groundtruth.txt").write_text("1,2,3,4\n" * (FRAMES - 1))
    with pytest.raises(DatasetError, match=r"groundtruth.txt: 9 boxes for 10 frames"):
        read_dataset(lasot, "lasot", videos=["shape-1"])
    seq.joinpath("groundtruth.txt").write_text("1,2,3,4\n" * FRAMES)
    seq.joinpath("out_of_view.txt").write_text("0,0,2" + ",0" * (FRAMES - 3))
    with pytest.raises(DatasetError, match=r"out_of_view.txt:1: '2' is not a flag from 0 to 1"):
        read_dataset(lasot, "lasot", videos=["shape-1"])
    (lasot / "testing_set.txt").write_text("shape-1\nshape-9\n")
    with pytest.raises(DatasetError, match=r"testing_set.txt:2: sequence 'shape-9' is not in"):
        read_dataset(lasot, "lasot")
    got = _copy(made["got10k"], tmp_path)
    (got / "val" / "list.txt").unlink()
    with pytest.raises(DatasetError, match=r"no list.txt here or in val/ or test/"):
        read_dataset(got, "got10k")
    with pytest.raises(DatasetError, match=r"unknown layout 'vot'"):
        read_dataset(got, "vot")
    with pytest.raises(DatasetError, match=r"no such file or folder"):
        read_dataset(tmp_path / "nowhere", "davis")


def test_bad_annotation_pngs_are_refused(made, tmp_path):
    root = _copy(made["davis"], tmp_path)
    annotations = root / "Annotations" / "480p" / "seq1"
    Image.new("RGB", (SIZE[1], SIZE[0])).save(annotations / "00002.png")
    with pytest.raises(DatasetError, match=r"seq1/00002.png: an annotation must be an indexed .* got mode RGB"):
        read_dataset(root, "davis", videos=["seq1"])
    Image.new("P", (SIZE[1] + 1, SIZE[0])).save(annotations / "00002.png")
    with pytest.raises(DatasetError, match=r"00002.png: the annotation is 161x120, the frames are 160x120"):
        read_dataset(root, "davis", videos=["seq1"])
    (annotations / "00002.png").unlink()
    Image.new("P", (SIZE[1], SIZE[0])).save(annotations / "00042.png")
    with pytest.raises(DatasetError, match=r"00042.png: no frame 00042 in .*JPEGImages/480p/seq1"):
        read_dataset(root, "davis", videos=["seq1"])


def test_malformed_tapvid_videos_are_refused(made, tmp_path):
    with open(made["tapvid-pkl"].root / "tapvid_davis.pkl", "rb") as file:
        videos = pickle.load(file)
    broken = dict(videos)
    broken["seq0"] = {k: v for k, v in videos["seq0"].items() if k != "occluded"}
    (tmp_path / "a").mkdir()
    with open(tmp_path / "a" / "v.pkl", "wb") as file:
        pickle.dump(broken, file)
    with pytest.raises(DatasetError, match=r"v.pkl: video 'seq0': missing 'occluded'"):
        read_dataset(tmp_path / "a", "tapvid", cache=tmp_path / "cache")
    broken["seq0"] = dict(videos["seq0"], points=videos["seq0"]["points"][:, :5])
    with open(tmp_path / "a" / "v.pkl", "wb") as file:
        pickle.dump(broken, file)
    with pytest.raises(DatasetError, match=r"'points' must be \[N, 10, 2\] .* got shape \[3, 5, 2\]"):
        read_dataset(tmp_path / "a", "tapvid", cache=tmp_path / "cache")
    broken["seq0"] = dict(videos["seq0"], video=[b"not a jpeg"] * FRAMES)
    with open(tmp_path / "a" / "v.pkl", "wb") as file:
        pickle.dump(broken, file)
    with pytest.raises(DatasetError, match=r"video 'seq0': frame 0 is neither an RGB array nor JPEG/PNG bytes"):
        read_dataset(tmp_path / "a", "tapvid", cache=tmp_path / "cache")
    broken["seq0"] = dict(videos["seq0"], video=list(videos["seq0"]["video"]))  # a list of frames reads too
    with open(tmp_path / "a" / "v.pkl", "wb") as file:
        pickle.dump(broken, file)
    seq0 = read_dataset(tmp_path / "a", "tapvid", videos=["seq0"], cache=tmp_path / "cache")[0]
    np.testing.assert_array_equal(seq0.truth.points, made["tapvid-pkl"].sequence("seq0").points)
    (tmp_path / "a" / "v.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"v.pkl: not a readable pickle"):
        read_dataset(tmp_path / "a", "tapvid", cache=tmp_path / "cache")


def test_malformed_results_and_predictions_are_refused(read, tmp_path):
    seq = read["lasot"][0]
    (tmp_path / "r.json").write_text(json.dumps({"format": "something-else", "frames": []}))
    with pytest.raises(DatasetError, match=r"r.json: not a results JSON"):
        write_predictions(seq, tmp_path / "r.json", tmp_path / "pred")
    record = FrameRecord(FRAMES, (1,), np.zeros((1, *SIZE), bool), [[1, 2, 3, 4]], None, [1.0], [True])
    _results_json(seq, tmp_path / "r.json", [record])
    with pytest.raises(DatasetError, match=r"frames\[0\]: frame 10 is not one of the sequence's 10 frames"):
        write_predictions(seq, tmp_path / "r.json", tmp_path / "pred")
    with pytest.raises(DatasetError, match=r"shape-1.txt: the predictions of 'shape-1' are missing"):
        read_predictions(seq, tmp_path / "pred")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "shape-1.txt").write_text("1,2,3,4\n" * 3)
    with pytest.raises(DatasetError, match=r"shape-1.txt: 3 boxes for 10 frames"):
        read_predictions(seq, tmp_path / "pred")
    davis = read["davis"][0]
    with pytest.raises(DatasetError, match=r"the predictions of 'seq0' are missing"):
        read_predictions(davis, tmp_path / "pred")


def test_layout_constants():
    assert set(GRANULARITY) == set(LAYOUTS) and NAMES == ("seq0", "seq1", "seq2")
