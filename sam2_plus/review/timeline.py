"""Per-object timelines of a tracking run (frames, scores, areas, visibility, flags), built as frames are
written (`ReviewTracker`, one of the service's writers) or read back from a results JSON (`read_review`).

`ReviewReport` is what a timeline view plots: per object the frames with their presence score and mask
area, and the flagged frames with their reasons (`ObjectTimeline.next_flagged` / `previous_flagged` step
through them).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..media.export import FrameRecord
from ..media.rle import rle_counts
from .flags import REASONS, Flag, Observation, ReviewThresholds, flags_for


def _after(frames: tuple[int, ...], frame: int) -> Optional[int]:
    """The first of the sorted `frames` after `frame`, or None."""
    index = bisect.bisect_right(frames, frame)
    return frames[index] if index < len(frames) else None


def _before(frames: tuple[int, ...], frame: int) -> Optional[int]:
    """The last of the sorted `frames` before `frame`, or None."""
    index = bisect.bisect_left(frames, frame)
    return frames[index - 1] if index > 0 else None


@dataclass(frozen=True)
class ObjectTimeline:
    """One object through the tracked frames (parallel tuples, one entry per frame) and its flags."""

    obj_id: int
    task: str
    frames: tuple[int, ...]
    scores: tuple[float, ...]  # presence probability (NaN where unknown)
    areas: tuple[int, ...]  # mask pixels where visible, else 0
    visible: tuple[bool, ...]
    flags: tuple[Flag, ...]

    @property
    def flagged_frames(self) -> tuple[int, ...]:
        return tuple(sorted({flag.frame for flag in self.flags}))

    def flags_on(self, frame: int) -> tuple[Flag, ...]:
        return tuple(flag for flag in self.flags if flag.frame == frame)

    def next_flagged(self, frame: int) -> Optional[int]:
        """The first flagged frame after `frame`, or None."""
        return _after(self.flagged_frames, frame)

    def previous_flagged(self, frame: int) -> Optional[int]:
        """The last flagged frame before `frame`, or None."""
        return _before(self.flagged_frames, frame)

    def counts(self) -> dict[str, int]:
        """Flags per reason, in the order of REASONS (reasons without a flag left out)."""
        counted = Counter(flag.reason for flag in self.flags)
        return {reason: counted[reason] for reason in REASONS if counted[reason]}

    def describe(self, first: int = 5) -> str:
        """One line: the count per reason and the first `first` flagged frames."""
        head = f"object {self.obj_id} ({self.task})"
        if not self.flags:
            return f"{head}: no flagged frames"
        counts = ", ".join(f"{n} {reason}" for reason, n in self.counts().items())
        shown = [f"{f} ({', '.join(flag.reason for flag in self.flags_on(f))})" for f in self.flagged_frames[:first]]
        more = len(self.flagged_frames) - len(shown)
        tail = f", ... ({more} more)" if more > 0 else ""
        return f"{head}: {counts}; flagged frames {', '.join(shown)}{tail}"


@dataclass(frozen=True)
class ReviewReport:
    objects: tuple[ObjectTimeline, ...]
    thresholds: ReviewThresholds = field(default_factory=ReviewThresholds)

    def object(self, obj_id: int) -> ObjectTimeline:
        for timeline in self.objects:
            if timeline.obj_id == obj_id:
                return timeline
        raise KeyError(f"no object {obj_id}; the report has {[t.obj_id for t in self.objects]}")

    def counts(self) -> dict[int, dict[str, int]]:
        return {timeline.obj_id: timeline.counts() for timeline in self.objects}

    @property
    def flag_count(self) -> int:
        return sum(len(timeline.flags) for timeline in self.objects)

    @property
    def flagged_frames(self) -> tuple[int, ...]:
        """Every frame flagged for any object, in order."""
        return tuple(sorted({flag.frame for timeline in self.objects for flag in timeline.flags}))

    def flags_on(self, frame: int) -> dict[int, tuple[Flag, ...]]:
        """The flags of `frame` per object id (objects without a flag there left out)."""
        found = {timeline.obj_id: timeline.flags_on(frame) for timeline in self.objects}
        return {obj_id: flags for obj_id, flags in found.items() if flags}

    def next_flagged(self, frame: int) -> Optional[int]:
        """The first frame after `frame` flagged for any object, or None."""
        return _after(self.flagged_frames, frame)

    def previous_flagged(self, frame: int) -> Optional[int]:
        """The last frame before `frame` flagged for any object, or None."""
        return _before(self.flagged_frames, frame)

    def describe(self, first: int = 5) -> list[str]:
        """Lines for people: one per object (see ObjectTimeline.describe)."""
        return [timeline.describe(first) for timeline in self.objects]


class _ObjectState:
    """What the tracker keeps of one object: its timeline so far and the observation of the frame before."""

    def __init__(self, obj_id: int, task: str) -> None:
        self.obj_id, self.task = obj_id, task
        self.frames: list[int] = []
        self.scores: list[float] = []
        self.areas: list[int] = []
        self.visible: list[bool] = []
        self.flags: list[Flag] = []
        self.previous: Optional[Observation] = None
        self.seen = False

    def add(self, observation: Observation, thresholds: ReviewThresholds) -> list[Flag]:
        """Record the observation with the flags it raises; returns them."""
        flags = flags_for(self.previous, observation, self.seen, thresholds)
        self.record(observation, flags)
        return flags

    def record(self, observation: Observation, flags: Iterable[Flag]) -> None:
        self.frames.append(observation.frame)
        self.scores.append(observation.score)
        self.areas.append(observation.area)
        self.visible.append(observation.visible)
        self.flags.extend(flags)
        self.seen = self.seen or observation.visible
        self.previous = observation

    def timeline(self) -> ObjectTimeline:
        return ObjectTimeline(self.obj_id, self.task, tuple(self.frames), tuple(self.scores), tuple(self.areas),
                              tuple(self.visible), tuple(self.flags))


def observation(result: FrameRecord, i: int) -> Observation:
    """Object `i` of a frame's result as an observation (area and box only where it is visible)."""
    visible = bool(result.visible[i])
    box = result.box_for(i) if visible else None
    motion = None if result.motion_scores is None else float(result.motion_scores[i])
    return Observation(
        frame=result.frame_idx,
        visible=visible,
        score=float(result.scores[i]),
        area=int(np.count_nonzero(result.masks[i])) if visible else 0,
        box=None if box is None else tuple(float(v) for v in box),
        motion_iou=motion if motion is not None and np.isfinite(motion) else None,
    )


class ReviewTracker:
    """A result writer that flags frames as they are written (in increasing frame order) and keeps every
    object's timeline. Several JSON writers may ask for the same frame's flags (`object_fields`); each frame
    is observed once."""

    def __init__(self, tasks: Optional[Mapping[int, str]] = None,
                 thresholds: ReviewThresholds = ReviewThresholds()) -> None:
        self.thresholds = thresholds
        self._objects = {int(obj_id): _ObjectState(int(obj_id), task) for obj_id, task in (tasks or {}).items()}
        self._frame: Optional[int] = None
        self._flags: dict[int, list[Flag]] = {}

    def observe(self, result: FrameRecord) -> dict[int, list[Flag]]:
        """The frame's flags per object id (observed once per frame)."""
        if result.frame_idx != self._frame:
            self._flags = {}
            for i, obj_id in enumerate(result.obj_ids):
                state = self._objects.setdefault(obj_id, _ObjectState(obj_id, "mask"))
                self._flags[obj_id] = state.add(observation(result, i), self.thresholds)
            self._frame = result.frame_idx
        return self._flags

    def object_fields(self, result: FrameRecord) -> list[dict[str, Any]]:
        """The results JSON's extra fields for each object of the frame: ``{"flags": [...]}``."""
        flags = self.observe(result)
        return [{"flags": [flag.to_json() for flag in flags[obj_id]]} for obj_id in result.obj_ids]

    def header(self) -> dict[str, Any]:
        """The results JSON's ``review`` header: the thresholds and the reasons."""
        return {"thresholds": self.thresholds.to_json(), "reasons": list(REASONS)}

    def write(self, result: FrameRecord) -> None:
        self.observe(result)

    def close(self) -> None:
        pass

    def report(self) -> ReviewReport:
        return ReviewReport(tuple(state.timeline() for state in self._objects.values()), self.thresholds)


class ObservationLog:
    """Observations of frames that arrive in any order (a live run: a backward pass after a forward one),
    from one thread, while another asks for the report so far (`report`: frames sorted, then flagged)."""

    def __init__(self, tasks: Optional[Mapping[int, str]] = None) -> None:
        self.tasks = {int(obj_id): task for obj_id, task in (tasks or {}).items()}
        self._observations: dict[int, dict[int, Observation]] = {}  # object -> frame -> observation
        self._lock = threading.Lock()

    def add(self, result: FrameRecord) -> None:
        observed = [(obj_id, observation(result, i)) for i, obj_id in enumerate(result.obj_ids)]
        with self._lock:
            for obj_id, seen in observed:
                self._observations.setdefault(int(obj_id), {})[seen.frame] = seen

    def report(self, thresholds: ReviewThresholds = ReviewThresholds()) -> ReviewReport:
        with self._lock:
            snapshot = {obj_id: dict(frames) for obj_id, frames in self._observations.items()}
        timelines = []
        for obj_id, frames in snapshot.items():
            state = _ObjectState(obj_id, self.tasks.get(obj_id, "mask"))
            for frame in sorted(frames):
                state.add(frames[frame], thresholds)
            timelines.append(state.timeline())
        return ReviewReport(tuple(timelines), thresholds)


def review_results(results: Iterable[FrameRecord], tasks: Optional[Mapping[int, str]] = None,
                   thresholds: ReviewThresholds = ReviewThresholds()) -> ReviewReport:
    """The report of results given in increasing frame order (for example `read_results_json`'s)."""
    tracker = ReviewTracker(tasks, thresholds)
    for result in results:
        tracker.observe(result)
    return tracker.report()


def read_review(path: str | os.PathLike) -> ReviewReport:
    """The report of a results JSON: its flags where it has them (else computed from its frames with the
    default thresholds), scores, visibility, and mask areas counted from the RLE without decoding."""
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    review = document.get("review") or {}
    thresholds = ReviewThresholds(**review.get("thresholds", {}))
    tasks = {int(o["id"]): o["task"] for o in document.get("objects", [])}
    states = {obj_id: _ObjectState(obj_id, task) for obj_id, task in tasks.items()}
    for entry in document["frames"]:
        for o in entry["objects"]:
            state = states.setdefault(int(o["id"]), _ObjectState(int(o["id"]), "mask"))
            _add_json_entry(state, int(entry["frame"]), o, thresholds)
    return ReviewReport(tuple(state.timeline() for state in states.values()), thresholds)


def _add_json_entry(state: _ObjectState, frame: int, entry: Mapping[str, Any], thresholds: ReviewThresholds) -> None:
    visible = bool(entry["visible"])
    score = float("nan") if entry.get("score") is None else float(entry["score"])
    area = sum(rle_counts(entry["mask"])[1::2]) if visible else 0
    box = tuple(entry["box"]) if visible and entry.get("box") is not None else None
    observation = Observation(frame, visible, score, area, box)
    if "flags" in entry:
        state.record(observation, (Flag(frame, f["reason"], f.get("value")) for f in entry["flags"]))
    else:  # a results JSON written before flags existed
        state.add(observation, thresholds)
