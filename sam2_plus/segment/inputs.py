"""What a still-image job reads: the image (or one frame of a video), and its options.

    image = read_image("photo.jpg")               # PNG, JPEG or WebP: EXIF orientation applied, alpha on black
    frame = read_frame("clip.mp4", 12)             # any source the tracker takes; frame 0 of an image
    options = parse_segment_options('{"model": "sam2++", "choices": {"1": 2}}')
    find = parse_find_options('{"density": "fine", "max_proposals": 20}')

Images are decoded by the video path's reader (sam2_plus/media/decode.py), so a still image and a one-frame
video are the same pixels: the same orientation, the same black behind transparent pixels, the same
MAX_FRAME_PIXELS. Options are checked once here; every error is an OptionsError that names the option.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import CONFIG_FILES, canonical_model_name
from ..effects.settings import EffectError, EffectSettings, parse_effects
from ..errors import OptionsError
from ..media.decode import FrameSource, MediaError, VideoInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_MODEL = "sam2++"
MAX_OPTIONS_CHARACTERS = 64 * 1024
# density -> points per side of the automatic generator's grid (SAM 2's default is 32, "fine")
DENSITIES = {"coarse": 8, "normal": 16, "fine": 32}
SORT_KEYS = ("area", "score")  # proposals largest first, or by predicted IoU (highest first)
MAX_POINTS_PER_SIDE = 64
MAX_CROP_LAYERS = 2
MAX_PROPOSALS = 1000


@dataclass(frozen=True, eq=False)
class StillImage:
    """One RGB image to segment: a still image, or a frame of a video."""

    pixels: np.ndarray  # HxWx3 uint8, read-only
    name: str  # the file's name (messages, the results' "image")
    frame: int = 0  # the frame of the source it came from

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def info(self) -> VideoInfo:
        """The image as a one-frame video: what the prompts JSON is checked against."""
        return VideoInfo("image", 1, 1.0, self.width, self.height, 1.0, path=self.name)

    @classmethod
    def of(cls, pixels: np.ndarray, name: str = "image", frame: int = 0) -> "StillImage":
        """An HxWx3 uint8 array (a copy is not made; the array must not change afterwards)."""
        array = np.asarray(pixels)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
            raise MediaError(f"{name}: an image must be HxWx3 uint8 RGB, got {array.dtype} of shape {array.shape}")
        return cls(array, name, frame)


def read_image(path: str | os.PathLike) -> StillImage:
    """A PNG, JPEG or WebP file; MediaError says why it cannot be used (missing, empty, corrupt, too large,
    another kind of file)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise MediaError(f"{path.name}: not a still image this reads; give a PNG, JPEG or WebP file")
    return read_frame(path, 0)


def read_frame(path: str | os.PathLike, frame: int = 0) -> StillImage:
    """Frame `frame` of a video, frame folder or image (an image has only frame 0); MediaError when the source
    cannot be used or has no such frame."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path.name}: no such file")
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
        raise MediaError(f"the frame must be an integer from 0, got {frame!r}")
    with FrameSource(path, max_cached_frames=2) as source:
        count = len(source)
        if frame >= count:
            if source.info.kind == "image":
                raise MediaError(f"{path.name}: frame {frame} is out of range; an image has one frame: use frame 0")
            raise MediaError(f"{path.name}: frame {frame} is out of range; the video has {count} frames "
                             f"(0..{count - 1})")
        return StillImage(source[int(frame)], path.name, int(frame))


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class SegmentOptions:
    """How `segment_image` runs: the model, whether a lone click gives three candidates, which candidate to keep
    per object (default: the highest predicted IoU), and effects for the cut-outs."""

    model: str = DEFAULT_MODEL
    multimask: bool = True
    choices: tuple[tuple[int, int], ...] = ()  # (object id, candidate index), in the order given
    effects: Optional[EffectSettings] = None

    def choice_for(self, obj_id: int) -> Optional[int]:
        return dict(self.choices).get(obj_id)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"model": self.model, "multimask": self.multimask}
        if self.choices:
            document["choices"] = {str(obj_id): index for obj_id, index in self.choices}
        if self.effects is not None:
            document["effects"] = self.effects.to_json()
        return document


@dataclass(frozen=True)
class FindOptions:
    """How `find_objects` runs: the automatic generator's grid and filters, then the proposals' order and cap."""

    model: str = DEFAULT_MODEL
    density: str = "normal"
    points_per_side: Optional[int] = None  # overrides the density's
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    min_mask_region_area: int = 0
    max_proposals: int = 64
    sort: str = "area"

    @property
    def grid(self) -> int:
        """The points per side of the generator's grid."""
        return self.points_per_side or DENSITIES[self.density]

    def generator_settings(self) -> dict[str, Any]:
        """The automatic mask generator's keyword arguments (output as COCO RLE)."""
        return {"points_per_side": self.grid, "pred_iou_thresh": self.pred_iou_thresh,
                "stability_score_thresh": self.stability_score_thresh, "box_nms_thresh": self.box_nms_thresh,
                "crop_n_layers": self.crop_n_layers, "min_mask_region_area": self.min_mask_region_area,
                "output_mode": "coco_rle"}

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def parse_segment_options(options: str | Mapping[str, Any] | SegmentOptions | None) -> SegmentOptions:
    """The options JSON of a still image (text or dict; empty: the defaults), e.g.
    {"model": "sam2++", "multimask": true, "choices": {"1": 2}, "effects": {"feather": 2}}."""
    if isinstance(options, SegmentOptions):
        return options
    document = _document(options, SegmentOptions)
    effects = None
    if document.get("effects") is not None:
        try:
            effects = parse_effects(document["effects"])
        except EffectError as e:
            raise OptionsError(f"invalid options: {e}") from None
    return SegmentOptions(_model(document), _flag(document, "multimask", True), _choices(document.get("choices", {})),
                          effects)


def parse_find_options(options: str | Mapping[str, Any] | FindOptions | None) -> FindOptions:
    """The options JSON of Find objects (text or dict; empty: the defaults), e.g.
    {"density": "fine", "pred_iou_thresh": 0.7, "max_proposals": 20, "sort": "score"}."""
    if isinstance(options, FindOptions):
        return options
    document = _document(options, FindOptions)
    defaults = FindOptions()
    density = document.get("density", defaults.density)
    if density not in DENSITIES:
        raise OptionsError(f"invalid options: 'density' must be one of {', '.join(DENSITIES)}, got {density!r}")
    sort = document.get("sort", defaults.sort)
    if sort not in SORT_KEYS:
        raise OptionsError(f"invalid options: 'sort' must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    per_side = document.get("points_per_side")
    return FindOptions(
        model=_model(document), density=density,
        points_per_side=None if per_side is None else _integer(document, "points_per_side", 1, MAX_POINTS_PER_SIDE),
        pred_iou_thresh=_fraction(document, "pred_iou_thresh", defaults.pred_iou_thresh),
        stability_score_thresh=_fraction(document, "stability_score_thresh", defaults.stability_score_thresh),
        box_nms_thresh=_fraction(document, "box_nms_thresh", defaults.box_nms_thresh),
        crop_n_layers=_integer(document, "crop_n_layers", 0, MAX_CROP_LAYERS, defaults.crop_n_layers),
        min_mask_region_area=_integer(document, "min_mask_region_area", 0, 2**31 - 1,
                                      defaults.min_mask_region_area),
        max_proposals=_integer(document, "max_proposals", 1, MAX_PROPOSALS, defaults.max_proposals),
        sort=sort,
    )


def _document(options: Any, kind: type) -> Mapping[str, Any]:
    """The options as a dict with only `kind`'s keys."""
    if options is None or (isinstance(options, str) and not options.strip()):
        return {}
    if isinstance(options, str):
        if len(options) > MAX_OPTIONS_CHARACTERS:
            raise OptionsError(f"invalid options: the JSON is {len(options)} characters; at most "
                               f"{MAX_OPTIONS_CHARACTERS} are allowed")
        try:
            options = json.loads(options)
        except json.JSONDecodeError as e:
            raise OptionsError(f"invalid options: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
                               ) from None
        except (RecursionError, ValueError):
            raise OptionsError("invalid options: the JSON is nested too deeply or holds a number too long") from None
    if not isinstance(options, Mapping):
        raise OptionsError(f"invalid options: give a JSON object, e.g. {json.dumps(kind().to_json())}")
    allowed = [f.name for f in fields(kind)]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise OptionsError(f"invalid options: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                           f"{', '.join(allowed)}")
    return options


def _model(document: Mapping[str, Any]) -> str:
    model = document.get("model", DEFAULT_MODEL)
    name = None
    try:
        if isinstance(model, str):
            name = canonical_model_name(model)
    except ValueError:
        pass
    if name is not None:
        return name
    raise OptionsError(f"invalid options: unknown model {model!r}; choose one of {', '.join(CONFIG_FILES)}")


def _flag(document: Mapping[str, Any], name: str, default: bool) -> bool:
    value = document.get(name, default)
    if not isinstance(value, bool):
        raise OptionsError(f"invalid options: {name!r} must be true or false, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(document: Mapping[str, Any], name: str, low: int, high: int, default: int = 0) -> int:
    value = document.get(name, default)
    if not _is_int(value) or not low <= value <= high:
        raise OptionsError(f"invalid options: {name!r} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def _fraction(document: Mapping[str, Any], name: str, default: float) -> float:
    value = document.get(name, default)
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not 0.0 <= value <= 1.0:
        raise OptionsError(f"invalid options: {name!r} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _choices(value: Any) -> tuple[tuple[int, int], ...]:
    """{"object id": candidate index} -> ((id, index), ...); the indices are checked against the candidates
    once they exist (`segment_image`)."""
    if not isinstance(value, Mapping):
        raise OptionsError('invalid options: \'choices\' must map object ids to candidate indices, e.g. {"1": 2}')
    choices = []
    for key, index in value.items():
        try:
            obj_id = int(key)
        except (TypeError, ValueError):
            raise OptionsError(f"invalid options: choices: the key {key!r} is not an object id") from None
        if not _is_int(index) or index < 0:
            raise OptionsError(f"invalid options: choices[{key!r}] must be a candidate index (0, 1 or 2), "
                               f"got {index!r}")
        choices.append((obj_id, int(index)))
    return tuple(choices)
