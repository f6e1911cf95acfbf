"""Frames a person should look at, per object: pure functions over per-frame observations.

An observation is what one frame says about one object: visible or not, its presence score, its mask area,
its box, and (motion-aware tracking) the Kalman IoU of the chosen mask. A frame is flagged, with a reason:

- ``lost``: not visible after being visible on the frame before;
- ``reappeared``: visible again after having been lost;
- ``low_confidence``: visible with a presence score under ``ReviewThresholds.low_confidence``;
- ``area_jump``: the mask area grew or shrank by more than ``area_ratio`` times since the frame before;
- ``position_jump``: the box centre moved by more than ``position_jump`` box diagonals since the frame before;
- ``far_from_motion``: the motion model's predicted box and the chosen mask's box overlap with IoU under
  ``motion_iou`` (only where SAMURAI's Kalman filter scored the frame).

Jumps compare consecutive frames on which the object is visible and at least ``min_area`` pixels large;
a reappearance is flagged as such, never as a jump.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

REASONS = ("lost", "reappeared", "low_confidence", "area_jump", "position_jump", "far_from_motion")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ReviewThresholds:
    """When a frame is flagged (see the module docstring). The defaults:

    - ``low_confidence`` 0.7: the presence probability (sigmoid of the object-score logit) under which a visible
      object is flagged; an object is visible from 0.5, so this marks the frames within about one logit of
      disappearing.
    - ``area_ratio`` 2.0: the area doubled or halved from one frame to the next.
    - ``position_jump`` 0.5: the centre moved by half the object's own box diagonal in one frame.
    - ``min_area`` 16 pixels: below it a mask's area and centre are too noisy to judge jumps.
    - ``motion_iou`` 0.3: the Kalman filter's box overlaps the chosen mask's box by less than this (SAMURAI
      stops admitting frames to memory at 0.0, so 0.3 marks the doubtful ones before that).
    """

    low_confidence: float = 0.7
    area_ratio: float = 2.0
    position_jump: float = 0.5
    min_area: int = 16
    motion_iou: float = 0.3

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Observation:
    """One object on one frame."""

    frame: int
    visible: bool
    score: float  # presence probability, NaN when unknown
    area: int  # mask pixels
    box: Optional[Box] = None  # xyxy, None when there is none
    motion_iou: Optional[float] = None  # Kalman IoU of the chosen mask, where it was scored


@dataclass(frozen=True)
class Flag:
    """A frame to review: why, and the measure that crossed its threshold (None for lost / reappeared)."""

    frame: int
    reason: str
    value: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        value = None if self.value is None or not math.isfinite(self.value) else round(float(self.value), 4)
        return {"reason": self.reason, "value": value}


def flags_for(previous: Optional[Observation], current: Observation, seen: bool,
              thresholds: ReviewThresholds = ReviewThresholds()) -> list[Flag]:
    """The flags of `current` given the object's observation on the frame before (None on its first frame)
    and whether it was visible on any earlier frame."""
    was_visible = previous is not None and previous.visible
    if not current.visible:
        return [Flag(current.frame, "lost")] if was_visible else []
    flags = []
    if seen and not was_visible:
        flags.append(Flag(current.frame, "reappeared"))
    if current.score < thresholds.low_confidence:
        flags.append(Flag(current.frame, "low_confidence", current.score))
    if was_visible:
        flags.extend(_jumps(previous, current, thresholds))
    if current.motion_iou is not None and current.motion_iou < thresholds.motion_iou:
        flags.append(Flag(current.frame, "far_from_motion", current.motion_iou))
    return flags


def _jumps(previous: Observation, current: Observation, thresholds: ReviewThresholds) -> list[Flag]:
    if min(previous.area, current.area) < thresholds.min_area:
        return []
    flags = []
    ratio = max(current.area, previous.area) / min(current.area, previous.area)
    if ratio > thresholds.area_ratio:
        flags.append(Flag(current.frame, "area_jump", current.area / previous.area))
    shift = centre_shift(previous.box, current.box)
    if shift is not None and shift > thresholds.position_jump:
        flags.append(Flag(current.frame, "position_jump", shift))
    return flags


def centre_shift(before: Optional[Box], after: Optional[Box]) -> Optional[float]:
    """How far the box centre moved, in diagonals of the box before; None without both boxes."""
    if before is None or after is None:
        return None
    diagonal = math.hypot(before[2] - before[0], before[3] - before[1])
    if diagonal <= 0:
        return None
    dx = (after[0] + after[2] - before[0] - before[2]) / 2
    dy = (after[1] + after[3] - before[1] - before[3]) / 2
    return math.hypot(dx, dy) / diagonal


def flag_sequence(observations: Sequence[Observation],
                  thresholds: ReviewThresholds = ReviewThresholds()) -> list[Flag]:
    """Every flag of one object's observations, given in increasing frame order."""
    flags: list[Flag] = []
    previous: Optional[Observation] = None
    seen = False
    for current in observations:
        flags.extend(flags_for(previous, current, seen, thresholds))
        seen = seen or current.visible
        previous = current
    return flags


def flag_track(frames: Sequence[int], visible: Sequence[bool], scores: Sequence[float], areas: Sequence[int],
               boxes: Optional[Sequence[Optional[Box]]] = None,
               motion_ious: Optional[Sequence[Optional[float]]] = None,
               thresholds: ReviewThresholds = ReviewThresholds()) -> list[Flag]:
    """`flag_sequence` over parallel per-frame sequences (boxes and Kalman IoUs optional)."""
    count = len(frames)
    lengths = {len(visible), len(scores), len(areas), len(boxes or frames), len(motion_ious or frames)}
    if lengths != {count}:
        raise ValueError(f"every sequence needs one entry per frame ({count}); got lengths {sorted(lengths)}")
    observations = [
        Observation(int(frames[k]), bool(visible[k]), float(scores[k]), int(areas[k]),
                    None if boxes is None else boxes[k], None if motion_ious is None else motion_ious[k])
        for k in range(count)
    ]
    return flag_sequence(observations, thresholds)
