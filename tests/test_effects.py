"""Effects (sam2_plus/effects): the settings and their messages, and every effect on frames: pixels outside
its region unchanged, inside changed as specified (compared on arrays, no codec in between)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sam2_plus.effects.render import EffectRenderer, gaussian_blur
from sam2_plus.effects.settings import (
    OBJECT_EFFECTS, EffectError, EffectSettings, parse_color, parse_effect_flag, parse_effects,
)
from sam2_plus.media.export import FrameRecord
from sam2_plus.media.render import color_for_id

H, W = 60, 90


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """Detail everywhere, so that every effect changes every pixel it touches."""
    rng = np.random.default_rng(1)
    return cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 0.8)


def disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def result_of(masks, visible=None, boxes=None, points=None) -> FrameRecord:
    masks = np.stack(masks)
    n = len(masks)
    return FrameRecord(0, list(range(1, n + 1)), masks, boxes, points, [1.0] * n,
                       [True] * n if visible is None else visible)


def compose(settings: dict, frame, result, tasks=None, alpha=False):
    tasks = tasks or {obj_id: "mask" for obj_id in result.obj_ids}
    return EffectRenderer(parse_effects(settings), tasks, with_alpha=alpha).compose(frame, result)


# --------------------------------------------------------------------------- object effects


def test_fill_paints_the_mask_and_nothing_else(frame):
    mask = disc(30, 30, 12)
    out = compose({"objects": {"1": {"effect": "fill", "color": "#10ff80"}}}, frame, result_of([mask])).rgb
    assert (out[mask] == (0x10, 0xFF, 0x80)).all()
    assert np.array_equal(out[~mask], frame[~mask])


def test_blur_is_a_gaussian_inside_the_mask_only(frame):
    mask = disc(45, 30, 15)
    out = compose({"objects": {"1": {"effect": "blur", "strength": 3}}}, frame, result_of([mask])).rgb
    reference = cv2.GaussianBlur(frame, (0, 0), 3)  # on the whole frame
    assert np.array_equal(out[mask], reference[mask])  # work on the bounding box equals work on the frame
    assert np.array_equal(out[~mask], frame[~mask])
    assert np.abs(out[mask].astype(int) - frame[mask]).mean() > 10


@pytest.mark.parametrize("sigma", [5, 12, 40])
def test_strong_blurs_on_a_pyramid_match_the_full_gaussian(sigma):
    image = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 2)
    error = np.abs(gaussian_blur(image, sigma).astype(int) - cv2.GaussianBlur(image, (0, 0), sigma))
    assert error.mean() < 0.6 and error.max() <= 6


def test_pixelate_replaces_grid_blocks_by_their_mean(frame):
    mask = np.zeros((H, W), bool)
    mask[8:40, 16:56] = True
    out = compose({"objects": {"1": {"effect": "pixelate", "block": 8}}}, frame, result_of([mask])).rgb
    for y in range(8, 40, 8):
        for x in range(16, 56, 8):
            block = frame[y:y + 8, x:x + 8].reshape(-1, 3).mean(axis=0)
            assert np.abs(out[y:y + 8, x:x + 8].astype(float) - block).max() <= 0.5 + 1e-6
    assert np.array_equal(out[~mask], frame[~mask])


def test_pixelate_grid_is_fixed_to_the_frame(frame):
    """A block cut by the mask shows the mean of the whole grid block, so blocks do not crawl as objects move."""
    mask = np.zeros((H, W), bool)
    mask[10:20, 13:30] = True
    out = compose({"objects": {"1": {"effect": "pixelate", "block": 8}}}, frame, result_of([mask])).rgb
    mean = frame[8:16, 8:16].reshape(-1, 3).mean(axis=0)
    assert np.abs(out[10:16, 13:16].astype(float) - mean).max() <= 0.5 + 1e-6


def test_outline_draws_the_boundary_in_the_object_colour(frame):
    mask = disc(40, 30, 14)
    out = compose({"objects": {"1": {"effect": "outline", "thickness": 3}}}, frame, result_of([mask])).rgb
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    outer = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    boundary = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert (out[boundary] == color_for_id(1)).all()
    far = inner | ~outer
    assert np.array_equal(out[far], frame[far])


def test_box_and_point_objects_use_their_box_and_a_disc(frame):
    masks = [np.zeros((H, W), bool), np.zeros((H, W), bool)]
    boxes = np.array([[10, 5, 30, 25], [np.nan] * 4], np.float32)
    points = np.array([[np.nan, np.nan], [60, 40]], np.float32)
    result = result_of(masks, boxes=boxes, points=points)
    settings = {"objects": {"1": "fill", "2": {"effect": "fill", "color": [255, 255, 255]}}, "point_radius": 6}
    out = compose(settings, frame, result, tasks={1: "box", 2: "point"}).rgb
    box = np.zeros((H, W), bool)
    box[5:25, 10:30] = True
    point = np.zeros((H, W), np.uint8)
    cv2.circle(point, (60, 40), 6, 1, cv2.FILLED)
    point = point.astype(bool)
    assert (out[box] == 0).all() and (out[point] == 255).all()
    assert np.array_equal(out[~box & ~point], frame[~box & ~point])


def test_objects_not_visible_are_left_alone(frame):
    out = compose({"objects": {"1": "fill"}, "background": "fill"}, frame,
                  result_of([disc(30, 30, 10)], visible=[False])).rgb
    assert (out == 0).all()  # all background: nothing is kept


# --------------------------------------------------------------------------- the background


@pytest.mark.parametrize("name, expected", [
    ("grayscale", lambda f: cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)),
    ({"effect": "fill", "color": "#0000ff"}, lambda f: np.broadcast_to(np.uint8([0, 0, 255]), f.shape)),
    ("erase", lambda f: np.zeros_like(f)),
    ({"effect": "spotlight", "dim": 0.25}, lambda f: np.rint(f * 0.25).astype(np.uint8)),
    ({"effect": "blur", "strength": 2}, lambda f: cv2.GaussianBlur(f, (0, 0), 2)),
])
def test_background_effects_change_everything_but_the_chosen_objects(frame, name, expected):
    first, second = disc(25, 30, 10), disc(65, 30, 12)
    out = compose({"objects": {"1": "none"}, "background": name}, frame, result_of([first, second])).rgb
    assert np.array_equal(out[first], frame[first])  # the chosen object is kept
    outside = ~first
    assert np.abs(out[outside].astype(int) - expected(frame)[outside]).max() <= 1  # object 2 is background too


def test_every_object_is_chosen_when_none_is_listed(frame):
    first, second = disc(25, 30, 10), disc(65, 30, 12)
    out = compose({"background": "erase"}, frame, result_of([first, second])).rgb
    kept = first | second
    assert np.array_equal(out[kept], frame[kept]) and (out[~kept] == 0).all()


def test_alpha_is_the_chosen_objects_and_feathering_softens_it(frame):
    first, second = disc(25, 30, 10), disc(65, 30, 12)
    hard = compose({"objects": {"2": "none"}, "background": "erase"}, frame, result_of([first, second]), alpha=True)
    assert np.array_equal(hard.alpha, second.astype(np.uint8) * 255)
    soft = compose({"objects": {"2": "none"}, "background": "erase", "feather": 2}, frame,
                   result_of([first, second]), alpha=True)
    expected = np.rint(cv2.GaussianBlur(second.astype(np.float32), (13, 13), 2) * 255)
    assert np.abs(soft.alpha.astype(int) - expected).max() <= 1  # at full resolution, sigma 2
    far = ~cv2.dilate(second.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert (soft.alpha[far] == 0).all() and (soft.rgb[far] == 0).all()
    assert soft.alpha[30, 65] == 255 and 0 < soft.alpha[30, 65 + 12] < 255
    rgba = soft.rgba(clear_transparent=True)
    assert (rgba[soft.alpha == 0] == 0).all()


def test_the_alpha_matte_does_not_change_the_picture(frame):
    """A cut-out without a background effect: the colours are the effect frame's, feathered edges included."""
    settings = {"objects": {"1": "fill"}, "feather": 2}
    with_alpha = compose(settings, frame, result_of([disc(45, 30, 10)]), alpha=True)
    assert np.array_equal(with_alpha.rgb, compose(settings, frame, result_of([disc(45, 30, 10)])).rgb)
    assert with_alpha.alpha[30, 45] == 255 and with_alpha.alpha[0, 0] == 0


def test_an_object_effect_stays_inside_its_feathered_edge(frame):
    mask = disc(45, 30, 10)
    out = compose({"objects": {"1": "fill"}, "feather": 1.5}, frame, result_of([mask])).rgb
    far = ~cv2.dilate(mask.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    assert np.array_equal(out[far], frame[far])
    assert (out[30, 45] == 0).all()


# --------------------------------------------------------------------------- settings


def test_settings_round_trip_and_defaults():
    document = {"objects": {"2": {"effect": "fill", "color": "#ff0000"}, "1": "blur"},
                "background": {"effect": "spotlight", "dim": 0.5}, "feather": 2.0, "point_radius": 9,
                "cutout": ["mov"]}
    settings = parse_effects(document)
    assert settings.chosen([1, 2, 3]) == (2, 1)  # in the order given; 3 is background
    assert settings.effect_for(2).color == (255, 0, 0) and settings.effect_for(3).is_none
    assert parse_effects(settings.to_json()) == settings
    assert parse_effects("{}") == EffectSettings() and EffectSettings().chosen([4, 5]) == (4, 5)
    assert parse_color("#0f8") == (0, 255, 136) and parse_color([1, 2, 3]) == (1, 2, 3)
    assert parse_effect_flag("fill,color=#00ff00", OBJECT_EFFECTS, "--effect").color == (0, 255, 0)


@pytest.mark.parametrize("document, message", [
    ({"objects": {"1": "blurr"}}, r'effects.objects\["1"\]: unknown effect .blurr.; choose one of none, blur, '
                                  r"pixelate, fill, outline$"),
    ({"background": "pixelate"}, "effects.background: unknown effect 'pixelate'; choose one of none, blur, "
                                 "grayscale, fill, erase, spotlight"),
    ({"background": {"effect": "fill", "color": "green"}},
     r'effects.background.color: "green" is not a colour; give a colour as "#rrggbb" \(e.g. "#00ff00"\) or '
     r"\[r, g, b\] with values 0-255"),
    ({"objects": {"1": {"effect": "fill", "color": [0, 300, 0]}}}, r"\[0, 300, 0\] is not a colour"),
    ({"objects": {"1": {"effect": "blur", "block": 4}}}, r"blur takes only 'strength', not 'block'"),
    ({"objects": {"1": {"effect": "outline", "thickness": 2.5}}}, "thickness: must be an integer from 1 to 64"),
    ({"objects": {"a": "blur"}}, "the key must be an object id"),
    ({"objects": {"1": {"strength": 3}}}, 'give the effect\'s name as "effect"'),
    ({"feather": -1}, "effects.feather: must be a number from 0.0 to 50.0, got -1"),
    ({"cutout": ["gif"]}, "effects.cutout: unknown format.*'gif'; choose from webm, mov, png"),
    ({"blur": 3}, "effects: unknown key.*'blur'; allowed: objects, background, feather, point_radius, cutout"),
    ("[1]", "effects: give a JSON object"),
])
def test_bad_settings_say_what_is_expected(document, message):
    with pytest.raises(EffectError, match=message):
        parse_effects(document)


def test_effects_must_name_tracked_objects():
    with pytest.raises(EffectError, match=r"names object 7, which the prompts do not have \(their objects: 1, 2\)"):
        parse_effects({"objects": {"7": "blur"}}).check_objects([2, 1])
