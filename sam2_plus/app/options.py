"""The options JSON of a tracking job (`{"model": "sam2++", "motion_aware": false}`, optionally `"effects"`:
the object of sam2_plus/effects/settings.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..config import canonical_model_name
from ..effects.settings import EffectError, EffectSettings, parse_effects
from .errors import AppInputError
from .settings import DEFAULT_MODEL, MODELS


@dataclass(frozen=True)
class TrackOptions:
    model: str = DEFAULT_MODEL
    motion_aware: bool = False
    effects: Optional[EffectSettings] = None  # None: no effect video, no cut-outs

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"model": self.model, "motion_aware": self.motion_aware}
        if self.effects is not None:
            document["effects"] = self.effects.to_json()
        return document


def parse_options(options: str | Mapping[str, Any] | None) -> TrackOptions:
    """The options JSON (text or dict; empty means the defaults) with a canonical model name."""
    if options is None or (isinstance(options, str) and not options.strip()):
        return TrackOptions()
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError as e:
            raise AppInputError(f"invalid options: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}); "
                                'expected e.g. {"model": "sam2++", "motion_aware": false}') from None
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
    return TrackOptions(model, motion_aware, _effects(options.get("effects")))


def _effects(value: Any) -> Optional[EffectSettings]:
    if value is None:
        return None
    try:
        return parse_effects(value)
    except EffectError as e:
        raise AppInputError(f"invalid options: {e}") from None
