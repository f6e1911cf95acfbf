"""Parse and validate the prompts JSON shared by the CLI and the app API.

The format (fixed; extend, don't reshape)::

    {"objects": [
      {"id": 1, "task": "mask",  "prompts": [{"frame": 0, "points": [[x, y], [x, y]], "labels": [1, 0]},
                                            {"frame": 7, "mask": {"size": [H, W], "counts": "<COCO RLE>"}}]},
      {"id": 2, "task": "box",   "prompts": [{"frame": 0, "box": [x1, y1, x2, y2]}]},
      {"id": 3, "task": "point", "prompts": [{"frame": 0, "points": [[x, y]]}]}]}

Rules:

* Coordinates are pixels of the source video (after rotation), x right and y
  down; the frame spans ``[0, W] x [0, H]``. A coordinate up to half a pixel
  outside is moved onto the edge; anything further out is rejected, never
  clamped.
* ``labels`` are 1 (positive) or 0 (negative) and default to all 1.
* A prompt holds points (with labels), a box, points and a box together, or a
  mask (alone). Box corners given in the wrong order are swapped; a box with
  zero width or height is rejected.
* ``task`` is ``mask`` (any prompt kind), ``box`` (exactly a box) or ``point``
  (exactly one positive point): the table of ``prompt_rules.TASK_RULES``.
* ``mask`` is COCO RLE, compressed string or uncompressed list of counts; its
  size must equal the video's ``[H, W]``, and it must not be empty.
* Object ids are unique positive integers; one object may prompt a frame only
  once. Unknown keys are rejected. Nothing in the JSON is treated as a path.
* Without a video, coordinates must lie in ``[0, MAX_COORDINATE]`` and a mask
  may have at most ``MAX_FRAME_PIXELS`` pixels (no video is larger).
* ``PromptLimits`` bounds the number of objects, prompts and points, the JSON
  size, and the pixels of all masks together (they are decoded to memory).

Errors raise ``PromptError`` naming the object and prompt and what is wrong.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .config import TASKS
from .media.decode import MAX_FRAME_PIXELS, VideoInfo
from .media.rle import RLEError, decode_rle, rle_size
from .prompt_rules import FramePrompt, Misfit, misfit

EDGE_SLACK = 0.5  # pixels outside the frame that are still accepted (and moved onto the edge)
MAX_OBJECT_ID = 2**31 - 1
MAX_FRAME_INDEX = 2**31 - 1
MAX_COORDINATE = float(2**24)  # pixels, checked when there is no video; integers up to it are exact in float32

_TOP_LEVEL_KEYS = ("objects",)
_OBJECT_KEYS = ("id", "task", "prompts")
_PROMPT_KEYS = ("frame", "points", "labels", "box", "mask")
_MASK_KEYS = ("size", "counts")


class PromptError(ValueError):
    """The prompts are malformed or do not fit the video."""


@dataclass(frozen=True)
class PromptLimits:
    max_objects: int = 32
    max_prompts_per_object: int = 64
    max_points_per_prompt: int = 64
    max_json_bytes: int = 32 * 1024 * 1024
    max_mask_pixels: int = 256 * 1024 * 1024  # all mask prompts together (one byte each once decoded)


@dataclass(frozen=True, eq=False)
class ObjectPrompts:
    obj_id: int
    task: str
    prompts: tuple[FramePrompt, ...]


def parse_prompts(
    data: str | bytes | Mapping[str, Any],
    video: VideoInfo | None = None,
    limits: PromptLimits = PromptLimits(),
    allow_empty: bool = False,
) -> list[ObjectPrompts]:
    """Parse prompts (JSON text or an already-decoded dict) and validate them against ``video``.
    ``allow_empty``: no objects is fine (a job that finds its objects).

    Without ``video``, only the structure is checked (frame ranges, coordinate
    bounds and mask size need the video).
    """
    document = _load(data, limits)
    _check_keys(document, _TOP_LEVEL_KEYS, "the prompts")
    if "objects" not in document:
        raise PromptError("the prompts need an 'objects' list")
    objects = document["objects"]
    if not isinstance(objects, list):
        raise PromptError(f"'objects' must be a list, got {_type_name(objects)}")
    if not objects and not allow_empty:
        raise PromptError("'objects' is empty: give at least one object to track")
    if len(objects) > limits.max_objects:
        raise PromptError(f"{len(objects)} objects given; at most {limits.max_objects} are allowed")
    context = _Context(video, limits, limits.max_mask_pixels)
    parsed: list[ObjectPrompts] = []
    seen_ids: dict[int, int] = {}
    for position, item in enumerate(objects):
        obj = _parse_object(item, position, context)
        if obj.obj_id in seen_ids:
            raise PromptError(
                f"objects[{position}]: id {obj.obj_id} is already used by objects[{seen_ids[obj.obj_id]}]"
            )
        seen_ids[obj.obj_id] = position
        parsed.append(obj)
    return parsed


def prompts_to_json(objects: Sequence[ObjectPrompts]) -> dict[str, Any]:
    """The JSON-ready dict for parsed prompts (masks become compressed COCO RLE)."""
    return {"objects": [{"id": obj.obj_id, "task": obj.task, "prompts": [p.to_json() for p in obj.prompts]}
                        for obj in objects]}


# --------------------------------------------------------------------------- internals


@dataclass
class _Context:
    video: VideoInfo | None
    limits: PromptLimits
    mask_pixels_left: int

    def take_mask_pixels(self, pixels: int, where: str) -> None:
        if pixels > self.mask_pixels_left:
            raise PromptError(f"{where}: the mask prompts have more than {self.limits.max_mask_pixels} pixels "
                              "in total, the most allowed; give fewer masks")
        self.mask_pixels_left -= pixels


def _load(data: str | bytes | Mapping[str, Any], limits: PromptLimits) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    if isinstance(data, (bytes, bytearray)):
        if len(data) > limits.max_json_bytes:
            raise PromptError(f"the prompts JSON is {len(data)} bytes; at most {limits.max_json_bytes} are allowed")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise PromptError(f"the prompts JSON is not UTF-8 text ({error.reason})") from error
    if not isinstance(data, str):
        raise PromptError(f"prompts must be JSON text or a dict, got {_type_name(data)}")
    if len(data) > limits.max_json_bytes:
        raise PromptError(f"the prompts JSON is {len(data)} characters; at most {limits.max_json_bytes} are allowed")
    if not data.lstrip().startswith("{"):
        raise PromptError("the prompts must be a JSON object starting with '{' (pass the JSON text, not a file path)")
    try:
        document = json.loads(data, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except PromptError:
        raise
    except json.JSONDecodeError as error:
        message = f"the prompts are not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        raise PromptError(message) from None
    except RecursionError:
        raise PromptError("the prompts JSON is nested too deeply to be prompts") from None
    except ValueError:  # an integer with more digits than Python converts (its message names Python internals)
        raise PromptError(f"the prompts JSON holds a number with too many digits ({TOO_MANY_DIGITS})") from None
    return document


TOO_MANY_DIGITS = "no valid number has thousands of digits"


def _reject_constant(name: str) -> Any:
    raise PromptError(f"the prompts JSON contains {name}, which is not a valid number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PromptError(f"the key '{key}' appears twice in one JSON object")
        result[key] = value
    return result


def _check_keys(item: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [key for key in item if key not in allowed]
    if unknown:
        names = ", ".join(_shown(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise PromptError(f"{where}: unknown key(s) {names} (allowed: {', '.join(allowed)})")


def _parse_object(item: Any, position: int, context: _Context) -> ObjectPrompts:
    where = f"objects[{position}]"
    if not isinstance(item, Mapping):
        raise PromptError(f"{where}: must be an object with id, task and prompts, got {_type_name(item)}")
    _check_keys(item, _OBJECT_KEYS, where)
    for key in _OBJECT_KEYS:
        if key not in item:
            raise PromptError(f"{where}: missing '{key}'")
    obj_id = item["id"]
    if not _is_int(obj_id) or not 1 <= obj_id <= MAX_OBJECT_ID:
        raise PromptError(f"{where}: 'id' must be an integer from 1 to {MAX_OBJECT_ID}, got {_shown(obj_id)}")
    where = f"objects[{position}] (id {obj_id})"
    task = item["task"]
    if task not in TASKS:
        raise PromptError(f"{where}: 'task' must be one of {', '.join(TASKS)}, got {_shown(task)}")
    prompts = item["prompts"]
    if not isinstance(prompts, list):
        raise PromptError(f"{where}: 'prompts' must be a list, got {_type_name(prompts)}")
    if not prompts:
        raise PromptError(f"{where}: 'prompts' is empty: give at least one prompt")
    most = context.limits.max_prompts_per_object
    if len(prompts) > most:
        raise PromptError(f"{where}: {len(prompts)} prompts given; at most {most} are allowed")
    parsed = []
    frames_seen: dict[int, int] = {}
    for index, prompt in enumerate(prompts):
        frame_prompt = _parse_prompt(prompt, f"{where}, prompts[{index}]", task, context)
        if frame_prompt.frame in frames_seen:
            raise PromptError(
                f"{where}, prompts[{index}]: frame {frame_prompt.frame} is already prompted by "
                f"prompts[{frames_seen[frame_prompt.frame]}]; put all clicks for a frame in one prompt"
            )
        frames_seen[frame_prompt.frame] = index
        parsed.append(frame_prompt)
    return ObjectPrompts(int(obj_id), task, tuple(parsed))


def _parse_prompt(item: Any, where: str, task: str, context: _Context) -> FramePrompt:
    if not isinstance(item, Mapping):
        raise PromptError(f"{where}: must be an object with 'frame' and points, box or mask, got {_type_name(item)}")
    _check_keys(item, _PROMPT_KEYS, where)
    if "frame" not in item:
        raise PromptError(f"{where}: missing 'frame'")
    frame = item["frame"]
    if not _is_int(frame) or not 0 <= frame <= MAX_FRAME_INDEX:
        raise PromptError(f"{where}: 'frame' must be an integer from 0 to {MAX_FRAME_INDEX}, got {_shown(frame)}")
    video = context.video
    if video is not None and frame >= video.num_frames:
        count = video.num_frames
        if video.kind == "image":
            raise PromptError(f"{where}: frame {frame} is out of range; an image has one frame: use frame 0")
        raise PromptError(f"{where}: frame {frame} is out of range; the video has {count} frames (0..{count - 1})")

    kinds = {kind for kind, key in _KIND_KEYS if key in item}
    if "labels" in item and "clicks" not in kinds:
        raise PromptError(f"{where}: 'labels' given without 'points'")
    if not kinds:
        raise PromptError(f"{where}: needs 'points', 'box' or 'mask'")
    _check_fit(misfit(task, kinds), where)

    points = labels = box = mask = None
    if "clicks" in kinds:
        points = _parse_points(item["points"], where, video, context.limits)
        labels = _parse_labels(item.get("labels"), len(points), where)
        _check_fit(misfit(task, kinds, labels), where)
    if "box" in kinds:
        box = _parse_box(item["box"], where, video)
    if "mask" in kinds:
        mask = _parse_mask(item["mask"], where, context)
    return FramePrompt(int(frame), points, labels, box, mask)


_KIND_KEYS = (("clicks", "points"), ("box", "box"), ("mask", "mask"))  # prompt_rules' kinds: the JSON's keys


def _check_fit(problem: Optional[Misfit], where: str) -> None:
    """A prompt that does not fit its task (prompt_rules.TASK_RULES), said in the JSON's words."""
    if problem is None:
        return
    if problem.what == "combined":
        raise PromptError(f"{where}: a 'mask' prompt cannot be combined with points or a box")
    if problem.task == "box":
        raise PromptError(f"{where}: task 'box' takes exactly a 'box' (no points or mask)")
    if problem.what in ("points", "negative"):
        detail = f"{problem.count} points" if problem.what == "points" else "a negative point"
        raise PromptError(f"{where}: task 'point' takes exactly one positive point, got {detail}")
    raise PromptError(f"{where}: task 'point' takes exactly one positive point (no box or mask)")


def _parse_points(value: Any, where: str, video: VideoInfo | None, limits: PromptLimits) -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise PromptError(f"{where}: 'points' must be a non-empty list of [x, y] pairs, got {_shown(value)}")
    if len(value) > limits.max_points_per_prompt:
        raise PromptError(f"{where}: {len(value)} points given; at most {limits.max_points_per_prompt} are allowed")
    points = np.empty((len(value), 2), dtype=np.float32)
    for index, point in enumerate(value):
        if not (isinstance(point, list) and len(point) == 2 and all(_is_number(v) for v in point)):
            raise PromptError(f"{where}: points[{index}] must be [x, y] with two finite numbers, got {_shown(point)}")
        x = _in_frame(point[0], "x", video.width if video else None, f"{where}: points[{index}]")
        y = _in_frame(point[1], "y", video.height if video else None, f"{where}: points[{index}]")
        points[index] = (x, y)
    return points


def _parse_labels(value: Any, count: int, where: str) -> np.ndarray:
    if value is None:
        return np.ones(count, dtype=np.int32)
    if not isinstance(value, list):
        raise PromptError(f"{where}: 'labels' must be a list of 0/1, got {_shown(value)}")
    if len(value) != count:
        raise PromptError(f"{where}: {len(value)} labels for {count} points; give one label per point")
    for index, label in enumerate(value):
        if not _is_int(label) or label not in (0, 1):
            raise PromptError(f"{where}: labels[{index}] must be 1 (positive) or 0 (negative), got {_shown(label)}")
    return np.asarray(value, dtype=np.int32)


def _parse_box(value: Any, where: str, video: VideoInfo | None) -> np.ndarray:
    if not (isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)):
        raise PromptError(f"{where}: 'box' must be [x1, y1, x2, y2] with four finite numbers, got {_shown(value)}")
    width = video.width if video else None
    height = video.height if video else None
    x1, x2 = sorted(_in_frame(value[i], name, width, f"{where}: box") for i, name in ((0, "x1"), (2, "x2")))
    y1, y2 = sorted(_in_frame(value[i], name, height, f"{where}: box") for i, name in ((1, "y1"), (3, "y2")))
    box = np.array([x1, y1, x2, y2], dtype=np.float32)  # compared as stored: float32 may merge close corners
    if box[0] == box[2] or box[1] == box[3]:
        raise PromptError(f"{where}: 'box' {_shown(value)} has zero width or height")
    return box


def _parse_mask(value: Any, where: str, context: _Context) -> np.ndarray:
    if not isinstance(value, Mapping):
        raise PromptError(f"{where}: 'mask' must be a COCO RLE object {{'size': [H, W], 'counts': ...}}")
    _check_keys(value, _MASK_KEYS, f"{where}: mask")
    for key in _MASK_KEYS:
        if key not in value:
            raise PromptError(f"{where}: mask is missing '{key}'")
    _check_mask_size(value["size"], where, context.video)
    height, width = value["size"]
    context.take_mask_pixels(height * width, where)
    try:
        mask = decode_rle(value)
    except RLEError as error:
        raise PromptError(f"{where}: mask is not valid COCO RLE: {error}") from error
    if not mask.any():
        raise PromptError(f"{where}: mask is empty (no foreground pixels)")
    return mask


def _check_mask_size(size: Any, where: str, video: VideoInfo | None) -> None:
    if video is not None:
        if not isinstance(size, list) or size != [video.height, video.width] or not all(_is_int(v) for v in size):
            raise PromptError(f"{where}: mask size {_shown(size)} does not match the video; "
                              f"expected [H, W] = [{video.height}, {video.width}]")
        return
    try:
        height, width = rle_size({"size": size})
    except RLEError as error:
        raise PromptError(f"{where}: mask is not valid COCO RLE: {error}") from error
    if not isinstance(size, list) or height * width > MAX_FRAME_PIXELS:
        raise PromptError(f"{where}: mask size {_shown(size)} must be a list [H, W] of at most "
                          f"{MAX_FRAME_PIXELS} pixels")


def _in_frame(value: float, name: str, limit: int | None, where: str) -> float:
    value = float(value)
    if limit is None:
        if not -EDGE_SLACK <= value <= MAX_COORDINATE:
            raise PromptError(f"{where}: {name}={value:g} is outside any frame (allowed 0 to {MAX_COORDINATE:g})")
        return min(max(value, 0.0), MAX_COORDINATE)
    if value < -EDGE_SLACK or value > limit + EDGE_SLACK:
        axis = "width" if name.startswith("x") else "height"
        raise PromptError(f"{where}: {name}={value:g} is outside the frame ({axis} {limit}: allowed 0 to {limit})")
    return min(max(value, 0.0), float(limit))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40


def _shown(value: Any) -> str:
    """A short repr for messages: prompts can hold huge strings, numbers or nesting."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit for str()
        return "a value too large to show"


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)
