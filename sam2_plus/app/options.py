"""The options JSON of a tracking job (`{"model": "sam2++", "motion_aware": false}`, optionally
`"export_formats": ["cvat", "coco"]`: formats of sam2_plus.exports added to the results ZIP, and `"effects"`:
the object of sam2_plus/effects/settings.py, and `"find"`: objects the job finds by itself, "everything", phrases
such as "person. car." or the object of sam2_plus/discovery/settings.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..config import canonical_model_name
from ..discovery.settings import DiscoveryError, DiscoverySettings, settings_from_json
from ..effects.settings import EffectError, EffectSettings, parse_effects
from ..exports import EXPORT_FORMATS, ExportFormatError, parse_export_formats
from ..prompts import TOO_MANY_DIGITS
from .errors import AppInputError
from .settings import DEFAULT_MODEL, MODELS

MAX_OPTIONS_CHARACTERS = 64 * 1024  # options name a model, flags, formats and per-object effects: a few KB


@dataclass(frozen=True)
class TrackOptions:
    model: str = DEFAULT_MODEL
    motion_aware: bool = False
    export_formats: tuple[str, ...] = ()
    effects: Optional[EffectSettings] = None  # None: no effect video, no cut-outs
    find: Optional[DiscoverySettings] = None  # None: only the objects prompted

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"model": self.model, "motion_aware": self.motion_aware}
        if self.find is not None:
            document["find"] = self.find.to_json()
        if self.export_formats:
            document["export_formats"] = list(self.export_formats)
        if self.effects is not None:
            document["effects"] = self.effects.to_json()
        return document


def parse_options(options: str | Mapping[str, Any] | TrackOptions | None) -> TrackOptions:
    """The options JSON (text or dict; empty means the defaults) with a canonical model name; the UI's
    TrackOptions as they are (the model is checked with the prompts' tasks, `service.prepare_request`)."""
    if isinstance(options, TrackOptions):
        return options
    if options is None or (isinstance(options, str) and not options.strip()):
        return TrackOptions()
    if isinstance(options, str):
        options = _read_json(options)
    if not isinstance(options, Mapping):
        raise AppInputError('invalid options: give a JSON object, e.g. {"model": "sam2++", "motion_aware": false}')
    allowed = [f.name for f in fields(TrackOptions)]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise AppInputError(f"invalid options: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                            f"{', '.join(allowed)}")
    model = options.get("model", DEFAULT_MODEL)
    try:
        model = canonical_model_name(model) if isinstance(model, str) else None
    except ValueError:
        model = None
    if model is None:
        raise AppInputError(f"invalid options: unknown model {options.get('model')!r}; choose one of "
                            f"{', '.join(MODELS)}")
    motion_aware = options.get("motion_aware", False)
    if not isinstance(motion_aware, bool):
        raise AppInputError(f"invalid options: 'motion_aware' must be true or false, got {motion_aware!r}")
    return TrackOptions(model, motion_aware, _export_formats(options.get("export_formats", [])),
                        _effects(options.get("effects")), _find(options.get("find")))


def _read_json(text: str) -> Any:
    """The options JSON text as Python values, its size checked before it is parsed."""
    if len(text) > MAX_OPTIONS_CHARACTERS:
        raise AppInputError(f"invalid options: the JSON is {len(text)} characters; at most {MAX_OPTIONS_CHARACTERS} "
                            "are allowed")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AppInputError(f"invalid options: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}); "
                            'expected e.g. {"model": "sam2++", "motion_aware": false}') from None
    except RecursionError:
        raise AppInputError("invalid options: the JSON is nested too deeply to be options") from None
    except ValueError:  # an integer with more digits than Python converts
        raise AppInputError(f"invalid options: the JSON holds a number with too many digits ({TOO_MANY_DIGITS})"
                            ) from None


def _export_formats(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise AppInputError(f"invalid options: 'export_formats' must be a list of names of "
                            f"{', '.join(EXPORT_FORMATS)}, got {value!r}")
    try:
        return parse_export_formats(value)
    except ExportFormatError as e:
        raise AppInputError(f"invalid options: {e}") from None


def _effects(value: Any) -> Optional[EffectSettings]:
    if value is None:
        return None
    try:
        return parse_effects(value)
    except EffectError as e:
        raise AppInputError(f"invalid options: {e}") from None


def _find(value: Any) -> Optional[DiscoverySettings]:
    try:
        return settings_from_json(value)
    except DiscoveryError as e:
        raise AppInputError(f"invalid options: {e}") from None
