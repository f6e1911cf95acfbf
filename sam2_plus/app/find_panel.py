"""The page's Find panel (`FindChoices`): what Find objects looks for on the frame shown and, with "keep finding
while tracking", what the tracking job looks for on its keyframes. Both are one `DiscoverySettings`, so the page's
Find runs the very finder a job runs (`models.finder`, sam2_plus/discovery): automatic masks for Everything (the
density is the grid's points per side), the detector's boxes made masks for By text.

Find on a frame is a job of its own (`FrameFindRequest`, mode "find_frame" of sam2_plus.jobs), so it runs on the
GPU like a preview. Its found masks are numbered largest first and kept with their score and phrase
(proposals.FoundObjects); taken, they are mask objects with that label and score (session_images.py).

What the user turned down stays out of a job that keeps finding: the frames whose found objects the page took are
no keyframes of the job (`DiscoverySettings.skip_frames`: on them the objects are the ones the user kept), and a
found object the user removed goes with the job as a hidden object (`DiscoverySettings.hidden`): tracked unseen, so
later keyframes see it covered, and written nowhere (session_images.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..discovery.finder import within_area
from ..discovery.found import Found
from ..discovery.settings import (DEFAULT_KEYFRAME_INTERVAL, DiscoveryError, DiscoverySettings, parse_phrases)
from ..provider import ModelProvider
from ..segment.inputs import DENSITIES, StillImage
from ..service import check_discovery, check_model, check_weights
from ..weights import WeightsSource, weights_from_env
from .errors import AppInputError
from .proposals import DEFAULT_DENSITY

FIND_MODES = {"Everything": "everything", "By text": "text"}  # the panel's words -> DiscoverySettings.mode
DEFAULTS = DiscoverySettings("everything")


@dataclass(frozen=True)
class FindChoices:
    """The Find panel's values, checked."""

    mode: str = "everything"  # DiscoverySettings.mode
    phrases: tuple[str, ...] = ()  # the text mode's
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL
    score_threshold: float = DEFAULTS.score_threshold  # By text: the detector's lowest box score
    pred_iou_thresh: float = DEFAULTS.pred_iou_thresh  # Everything: the lowest predicted IoU
    stability_score_thresh: float = DEFAULTS.stability_score_thresh  # Everything: the lowest stability
    keep_finding: bool = False  # the tracking job finds objects on its keyframes too

    def settings(self, density: str = DEFAULT_DENSITY, skip_frames: tuple[int, ...] = (),
                 hidden: tuple[int, ...] = ()) -> DiscoverySettings:
        """The discovery settings of these choices with Find's density (Everything's grid), the frames that are no
        keyframes and the objects tracked unseen."""
        if density not in DENSITIES:
            raise AppInputError(f"unknown density {density!r}; choose one of {', '.join(DENSITIES)}")
        try:
            return DiscoverySettings(self.mode, self.phrases, keyframe_interval=self.keyframe_interval,
                                     score_threshold=self.score_threshold, points_per_side=DENSITIES[density],
                                     pred_iou_thresh=self.pred_iou_thresh,
                                     stability_score_thresh=self.stability_score_thresh,
                                     skip_frames=tuple(sorted(skip_frames)), hidden=tuple(sorted(hidden)))
        except DiscoveryError as error:
            raise AppInputError(str(error).replace("find: ", "Find: ", 1)) from None

    def for_tracking(self, density: str, skip_frames: tuple[int, ...],
                     hidden: tuple[int, ...] = ()) -> Optional[DiscoverySettings]:
        """What a tracking job finds by itself: these settings when "keep finding" is on, else None."""
        return self.settings(density, skip_frames, hidden) if self.keep_finding else None

    def looked_for(self, density: str) -> str:
        """What Find looked for, for the page's notes: Everything's density, or the phrases."""
        return density if self.mode == "everything" else ", ".join(self.phrases)


def parse_find_choices(mode: str, phrases: Optional[str], keyframe_interval: Any, score_threshold: Any,
                       pred_iou_thresh: Any, stability_score_thresh: Any, keep_finding: Any) -> FindChoices:
    """The panel's controls as FindChoices; AppInputError says which value to change."""
    if mode not in FIND_MODES:
        raise AppInputError(f"Find: choose {' or '.join(FIND_MODES)}, not {mode!r}")
    kind = FIND_MODES[mode]
    words = ()
    if kind == "text":
        try:
            words = parse_phrases(phrases or "")
        except DiscoveryError as error:
            raise AppInputError(str(error).replace("find: ", "Find: ", 1)) from None
        if not words:
            raise AppInputError("Find: By text needs what to find, e.g. 'person. red car.' (phrases end with a "
                                "period)")
    interval = _whole(keyframe_interval, "the keyframe interval")
    return FindChoices(kind, words, interval, _fraction(score_threshold, "the detector score"),
                       _fraction(pred_iou_thresh, "the predicted IoU"),
                       _fraction(stability_score_thresh, "the stability"), bool(keep_finding))


def _whole(value: Any, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppInputError(f"Find: {name} must be a whole number of frames, got {value!r}") from None
    if not math.isfinite(number) or number != int(number) or not 1 <= number <= 10_000:
        raise AppInputError(f"Find: {name} must be a whole number of frames from 1 to 10000, got {value!r}")
    return int(number)


def _fraction(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppInputError(f"Find: {name} must be a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise AppInputError(f"Find: {name} must be a number from 0 to 1, got {value!r}")
    return number


# --------------------------------------------------------------------------- Find on one frame, as a job


@dataclass(frozen=True, eq=False)
class FrameFindRequest:
    """A frame of the page's video to find objects on with discovery settings, checked (`prepare_frame_find`)."""

    image: StillImage
    settings: DiscoverySettings
    model: str
    weights: WeightsSource
    device: Optional[str] = None


@dataclass(frozen=True, eq=False)
class FrameFindOutcome:
    found: tuple[Found, ...]  # largest first, each within the settings' area bounds
    seconds: float  # the finder's time (loaded before)


def prepare_frame_find(image: StillImage, settings: DiscoverySettings, model: str,
                       weights: Optional[WeightsSource] = None) -> FrameFindRequest:
    """The checked request: the model takes the found objects' task, the weights are there."""
    model = check_model(model, {})
    check_discovery(settings, model, ())
    weights = weights or weights_from_env()
    check_weights(weights)
    return FrameFindRequest(image, settings, model, weights)


def run_frame_find(request: FrameFindRequest, models: ModelProvider) -> FrameFindOutcome:
    """The objects the settings' finder finds on the frame (the tracking job's finder and area bounds)."""
    finder = models.finder(request.settings, request.model, request.device, request.weights)
    started = time.perf_counter()
    pixels = request.image.pixels
    found = finder.find(pixels, None, request.image.frame)
    kept = within_area(found, request.settings, pixels.shape[0] * pixels.shape[1])
    return FrameFindOutcome(tuple(sorted(kept, key=lambda f: -f.area)), time.perf_counter() - started)

