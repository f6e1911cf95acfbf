"""What to do to each object and to the background: the ``effects`` object of the options JSON, checked once.

    {"objects": {"1": "blur", "2": {"effect": "fill", "color": "#000000"}, "3": {"effect": "pixelate", "block": 24}},
     "background": "erase", "feather": 2, "point_radius": 20, "cutout": ["webm", "png"]}

- ``objects``: object id -> an effect name or ``{"effect": name, parameter: value, ...}``. These are the
  *chosen* objects; when there are none listed, every tracked object is chosen, with no effect of its own.
- ``background``: what happens to every pixel outside the chosen objects.
- ``feather``: soft mask edges, the standard deviation in pixels of a Gaussian over the mask (0: hard edges).
- ``point_radius``: the disc that stands for a point-task object (default: 5 % of the frame's shorter side).
- ``cutout``: the cut-outs written where a job names its files itself (the app, ``--out-dir``) when the
  background is erased: ``webm`` (VP9 with alpha), ``mov`` (ProRes 4444), ``png`` (an RGBA PNG sequence in
  the results ZIP). Default webm and png: ProRes 4444 is about 1 MB a 1280x720 frame and slow to encode.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

from ..media.render import Color, hex_color

OBJECT_EFFECTS = ("none", "blur", "pixelate", "fill", "outline")
BACKGROUND_EFFECTS = ("none", "blur", "grayscale", "fill", "erase", "spotlight")
CUTOUT_FORMATS = ("webm", "mov", "png")
DEFAULT_CUTOUT = ("webm", "png")
PARAMETERS = {  # the parameters each effect takes
    "none": (), "blur": ("strength",), "pixelate": ("block",), "fill": ("color",), "outline": ("color", "thickness"),
    "grayscale": (), "erase": (), "spotlight": ("dim",),
}
# (low, high, integer) of each numeric parameter and setting
RANGES = {"strength": (0.5, 100.0, False), "block": (2, 256, True), "thickness": (1, 64, True),
           "dim": (0.0, 1.0, False), "feather": (0.0, 50.0, False), "point_radius": (1, 2048, True)}
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
COLOR_FORMAT = 'a colour as "#rrggbb" (e.g. "#00ff00") or [r, g, b] with values 0-255'


class EffectError(ValueError):
    """An effects setting that cannot be used; the message says where and what is expected."""


@dataclass(frozen=True)
class Effect:
    name: str = "none"
    strength: float = 12.0  # blur: the Gaussian's standard deviation in pixels
    block: int = 16  # pixelate: the side of a block in pixels (blocks are on a grid fixed to the frame)
    color: Optional[Color] = None  # fill: default black; outline: default the object's colour
    thickness: int = 3  # outline: pixels
    dim: float = 0.3  # spotlight: the brightness kept outside the chosen objects (0 black, 1 unchanged)

    @property
    def is_none(self) -> bool:
        return self.name == "none"

    def to_json(self) -> str | dict[str, Any]:
        changed = {name: getattr(self, name) for name in PARAMETERS[self.name]
                   if getattr(self, name) != getattr(Effect(), name)}
        if not changed:
            return self.name
        if changed.get("color") is not None:
            changed["color"] = hex_color(changed["color"])
        return {"effect": self.name, **changed}


@dataclass(frozen=True)
class EffectSettings:
    objects: tuple[tuple[int, Effect], ...] = ()  # (object id, its effect), in the order given
    background: Effect = Effect()
    feather: float = 0.0
    point_radius: Optional[int] = None
    cutout: tuple[str, ...] = DEFAULT_CUTOUT

    @property
    def erases_background(self) -> bool:
        """The background is transparent: the job writes cut-outs."""
        return self.background.name == "erase"

    def chosen(self, obj_ids: Iterable[int]) -> tuple[int, ...]:
        """The chosen objects among `obj_ids` (the listed ones, or all when none is listed)."""
        obj_ids = tuple(obj_ids)
        if not self.objects:
            return obj_ids
        return tuple(obj_id for obj_id, _ in self.objects if obj_id in obj_ids)

    def effect_for(self, obj_id: int) -> Effect:
        return dict(self.objects).get(obj_id, Effect())

    def check_objects(self, obj_ids: Iterable[int]) -> None:
        """EffectError when an effect names an object that the prompts do not have."""
        known = sorted(set(obj_ids))
        for obj_id, _ in self.objects:
            if obj_id not in known:
                raise EffectError(f"effects.objects names object {obj_id}, which the prompts do not have "
                                  f"(their objects: {', '.join(map(str, known))})")

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.objects:
            document["objects"] = {str(obj_id): effect.to_json() for obj_id, effect in self.objects}
        if not self.background.is_none:
            document["background"] = self.background.to_json()
        if self.feather:
            document["feather"] = self.feather
        if self.point_radius is not None:
            document["point_radius"] = self.point_radius
        if self.cutout != DEFAULT_CUTOUT:
            document["cutout"] = list(self.cutout)
        return document


# --------------------------------------------------------------------------- parsing


def parse_effects(value: Any) -> EffectSettings:
    """The ``effects`` object (a dict, or its JSON text) as EffectSettings; EffectError says what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise EffectError(f"effects: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(value, Mapping):
        raise EffectError('effects: give a JSON object, e.g. {"objects": {"1": "blur"}, "background": "none"}')
    allowed = [f.name for f in fields(EffectSettings)]
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise EffectError(f"effects: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    radius = value.get("point_radius")
    return EffectSettings(
        objects=_object_effects(value.get("objects", {})),
        background=parse_effect(value.get("background", "none"), BACKGROUND_EFFECTS, "effects.background"),
        feather=parse_number(value.get("feather", 0.0), "feather", "effects.feather"),
        point_radius=None if radius is None else parse_number(radius, "point_radius", "effects.point_radius"),
        cutout=parse_cutout(value.get("cutout", list(DEFAULT_CUTOUT))),
    )


def _object_effects(value: Any) -> tuple[tuple[int, Effect], ...]:
    if not isinstance(value, Mapping):
        raise EffectError('effects.objects: give an object of object id -> effect, e.g. {"1": "blur", '
                          '"2": {"effect": "fill", "color": "#000000"}}')
    effects = []
    for key, spec in value.items():
        where = f"effects.objects[{json.dumps(key)}]"
        try:
            obj_id = int(key)
        except (TypeError, ValueError):
            raise EffectError(f"{where}: the key must be an object id (an integer), got {key!r}") from None
        effects.append((obj_id, parse_effect(spec, OBJECT_EFFECTS, where)))
    return tuple(effects)


def parse_effect(spec: Any, valid: Sequence[str], where: str, member: str = ".") -> Effect:
    """An effect name, or {"effect": name, parameter: value, ...}, that must be one of `valid`. A parameter's
    errors name it as `where` + `member` + its name."""
    params: Mapping[str, Any] = {}
    if isinstance(spec, Mapping):
        params = {k: v for k, v in spec.items() if k != "effect"}
        if "effect" not in spec:
            raise EffectError(f'{where}: give the effect\'s name as "effect", e.g. {{"effect": "{valid[1]}"}}')
        spec = spec["effect"]
    if not isinstance(spec, str) or spec not in valid:
        raise EffectError(f"{where}: unknown effect {spec!r}; choose one of {', '.join(valid)}")
    allowed = PARAMETERS[spec]
    unknown = [key for key in params if key not in allowed]
    if unknown:
        takes = f"takes only {', '.join(map(repr, allowed))}" if allowed else "takes no parameters"
        raise EffectError(f"{where}: {spec} {takes}, not {', '.join(map(repr, unknown))}")
    values = {key: parse_color(v, f"{where}{member}{key}") if key == "color"
              else parse_number(v, key, f"{where}{member}{key}") for key, v in params.items()}
    return replace(Effect(spec), **values)


def parse_color(value: Any, where: str = "color") -> Color:
    """ "#rrggbb", "#rgb" or [r, g, b] (0-255) as an RGB tuple."""
    if isinstance(value, str) and (match := _HEX.fullmatch(value.strip())):
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    if (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        return int(value[0]), int(value[1]), int(value[2])
    raise EffectError(f"{where}: {json.dumps(value)} is not a colour; give {COLOR_FORMAT}")


def parse_number(value: Any, name: str, where: str) -> float | int:
    """A numeric parameter or setting (`name` of RANGES) checked against its range; `where` names it."""
    low, high, integer = RANGES[name]
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer and value != int(value):
        ok = False
    if not ok or not low <= value <= high:
        raise EffectError(f"{where}: must be {kind} from {low} to {high}, got {json.dumps(value)}")
    return int(value) if integer else float(value)


def parse_cutout(value: Any) -> tuple[str, ...]:
    """The cut-out formats: a list of CUTOUT_FORMATS, without repeats."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EffectError(f"effects.cutout: give a list of formats from {', '.join(CUTOUT_FORMATS)}, e.g. "
                          f"{json.dumps(list(DEFAULT_CUTOUT))}")
    unknown = [v for v in value if v not in CUTOUT_FORMATS]
    if unknown:
        raise EffectError(f"effects.cutout: unknown format(s) {', '.join(map(repr, unknown))}; choose from "
                          f"{', '.join(CUTOUT_FORMATS)}")
    return tuple(dict.fromkeys(value))


def parse_effect_flag(text: str, valid: Sequence[str], where: str) -> Effect:
    """The command line's "NAME[,KEY=VALUE...]" (e.g. "fill,color=#ff0000", "blur,strength=20") as an Effect;
    `where` names the flag in messages (e.g. "--effect '1=blur,x'")."""
    name, *pairs = [part.strip() for part in text.split(",")]
    spec: dict[str, Any] = {"effect": name}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise EffectError(f"{where}: write parameters as KEY=VALUE, e.g. blur,strength=20")
        try:
            spec[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            spec[key.strip()] = raw.strip()
    return parse_effect(spec, valid, where, member=": ")
