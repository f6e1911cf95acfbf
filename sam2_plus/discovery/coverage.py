"""Which masks found on a keyframe are objects the job does not track yet: the coverage rule.

For each found mask, best score first:

1. **Covered** (dropped) when a tracked object present on the keyframe already holds it: their mask IoU is at
   least `cover_iou`, or less than `min_outside` of the found mask's area lies outside every present object's
   mask (and outside the masks accepted before it on this keyframe). The second test keeps a part of a tracked
   object (a shirt on a tracked person, one half of an object that split) from becoming an object of its own.
2. **Re-entry** when it is not covered and an object tracked before but absent on this keyframe has the same
   label and looks like it (`Look.similarity` at least `reentry_similarity`): that object takes the mask back
   under its old id, so an object that left and came back is not created twice. Each lost object is taken once,
   by its most similar mask.
3. **New** otherwise, while the job holds fewer than `max_objects` objects; past the limit it is counted as
   left out.

A look is the object's colour: a hue-saturation histogram of the frame's pixels under its mask (OpenCV's
calcHist), compared by the Bhattacharyya distance (similarity = 1 - distance). It is taken from the frame the
object was last seen on a keyframe, needs no model, and costs a histogram per object per keyframe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .found import Found
from .settings import DiscoverySettings

HUE_BINS, SATURATION_BINS = 18, 8


@dataclass(frozen=True, eq=False)
class Look:
    """An object's colour under its mask: a normalised hue-saturation histogram."""

    histogram: np.ndarray  # [HUE_BINS, SATURATION_BINS] float32

    @classmethod
    def of(cls, image: np.ndarray, mask: np.ndarray) -> "Look":
        hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], mask.astype(np.uint8), [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256])
        total = float(hist.sum())
        return cls((hist / total if total > 0 else hist).astype(np.float32))

    def similarity(self, other: "Look") -> float:
        """1 for the same colours, 0 for colours that share nothing."""
        if not self.histogram.any() or not other.histogram.any():
            return 0.0
        distance = cv2.compareHist(self.histogram, other.histogram, cv2.HISTCMP_BHATTACHARYYA)
        return float(min(max(1.0 - distance, 0.0), 1.0))


@dataclass(frozen=True)
class LostObject:
    """An object tracked before and absent on this keyframe, as last seen."""

    obj_id: int
    label: str
    look: Look


@dataclass(frozen=True, eq=False)
class Decision:
    """What becomes of one found mask: "new", "reentry" (of `obj_id`), "covered" (by `obj_id`) or "limit"."""

    kind: str
    found: Found
    obj_id: Optional[int] = None
    similarity: Optional[float] = None  # re-entry: how alike the mask and the lost object look


def decide(found: Sequence[Found], present: Mapping[int, np.ndarray], lost: Sequence[LostObject],
           image: np.ndarray, settings: DiscoverySettings, room: int) -> list[Decision]:
    """The decision for every found mask (best score first); `present`: masks of the objects present on the
    keyframe; `room`: how many new objects the limit still allows."""
    union = np.zeros(image.shape[:2], bool)
    for mask in present.values():
        union |= mask
    unclaimed = list(lost)
    decisions = []
    for item in sorted(found, key=lambda f: -f.score):
        decision = _covering(item, present, union, settings) or _reentry(item, unclaimed, image, settings)
        if decision is None:
            decision = Decision("new", item) if room > 0 else Decision("limit", item)
            room -= decision.kind == "new"
        if decision.kind in ("new", "reentry"):
            union |= item.mask
        if decision.kind == "reentry":
            unclaimed = [obj for obj in unclaimed if obj.obj_id != decision.obj_id]
        decisions.append(decision)
    return decisions


def _covering(item: Found, present: Mapping[int, np.ndarray], union: np.ndarray,
              settings: DiscoverySettings) -> Optional[Decision]:
    area = item.area
    if area == 0:
        return Decision("covered", item)
    for obj_id, mask in present.items():
        if mask_iou(item.mask, mask) >= settings.cover_iou:
            return Decision("covered", item, obj_id)
    outside = np.count_nonzero(item.mask & ~union) / area
    if outside < settings.min_outside:
        return Decision("covered", item, _most_overlapping(item.mask, present))
    return None


def _reentry(item: Found, lost: Sequence[LostObject], image: np.ndarray,
             settings: DiscoverySettings) -> Optional[Decision]:
    candidates = [obj for obj in lost if obj.label == item.label]
    if not candidates:
        return None
    look = Look.of(image, item.mask)
    scored = [(look.similarity(obj.look), obj.obj_id) for obj in candidates]
    similarity, obj_id = max(scored)
    if similarity < settings.reentry_similarity:
        return None
    return Decision("reentry", item, obj_id, similarity)


def _most_overlapping(mask: np.ndarray, present: Mapping[int, np.ndarray]) -> Optional[int]:
    overlaps = [(np.count_nonzero(mask & other), obj_id) for obj_id, other in present.items()]
    best = max(overlaps, default=(0, None))
    return best[1] if best[0] > 0 else None


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0
