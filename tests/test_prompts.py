"""The prompts JSON parser: the documented forms parse, each invalid form fails with a precise message."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from sam2_plus.media.decode import VideoInfo
from sam2_plus.media.rle import encode_rle, mask_to_counts
from sam2_plus.prompts import FramePrompt, PromptError, PromptLimits, parse_prompts, prompts_to_json

H, W = 48, 64
VIDEO = VideoInfo("video", 10, 24.0, W, H, 10 / 24)


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[10:20, 5:30] = True
    return mask


def _document() -> dict:
    return {
        "objects": [
            {
                "id": 1,
                "task": "mask",
                "prompts": [
                    {"frame": 0, "points": [[10, 12], [30.5, 20]], "labels": [1, 0]},
                    {"frame": 7, "mask": encode_rle(_mask())},
                ],
            },
            {"id": 2, "task": "box", "prompts": [{"frame": 0, "box": [5, 6, 40, 30]}]},
            {"id": 3, "task": "point", "prompts": [{"frame": 0, "points": [[20, 25]]}]},
        ]
    }


def test_documented_example_parses():
    objects = parse_prompts(json.dumps(_document()), VIDEO)
    assert [(o.obj_id, o.task, len(o.prompts)) for o in objects] == [(1, "mask", 2), (2, "box", 1), (3, "point", 1)]
    clicks, mask_prompt = objects[0].prompts
    np.testing.assert_array_equal(clicks.points, [[10, 12], [30.5, 20]])
    np.testing.assert_array_equal(clicks.labels, [1, 0])
    assert clicks.points.dtype == np.float32 and clicks.labels.dtype == np.int32
    assert clicks.box is None and clicks.mask is None
    assert mask_prompt.frame == 7
    np.testing.assert_array_equal(mask_prompt.mask, _mask())
    np.testing.assert_array_equal(objects[1].prompts[0].box, [5, 6, 40, 30])
    np.testing.assert_array_equal(objects[2].prompts[0].labels, [1])


def test_json_bytes_dict_and_text_give_the_same_result():
    text = json.dumps(_document())
    for data in (text, text.encode("utf-8"), _document()):
        objects = parse_prompts(data, VIDEO)
        assert [o.obj_id for o in objects] == [1, 2, 3]


def test_round_trip_through_prompts_to_json():
    objects = parse_prompts(_document(), VIDEO)
    again = parse_prompts(json.dumps(prompts_to_json(objects)), VIDEO)
    for first, second in zip(objects, again, strict=True):
        assert (first.obj_id, first.task) == (second.obj_id, second.task)
        for a, b in zip(first.prompts, second.prompts, strict=True):
            assert a.frame == b.frame
            for name in ("points", "labels", "box", "mask"):
                left, right = getattr(a, name), getattr(b, name)
                assert (left is None) == (right is None)
                if left is not None:
                    np.testing.assert_array_equal(left, right)


def test_labels_default_to_positive():
    document = {"objects": [{"id": 4, "task": "mask", "prompts": [{"frame": 2, "points": [[1, 2], [3, 4]]}]}]}
    (obj,) = parse_prompts(document, VIDEO)
    np.testing.assert_array_equal(obj.prompts[0].labels, [1, 1])


def test_box_plus_clicks_for_a_mask_object():
    document = {
        "objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [1, 1, 20, 20], "points": [[5, 5]], "labels": [0]}]}]
    }
    prompt = parse_prompts(document, VIDEO)[0].prompts[0]
    assert isinstance(prompt, FramePrompt)
    assert prompt.box is not None and prompt.points is not None


def test_swapped_box_corners_are_normalised():
    document = {"objects": [{"id": 2, "task": "box", "prompts": [{"frame": 0, "box": [40, 30, 5, 6]}]}]}
    np.testing.assert_array_equal(parse_prompts(document, VIDEO)[0].prompts[0].box, [5, 6, 40, 30])


def test_half_pixel_outside_is_moved_onto_the_edge():
    document = {
        "objects": [
            {"id": 1, "task": "point", "prompts": [{"frame": 0, "points": [[-0.5, H + 0.5]]}]},
            {"id": 2, "task": "box", "prompts": [{"frame": 9, "box": [-0.25, 0, W + 0.5, H]}]},
        ]
    }
    point_obj, box_obj = parse_prompts(document, VIDEO)
    np.testing.assert_array_equal(point_obj.prompts[0].points, [[0, H]])
    np.testing.assert_array_equal(box_obj.prompts[0].box, [0, 0, W, H])


def test_uncompressed_rle_counts_are_accepted():
    counts = mask_to_counts(_mask())
    document = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "mask": {"size": [H, W], "counts": counts}}]}]}
    np.testing.assert_array_equal(parse_prompts(document, VIDEO)[0].prompts[0].mask, _mask())


def test_structure_is_checked_without_a_video():
    document = _document()
    document["objects"][1]["prompts"][0]["box"] = [5, 6, 4000, 3000]
    objects = parse_prompts(document)  # no video: bounds cannot be checked
    np.testing.assert_array_equal(objects[1].prompts[0].box, [5, 6, 4000, 3000])


def _set(path, value):
    def mutate(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return document

    return mutate


def _delete(path):
    def mutate(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return document

    return mutate


FIRST = ("objects", 0, "prompts", 0)
BOX = ("objects", 1, "prompts", 0)
POINT = ("objects", 2, "prompts", 0)
MASK = ("objects", 0, "prompts", 1)

INVALID = [
    (_set(("extra",), 1), r"the prompts: unknown key\(s\) 'extra' \(allowed: objects\)"),
    (_delete(("objects",)), r"need an 'objects' list"),
    (_set(("objects",), []), r"'objects' is empty"),
    (_set(("objects",), {"id": 1}), r"'objects' must be a list, got an object"),
    (_set(("objects", 0, "colour"), "red"), r"objects\[0\]: unknown key\(s\) 'colour'"),
    (_delete(("objects", 1, "task")), r"objects\[1\]: missing 'task'"),
    (_set(("objects", 1, "id"), 0), r"objects\[1\]: 'id' must be an integer from 1 to 2147483647, got 0"),
    (_set(("objects", 1, "id"), "2"), r"objects\[1\]: 'id' must be an integer from 1 to 2147483647, got '2'"),
    (_set(("objects", 1, "id"), True), r"objects\[1\]: 'id' must be an integer from 1 to 2147483647, got True"),
    (_set(("objects", 1, "id"), 1.0), r"objects\[1\]: 'id' must be an integer from 1 to 2147483647, got 1.0"),
    (_set(("objects", 2, "id"), 1), r"objects\[2\]: id 1 is already used by objects\[0\]"),
    (_set(("objects", 1, "task"), "polygon"), r"objects\[1\] \(id 2\): 'task' must be one of mask, box, point, got 'polygon'"),
    (_set(("objects", 1, "prompts"), []), r"objects\[1\] \(id 2\): 'prompts' is empty"),
    (_set(FIRST + ("file",), "/etc/passwd"), r"objects\[0\] \(id 1\), prompts\[0\]: unknown key\(s\) 'file'"),
    (_delete(FIRST + ("frame",)), r"objects\[0\] \(id 1\), prompts\[0\]: missing 'frame'"),
    (_set(FIRST + ("frame",), 10), r"prompts\[0\]: frame 10 is out of range; the video has 10 frames \(0..9\)"),
    (_set(FIRST + ("frame",), -1), r"prompts\[0\]: 'frame' must be an integer from 0 to 2147483647, got -1"),
    (_set(FIRST + ("frame",), 1.5), r"'frame' must be an integer from 0 to 2147483647, got 1.5"),
    (_set(MASK + ("frame",), 0), r"objects\[0\] \(id 1\), prompts\[1\]: frame 0 is already prompted by prompts\[0\]"),
    (_set(FIRST + ("points",), [[10, 12], [99, 20]]), r"prompts\[0\]: points\[1\]: x=99 is outside the frame \(width 64: allowed 0 to 64\)"),
    (_set(FIRST + ("points",), [[10, 12], [30, -0.6]]), r"points\[1\]: y=-0.6 is outside the frame \(height 48"),
    (_set(FIRST + ("points",), [[10, 12], [30]]), r"points\[1\] must be \[x, y\] with two finite numbers"),
    (_set(FIRST + ("points",), [[10, 12], [30, "5"]]), r"points\[1\] must be \[x, y\] with two finite numbers"),
    (_set(FIRST + ("points",), []), r"'points' must be a non-empty list"),
    (_set(FIRST + ("labels",), [1]), r"prompts\[0\]: 1 labels for 2 points"),
    (_set(FIRST + ("labels",), [1, 2]), r"labels\[1\] must be 1 \(positive\) or 0 \(negative\), got 2"),
    (_set(FIRST + ("labels",), [1, True]), r"labels\[1\] must be 1 \(positive\) or 0 \(negative\), got True"),
    (_delete(FIRST + ("points",)), r"prompts\[0\]: 'labels' given without 'points'"),
    (_set(FIRST, {"frame": 0}), r"prompts\[0\]: needs 'points', 'box' or 'mask'"),
    (_set(BOX + ("box",), [5, 6, 40]), r"objects\[1\] \(id 2\), prompts\[0\]: 'box' must be \[x1, y1, x2, y2\]"),
    (_set(BOX + ("box",), [5, 6, 5, 30]), r"'box' \[5, 6, 5, 30\] has zero width or height"),
    (_set(BOX + ("box",), [5, 6, 40, 49]), r"box: y2=49 is outside the frame \(height 48"),
    (_set(BOX + ("points",), [[1, 1]]), r"objects\[1\] \(id 2\), prompts\[0\]: task 'box' takes exactly a 'box'"),
    (_set(BOX, {"frame": 0, "points": [[1, 1]]}), r"task 'box' takes exactly a 'box'"),
    (_set(POINT + ("points",), [[1, 1], [2, 2]]), r"objects\[2\] \(id 3\), prompts\[0\]: task 'point' takes exactly one positive point, got 2 points"),
    (_set(POINT + ("labels",), [0]), r"task 'point' takes exactly one positive point, got a negative point"),
    (_set(POINT + ("box",), [1, 1, 5, 5]), r"task 'point' takes exactly one positive point \(no box or mask\)"),
    (_set(MASK + ("points",), [[1, 1]]), r"prompts\[1\]: a 'mask' prompt cannot be combined with points or a box"),
    (_set(MASK + ("mask",), {"size": [W, H], "counts": "0"}), r"mask size \[64, 48\] does not match the video; expected \[H, W\] = \[48, 64\]"),
    (_set(MASK + ("mask",), {"size": [H, W], "counts": [5, 5]}), r"prompts\[1\]: mask is not valid COCO RLE: RLE run lengths sum to 10"),
    (_set(MASK + ("mask",), {"size": [H, W], "counts": "~~~~"}), r"mask is not valid COCO RLE"),
    (_set(MASK + ("mask",), {"size": [H, W], "counts": [H * W]}), r"prompts\[1\]: mask is empty"),
    (_set(MASK + ("mask",), {"size": [H, W], "counts": [H * W], "path": "m.png"}), r"mask: unknown key\(s\) 'path'"),
    (_set(MASK + ("mask",), "masks/0.png"), r"'mask' must be a COCO RLE object"),
]


@pytest.mark.parametrize("mutate, message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_prompts_raise_precise_errors(mutate, message):
    document = mutate(copy.deepcopy(_document()))
    with pytest.raises(PromptError, match=message):
        parse_prompts(document, VIDEO)
    # The same document as JSON text fails the same way.
    with pytest.raises(PromptError, match=message):
        parse_prompts(json.dumps(document), VIDEO)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{\"objects\": [", r"not valid JSON: .*line 1"),
        ("prompts.json", r"must be a JSON object starting with '\{' \(pass the JSON text, not a file path\)"),
        ('{"objects": [{"id": 1, "id": 2}]}', r"the key 'id' appears twice"),
        ('{"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [NaN, 0, 1, 1]}]}]}', r"contains NaN"),
        (b"\xff\xfe{", r"not UTF-8"),
    ],
)
def test_invalid_json_text(text, message):
    with pytest.raises(PromptError, match=message):
        parse_prompts(text, VIDEO)


def test_limits_are_configurable():
    limits = PromptLimits(max_objects=2, max_prompts_per_object=1, max_points_per_prompt=1, max_json_bytes=10_000)
    with pytest.raises(PromptError, match="3 objects given; at most 2 are allowed"):
        parse_prompts(_document(), VIDEO, limits)
    two = {"objects": _document()["objects"][:2]}
    with pytest.raises(PromptError, match=r"objects\[0\] \(id 1\): 2 prompts given; at most 1 are allowed"):
        parse_prompts(two, VIDEO, limits)
    one = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[1, 1], [2, 2]]}]}]}
    with pytest.raises(PromptError, match="2 points given; at most 1 are allowed"):
        parse_prompts(one, VIDEO, limits)
    with pytest.raises(PromptError, match="at most 10000 are allowed"):
        parse_prompts(json.dumps(one) + " " * 10_000, VIDEO, limits)
