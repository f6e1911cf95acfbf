"""Rendering: stable colours, mask tint and contour, boxes, points with trails, absent objects."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sam2_plus.media.export import FrameRecord
from sam2_plus.media.render import RenderStyle, TrackRenderer, color_for_id

H, W = 120, 160
GREY = 90


def _frame() -> np.ndarray:
    return np.full((H, W, 3), GREY, np.uint8)


def _rect_mask(x1, y1, x2, y2) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _result(frame_idx=0, visible=(True, True, True), points=((130.0, 30.0),) * 3) -> FrameRecord:
    masks = np.stack([_rect_mask(10, 10, 50, 60), _rect_mask(60, 20, 100, 90), np.zeros((H, W), bool)])
    boxes = np.array([[10, 10, 50, 60], [60, 20, 100, 90], [0, 0, 0, 0]], np.float32)
    return FrameRecord(frame_idx, [1, 2, 3], masks, boxes, np.array(points, np.float32), [0.9, 0.8, 0.7], visible)


def test_colours_are_stable_and_distinct():
    first = [color_for_id(i) for i in range(1, 60)]
    assert first == [color_for_id(i) for i in range(1, 60)]
    assert len(set(first)) == len(first)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in first)


def test_mask_is_tinted_inside_and_outlined():
    style = RenderStyle(mask_alpha=0.5, contour_thickness=2)
    renderer = TrackRenderer({1: "mask", 2: "mask", 3: "mask"}, style=style)
    frame = _frame()
    out = renderer.render(frame, _result())
    color = np.array(color_for_id(1))
    expected_tint = np.round(GREY * 0.5 + color * 0.5)
    assert np.abs(out[35, 30].astype(int) - expected_tint).max() <= 1  # interior of mask 1
    np.testing.assert_array_equal(out[10, 30], color)  # boundary pixel carries the contour
    np.testing.assert_array_equal(out[115, 5], [GREY] * 3)  # far from every object
    np.testing.assert_array_equal(out[35, 55], [GREY] * 3)  # between the masks
    assert np.array_equal(frame, _frame()), "the input frame must not be modified"


def test_invisible_objects_are_not_drawn():
    renderer = TrackRenderer({1: "mask", 2: "box", 3: "point"})
    out = renderer.render(_frame(), _result(visible=(False, False, False)))
    np.testing.assert_array_equal(out, _frame())


def test_box_edges_take_the_object_colour_and_inside_is_untouched():
    renderer = TrackRenderer({2: "box"}, style=RenderStyle(box_thickness=1))
    result = _result(visible=(False, True, False))
    out = renderer.render(_frame(), result)
    color = np.array(color_for_id(2))
    for y, x in [(50, 60), (50, 99), (89, 80)]:  # left edge, right edge (x2 - 1), bottom edge (y2 - 1)
        np.testing.assert_array_equal(out[y, x], color)
    np.testing.assert_array_equal(out[50, 80], [GREY] * 3)
    np.testing.assert_array_equal(out[50, 101], [GREY] * 3)
    # The label tag sits at the top-left corner: above it, or inside when the font (OpenCV's version) is too tall.
    near_corner = np.delete(out[0:45, 61:70], 20, axis=0)  # row 20 is the box's top edge
    assert (near_corner != GREY).any()


def test_point_marker_and_trail():
    style = RenderStyle(point_radius=3, trail_length=5)
    renderer = TrackRenderer({3: "point"}, style=style)
    color = np.array(color_for_id(3))
    for frame_idx, x in enumerate([20, 40, 60]):
        out = renderer.render(_frame(), _result(frame_idx, (False, False, True), points=[(x, 100.0)] * 3))
    np.testing.assert_array_equal(out[100, 60], color)  # current marker
    assert (np.abs(out[100, 30].astype(int) - color).max()) < 60  # on the trail between earlier points
    np.testing.assert_array_equal(out[60, 30], [GREY] * 3)
    # A jump beyond the trail length drops the old points.
    out = renderer.render(_frame(), _result(20, (False, False, True), points=[(140.0, 100.0)] * 3))
    np.testing.assert_array_equal(out[100, 100], [GREY] * 3)


def test_mixed_granularities_in_one_frame():
    renderer = TrackRenderer({1: "mask", 2: "box", 3: "point"}, style=RenderStyle(box_thickness=1, point_radius=3))
    result = _result()
    out = renderer.render(_frame(), result)
    assert (out[35, 30] != GREY).any()  # mask 1 tinted
    np.testing.assert_array_equal(out[50, 80], [GREY] * 3)  # box 2 is not filled
    np.testing.assert_array_equal(out[50, 60], color_for_id(2))
    np.testing.assert_array_equal(out[30, 130], color_for_id(3))


def test_unknown_task_and_size_mismatch_are_rejected():
    with pytest.raises(ValueError, match="unknown task"):
        TrackRenderer({1: "polygon"})
    with pytest.raises(ValueError, match="masks are"):
        TrackRenderer().render(np.zeros((10, 10, 3), np.uint8), _result())


def test_rendering_a_hd_frame_is_fast():
    height, width = 720, 1280
    yy, xx = np.mgrid[:height, :width]
    discs = [(400, 300, 150), (800, 400, 200), (1000, 200, 80)]
    masks = np.stack([(xx - cx) ** 2 + (yy - cy) ** 2 < r * r for cx, cy, r in discs])
    points = np.array([[400, 300], [800, 400], [1000, 200]])
    result = FrameRecord(0, [1, 2, 3], masks, None, points, [1, 1, 1], [1, 1, 1])
    frame = np.zeros((height, width, 3), np.uint8)
    renderer = TrackRenderer({1: "mask", 2: "mask", 3: "mask"})
    renderer.render(frame, result)
    start = time.perf_counter()
    for _ in range(5):
        renderer.render(frame, result)
    per_frame = (time.perf_counter() - start) / 5
    assert per_frame < 0.2, f"{per_frame * 1000:.1f} ms per 1280x720 frame"  # generous: CPU is shared
