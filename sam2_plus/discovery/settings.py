"""What a tracking job finds by itself (`DiscoverySettings`), read from the options JSON, the CLI or the page.

    settings = parse_find("person. red car.", keyframe_interval=10)   # text
    settings = DiscoverySettings("everything")

The options JSON's ``"find"`` object holds the same fields: ``{"mode": "text", "phrases": "person. car.",
"keyframe_interval": 15, "score_threshold": 0.3}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

DISCOVERY_MODES = ("everything", "text")
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_KEYFRAME_INTERVAL = 15
MAX_PHRASES = 16
MAX_PHRASE_CHARACTERS = 80


class DiscoveryError(ValueError):
    """Discovery settings that cannot be used (the message names the field and what it takes)."""


@dataclass(frozen=True)
class DiscoverySettings:
    """How a job finds objects: on its first tracked frame and every `keyframe_interval` frames after it."""

    mode: str  # "everything" (automatic masks) or "text" (phrases through a detector)
    phrases: tuple[str, ...] = ()  # text mode: what to find, e.g. ("person", "red car")
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL  # frames between two discovery passes
    task: str = "mask"  # the task the found objects are tracked with
    detector: str = DEFAULT_DETECTOR  # text mode: a checkpoint transformers' zero-shot-object-detection serves
    score_threshold: float = 0.3  # text mode: the detector's lowest box score kept
    points_per_side: int = 16  # everything mode: the automatic masks' click grid
    pred_iou_thresh: float = 0.8  # everything mode: the lowest predicted IoU kept
    stability_score_thresh: float = 0.9  # everything mode: the lowest stability kept
    min_area: float = 0.002  # found masks smaller than this fraction of the frame are left out
    max_area: float = 0.8  # ... and larger ones (background, the whole frame)
    cover_iou: float = 0.5  # a found mask with IoU >= this with a tracked object is that object
    min_outside: float = 0.5  # ... and one with less than this fraction of its area outside them is a part of them
    reentry_similarity: float = 0.75  # a lost object whose look matches this well takes the found mask back
    backfill: bool = True  # track a new object backward to where it entered (at most one interval)
    max_objects: int = 32  # objects of the job in all; discovery adds none past it
    # objects of the prompts tracked unseen (found objects turned down), so that discovery does not find them
    # again; they are written nowhere
    hidden: tuple[int, ...] = ()
    skip_frames: tuple[int, ...] = ()  # frames that are no keyframes (what was found there was chosen by hand)

    def __post_init__(self) -> None:
        if self.mode not in DISCOVERY_MODES:
            raise DiscoveryError(f"find: unknown mode {self.mode!r}; use 'everything' or 'text'")
        if self.mode == "text" and not self.phrases:
            raise DiscoveryError("find: the text mode needs at least one phrase, e.g. 'person. car.'")
        if self.mode == "everything" and self.phrases:
            raise DiscoveryError("find: phrases are for the text mode; the everything mode finds every object")
        _check_int("keyframe_interval", self.keyframe_interval, 1, 10_000)
        _check_int("points_per_side", self.points_per_side, 1, 64)
        _check_int("max_objects", self.max_objects, 1, 1000)
        for name in ("score_threshold", "pred_iou_thresh", "stability_score_thresh", "min_area", "max_area",
                     "cover_iou", "min_outside", "reentry_similarity"):
            _check_fraction(name, getattr(self, name))
        if self.min_area >= self.max_area:
            raise DiscoveryError(f"find: min_area ({self.min_area:g}) must be below max_area ({self.max_area:g})")
        if not isinstance(self.detector, str) or not self.detector.strip():
            raise DiscoveryError("find: 'detector' must name a checkpoint, e.g. " + DEFAULT_DETECTOR)
        for name in ("hidden", "skip_frames"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                        for v in values):
                raise DiscoveryError(f"find: '{name}' must be a list of whole numbers, got {list(values)!r}")

    def is_keyframe(self, frame_idx: int, start: int) -> bool:
        """Whether the forward pass from `start` looks for objects on this frame."""
        return (frame_idx >= start and (frame_idx - start) % self.keyframe_interval == 0
                and frame_idx not in self.skip_frames)

    def describe(self) -> str:
        what = "everything" if self.mode == "everything" else "; ".join(self.phrases)
        return f"find {what} every {self.keyframe_interval} frames"

    def to_json(self) -> dict[str, Any]:
        document = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("phrases", "hidden", "skip_frames"):
            document[name] = list(document[name])
        return document


def parse_phrases(text: str) -> tuple[str, ...]:
    """"person. red car." -> ("person", "red car"): phrases end with a period (Grounding DINO's way) or a
    comma or a new line; case and repeated spaces folded, repeats dropped."""
    if not isinstance(text, str):
        raise DiscoveryError(f"find: phrases must be text like 'person. car.', got {text!r}")
    parts = text.replace(",", ".").replace("\n", ".").split(".")
    phrases: list[str] = []
    for part in parts:
        phrase = " ".join(part.lower().split())
        if phrase and phrase not in phrases:
            if len(phrase) > MAX_PHRASE_CHARACTERS:
                raise DiscoveryError(f"find: the phrase {phrase[:40]!r}... is longer than {MAX_PHRASE_CHARACTERS} "
                                     "characters")
            phrases.append(phrase)
    if len(phrases) > MAX_PHRASES:
        raise DiscoveryError(f"find: {len(phrases)} phrases; at most {MAX_PHRASES}")
    return tuple(phrases)


def parse_find(find: str, **options: Any) -> DiscoverySettings:
    """The CLI's `--find`: "everything", or phrases ("person. car."); `options` are other fields."""
    text = find.strip() if isinstance(find, str) else ""
    if not text:
        raise DiscoveryError("find: give 'everything' or phrases such as 'person. car.'")
    if text.lower() == "everything":
        return DiscoverySettings("everything", **options)
    return DiscoverySettings("text", parse_phrases(text), **options)


def settings_from_json(value: Any) -> Optional[DiscoverySettings]:
    """The options JSON's "find": null (none), "everything", phrases as text, or an object of the fields
    (``phrases`` as text or a list). DiscoveryError names what is wrong."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_find(value)
    if not isinstance(value, Mapping):
        raise DiscoveryError(f"find: give 'everything', phrases, or an object with 'mode', got {value!r}")
    allowed = [f.name for f in fields(DiscoverySettings)]
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise DiscoveryError(f"find: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    entries = dict(value)
    if "mode" not in entries:
        entries["mode"] = "text" if entries.get("phrases") else "everything"
    phrases = entries.get("phrases", ())
    if isinstance(phrases, str):
        entries["phrases"] = parse_phrases(phrases)
    elif isinstance(phrases, (list, tuple)) and all(isinstance(p, str) for p in phrases):
        entries["phrases"] = parse_phrases(". ".join(phrases))
    else:
        raise DiscoveryError(f"find: 'phrases' must be text like 'person. car.' or a list of phrases, got {phrases!r}")
    _check_types(entries)
    return DiscoverySettings(**entries)


def _check_types(entries: dict[str, Any]) -> None:
    defaults = DiscoverySettings("everything")
    for name, value in entries.items():
        if name == "phrases":
            continue
        if name in ("hidden", "skip_frames") and isinstance(value, list):
            entries[name] = value = tuple(value)  # checked by the settings
            continue
        expected = type(getattr(defaults, name))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            entries[name] = float(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise DiscoveryError(f"find: '{name}' must be {expected.__name__}, got {value!r}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DiscoveryError(f"find: '{name}' must be a whole number from {low} to {high}, got {value!r}")


def _check_fraction(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise DiscoveryError(f"find: '{name}' must be a number from 0 to 1, got {value!r}")
