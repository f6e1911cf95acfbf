"""Property-based tests of the prompts parser: any input either parses into valid typed prompts within the
limits, or raises PromptError; never another exception. Valid documents always parse and round-trip.

Bounded and reproducible: a fixed number of derandomized examples per test.
"""

from __future__ import annotations

import copy
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sam2_plus.media.decode import VideoInfo
from sam2_plus.media.rle import encode_rle, mask_to_counts
from sam2_plus.prompts import (
    MAX_COORDINATE,
    MAX_FRAME_INDEX,
    MAX_OBJECT_ID,
    TASKS,
    ObjectPrompts,
    PromptError,
    PromptLimits,
    parse_prompts,
    prompts_to_json,
)

H, W = 12, 16
VIDEO = VideoInfo("video", 6, 24.0, W, H, 6 / 24)
SMALL_LIMITS = PromptLimits(max_objects=3, max_prompts_per_object=2, max_points_per_prompt=3,
                            max_json_bytes=4000, max_mask_pixels=2 * H * W)
PROPERTY_SETTINGS = settings()  # the profile of tests/conftest.py: 40 examples, 400 with CI=true

KEYS = ("objects", "id", "task", "prompts", "frame", "points", "labels", "box", "mask", "size", "counts")
_numbers = st.one_of(
    st.integers(min_value=-3, max_value=70),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.floats(min_value=-1, max_value=W + 1),
)
_scalars = st.one_of(
    st.none(), st.booleans(), _numbers, st.text(max_size=12), st.sampled_from(TASKS + KEYS + ("/etc/passwd",))
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=25,
)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# Values that broke naive parsers: numbers past float or str() range, NaN, huge strings, deep nesting.
_nasty = st.sampled_from([
    10**400, -(10**400), 10**5000, 2**31, 2**63, -1, 0, 1e308, -1e-300, float("nan"), float("inf"),
    "", "x" * 100_000, "/etc/passwd", "masks/0.png", [], {}, [[]], [0, 0], [1e308, 1e308], _nested(500),
    {"size": [10**6, 10**6], "counts": [10**12]}, {"size": [2**40, 2**40], "counts": "0" * 20}, True, None,
]).map(copy.deepcopy)  # later edits may change the value in place: never the shared original
_replacements = st.one_of(_nasty, json_values)


# --------------------------------------------------------------------------- valid documents


def _coordinate(limit: int):
    return st.one_of(st.integers(min_value=0, max_value=limit), st.floats(min_value=0, max_value=limit))


@st.composite
def _box(draw) -> list:
    x1, x2 = draw(st.lists(_coordinate(W), min_size=2, max_size=2, unique_by=lambda v: np.float32(v)))
    y1, y2 = draw(st.lists(_coordinate(H), min_size=2, max_size=2, unique_by=lambda v: np.float32(v)))
    return [x1, y1, x2, y2]  # corners in either order: the parser sorts them


@st.composite
def _clicks(draw, limits: PromptLimits) -> dict:
    count = draw(st.integers(min_value=1, max_value=limits.max_points_per_prompt))
    points = [[draw(_coordinate(W)), draw(_coordinate(H))] for _ in range(count)]
    prompt = {"points": points}
    if draw(st.booleans()):
        prompt["labels"] = draw(st.lists(st.sampled_from([0, 1]), min_size=count, max_size=count))
    return prompt


@st.composite
def _mask(draw) -> dict:
    mask = np.zeros((H, W), bool)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):  # a few rectangles, never empty
        top, left = draw(st.integers(0, H - 1)), draw(st.integers(0, W - 1))
        mask[top : draw(st.integers(top + 1, H)), left : draw(st.integers(left + 1, W))] = True
    rle = encode_rle(mask)
    if draw(st.booleans()):
        rle["counts"] = mask_to_counts(mask)
    return {"mask": rle}


@st.composite
def _prompt(draw, task: str, frame: int, limits: PromptLimits, masks_left: list[int]) -> dict:
    if task == "point":
        body = {"points": [[draw(_coordinate(W)), draw(_coordinate(H))]]}
        if draw(st.booleans()):
            body["labels"] = [1]
    elif task == "box":
        body = {"box": draw(_box())}
    else:
        kinds = ["clicks", "box", "box+clicks"] + (["mask"] if masks_left[0] > 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "mask":
            masks_left[0] -= 1
            body = draw(_mask())
        else:
            body = draw(_clicks(limits)) if "clicks" in kind else {}
            if "box" in kind:
                body["box"] = draw(_box())
    return {"frame": frame, **body}


@st.composite
def valid_documents(draw, limits: PromptLimits = SMALL_LIMITS) -> dict:
    count = draw(st.integers(min_value=1, max_value=limits.max_objects))
    ids = draw(st.lists(st.integers(1, MAX_OBJECT_ID), min_size=count, max_size=count, unique=True))
    masks_left = [limits.max_mask_pixels // (H * W)]
    objects = []
    for obj_id in ids:
        task = draw(st.sampled_from(TASKS))
        frames = draw(st.lists(st.integers(0, VIDEO.num_frames - 1), min_size=1,
                               max_size=limits.max_prompts_per_object, unique=True))
        prompts = [draw(_prompt(task, frame, limits, masks_left)) for frame in frames]
        objects.append({"id": obj_id, "task": task, "prompts": prompts})
    return {"objects": objects}


# --------------------------------------------------------------------------- the checks


def assert_valid(objects: list[ObjectPrompts], video: VideoInfo | None, limits: PromptLimits) -> None:
    """What every successful parse promises."""
    assert isinstance(objects, list) and 1 <= len(objects) <= limits.max_objects
    ids = [obj.obj_id for obj in objects]
    assert len(set(ids)) == len(ids)
    width, height = (video.width, video.height) if video else (MAX_COORDINATE, MAX_COORDINATE)
    mask_pixels = 0
    for obj in objects:
        assert type(obj.obj_id) is int and 1 <= obj.obj_id <= MAX_OBJECT_ID
        assert obj.task in TASKS
        assert 1 <= len(obj.prompts) <= limits.max_prompts_per_object
        frames = [prompt.frame for prompt in obj.prompts]
        assert len(set(frames)) == len(frames)
        for prompt in obj.prompts:
            last_frame = video.num_frames - 1 if video else MAX_FRAME_INDEX
            assert type(prompt.frame) is int and 0 <= prompt.frame <= last_frame
            _assert_valid_kinds(prompt, obj.task)
            if prompt.points is not None:
                _assert_valid_points(prompt, width, height, limits)
            if prompt.box is not None:
                box = prompt.box
                assert box.dtype == np.float32 and box.shape == (4,) and np.isfinite(box).all()
                assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
            if prompt.mask is not None:
                assert prompt.mask.dtype == bool and prompt.mask.any()
                if video:
                    assert prompt.mask.shape == (H, W)
                mask_pixels += prompt.mask.size
    assert mask_pixels <= limits.max_mask_pixels


def _assert_valid_kinds(prompt, task: str) -> None:
    kinds = {name for name in ("points", "box", "mask") if getattr(prompt, name) is not None}
    assert kinds and ("mask" not in kinds or kinds == {"mask"})
    if task == "box":
        assert kinds == {"box"}
    if task == "point":
        assert kinds == {"points"} and prompt.points.shape == (1, 2) and prompt.labels.tolist() == [1]


def _assert_valid_points(prompt, width: float, height: float, limits: PromptLimits) -> None:
    points, labels = prompt.points, prompt.labels
    assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 2
    assert 1 <= len(points) <= limits.max_points_per_prompt and np.isfinite(points).all()
    assert (points >= 0).all() and (points[:, 0] <= width).all() and (points[:, 1] <= height).all()
    assert labels.dtype == np.int32 and labels.shape == (len(points),) and set(labels.tolist()) <= {0, 1}


def parses_or_refuses(data, video: VideoInfo | None, limits: PromptLimits) -> list[ObjectPrompts] | None:
    """The parsed prompts (checked valid), or None when PromptError refused them; any other exception fails."""
    try:
        objects = parse_prompts(data, video, limits)
    except PromptError as error:
        assert str(error)
        return None
    assert_valid(objects, video, limits)
    return objects


_videos = st.sampled_from([VIDEO, None])
_limits = st.sampled_from([SMALL_LIMITS, PromptLimits()])


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(value=json_values, video=_videos, limits=_limits)
def test_any_json_value_parses_or_raises_prompt_error(value, video, limits):
    parses_or_refuses(value, video, limits)
    parses_or_refuses(json.dumps(value), video, limits)


@PROPERTY_SETTINGS
@given(document=valid_documents(), video=_videos)
def test_valid_documents_parse_and_round_trip(document, video):
    objects = parses_or_refuses(json.dumps(document), video, SMALL_LIMITS)
    assert objects is not None, "a valid document was refused"
    again = parse_prompts(prompts_to_json(objects), video, SMALL_LIMITS)
    assert prompts_to_json(again) == prompts_to_json(objects)


def _node_paths(node, prefix=()):
    yield prefix
    if len(prefix) > 8 or (prefix and prefix[-1] == "counts"):
        return  # deep nesting and the run lengths of a mask would outnumber every other place to edit
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _node_paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _node_paths(child, prefix + (index,))


# Numbers at the edge of what a number field takes: past float or str() range, float32 underflow, NaN.
_nasty_numbers = st.sampled_from([
    10**400, -(10**400), 10**5000, 2**31, 2**63, -1, 1e308, 1e-50, -1e-300, float("nan"), float("inf"),
    -0.6, W + 0.6, H + 0.6, 0, True, "3",
])


def _mutate_document(data, document: dict) -> dict:
    document = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="edits")):
        paths = [path for path in _node_paths(document) if path]
        if not paths:
            break  # everything was deleted: the empty document is itself a case
        numbers = [path for path in paths if isinstance(_value_at(document, path), (int, float))]
        action = data.draw(st.sampled_from(["number", "replace", "delete", "add key", "duplicate"]), label="action")
        if action == "number" and numbers:
            _set_at(document, data.draw(st.sampled_from(numbers), label="path"), data.draw(_nasty_numbers))
            continue
        path = data.draw(st.sampled_from(paths), label="path")
        parent, key = _value_at(document, path[:-1]), path[-1]
        target = parent[key]
        if action == "delete":
            del parent[key]
        elif action == "add key" and isinstance(target, dict):
            target[data.draw(st.sampled_from(KEYS + ("path", "file")), label="key")] = data.draw(_replacements)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(target))
        else:
            parent[key] = data.draw(_replacements, label="value")
    return document


def _value_at(document, path):
    node = document
    for key in path:
        node = node[key]
    return node


def _set_at(document, path, value) -> None:
    _value_at(document, path[:-1])[path[-1]] = value


@PROPERTY_SETTINGS
@given(data=st.data(), document=valid_documents(), video=_videos)
def test_mutated_valid_documents_parse_or_raise_prompt_error(data, document, video):
    mutated = _mutate_document(data, document)
    parses_or_refuses(mutated, video, SMALL_LIMITS)
    try:
        text = json.dumps(mutated)
    except ValueError:  # an integer with more digits than str() converts: no JSON text to test
        return
    parses_or_refuses(text, video, SMALL_LIMITS)


@PROPERTY_SETTINGS
@given(data=st.data(), document=valid_documents(limits=PromptLimits(max_objects=2, max_prompts_per_object=2,
                                                                    max_points_per_prompt=3)))
def test_mutated_json_text_parses_or_raises_prompt_error(data, document):
    text = json.dumps(document)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="edits")):
        at = data.draw(st.integers(min_value=0, max_value=len(text)), label="at")
        piece = data.draw(st.one_of(st.text(alphabet='{}[]",:.-+eE0123456789 tnrufals\\', max_size=4),
                                    st.text(max_size=3)), label="piece")
        cut = data.draw(st.integers(min_value=0, max_value=4), label="cut")
        text = text[:at] + piece + text[at + cut :]
    parses_or_refuses(text, VIDEO, PromptLimits())
    parses_or_refuses(text.encode("utf-8", errors="surrogatepass"), VIDEO, PromptLimits())


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_prompt_error(data):
    parses_or_refuses(data, VIDEO, PromptLimits())
