"""The forward pass of a job that finds objects by itself: the tracker runs from the start frame; on every keyframe
(the start frame, then every `keyframe_interval` frames) the finder looks for objects, the coverage rule
(`coverage.decide`) says which found masks are new and which are lost objects coming back, and those join the
tracking session as ordinary mask prompts on that frame. Tracking then goes on from the next frame with them.

A new object is also tracked backward (a session of its own, so the objects already written are not touched) at
most one interval back, to the frame it entered: the backward pass ends once the keyframe's new objects are all
absent on `ENTERED_AFTER` frames in a row. Those frames reach the caller through `on_backfill`, to be merged into
the frames already tracked. Its first frame is the first on which it is visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import cv2
import numpy as np
import torch

from ..prompt_rules import FramePrompt, mask_bbox
from ..video.results import FrameResult
from .coverage import Decision, LostObject, Look, decide
from .finder import Finder, within_area
from .settings import DiscoverySettings


@dataclass(frozen=True)
class FoundObject:
    """An object the job found by itself."""

    obj_id: int
    task: str
    label: str  # the phrase (text mode); "" for everything
    score: float  # the detector's score (text) or the predicted IoU (everything)
    found_on: int  # the keyframe it was found on
    first_frame: int  # the first frame it is visible on (earlier than found_on when tracked backward)
    source: str  # "everything" or "text"

    def fields(self) -> dict[str, Any]:
        """Its entry's fields in the results JSON's object list."""
        return {"label": self.label, "score": round(self.score, 4), "first_frame": self.first_frame,
                "found_on": self.found_on, "found_by": self.source}


@dataclass
class DiscoveryReport:
    """What the discovery of a job did."""

    settings: DiscoverySettings
    found: dict[int, FoundObject] = field(default_factory=dict)
    keyframes: list[int] = field(default_factory=list)
    reentries: list[tuple[int, int]] = field(default_factory=list)  # (object id, keyframe) taken back
    left_out: int = 0  # found masks not added because the object limit was reached, summed over keyframes
    seconds: float = 0.0  # finding and deciding, not tracking
    backfill_seconds: float = 0.0  # tracking the new objects backward

    def describe(self) -> list[str]:
        lines = [f"{self.settings.describe()}: {len(self.keyframes)} keyframes, {len(self.found)} objects found "
                 f"in {self.seconds:.1f} s"]
        lines.extend(f"  object {o.obj_id}{' (' + o.label + ')' if o.label else ''}: from frame {o.first_frame}, "
                     f"found on frame {o.found_on}, score {o.score:.2f}" for o in self.found.values())
        lines.extend(f"  object {obj_id} came back on frame {frame}" for obj_id, frame in self.reentries)
        if self.left_out:
            lines.append(f"  {self.left_out} masks found on keyframes were not added: the job holds "
                         f"{self.settings.max_objects} objects at most")
        return lines


ResultSink = Callable[[FrameResult], Any]
ENTERED_AFTER = 2  # frames in a row without any of the new objects that end their backward pass


class DiscoveringPass:
    """Tracks forward from `start`, adding the objects found on keyframes (see the module docstring)."""

    def __init__(self, predictor: Any, session: Any, frames: Any, settings: DiscoverySettings, finder: Finder,
                 tasks: Mapping[int, str], on_backfill: Optional[ResultSink] = None,
                 on_keyframe: Optional[Callable[[int], Any]] = None) -> None:
        self.predictor, self.session, self.frames = predictor, session, frames
        self.on_keyframe = on_keyframe  # told each keyframe before it is searched (progress)
        self.settings, self.finder = settings, finder
        self.tasks = dict(tasks)  # every object of the session: the request's, then the found ones
        self.labels: dict[int, str] = {obj_id: "" for obj_id in tasks}
        self.looks: dict[int, Look] = {}
        self.on_backfill = on_backfill
        self.report = DiscoveryReport(settings)
        self._next_id = max(tasks, default=0) + 1

    def forward(self, start: int) -> Iterator[FrameResult]:
        """Every frame's result from `start` to the video's end, in order, with the found objects."""
        frame = start
        while frame < len(self.frames):
            if not self.tasks:  # nothing to track yet: look on the keyframes only
                result = self._empty_result(frame)
                if self.settings.is_keyframe(frame, start):
                    result = self._discover(result) or result
                yield result
                frame += 1
                continue
            frame = yield from self._track_until_added(frame, start)
            if frame is None:
                return

    def _track_until_added(self, frame: int, start: int):
        """Track from `frame` until a keyframe adds objects; returns the frame to go on from (None: the end)."""
        results = self.predictor.propagate_in_video(self.session, start_frame_idx=frame)
        try:
            for result in results:
                if self.settings.is_keyframe(result.frame_idx, start):
                    updated = self._discover(result)
                    if updated is not None:
                        yield updated
                        return result.frame_idx + 1
                yield result
        finally:
            results.close()
        return None

    # ------------------------------------------------------------------ one keyframe
    def _discover(self, result: FrameResult) -> Optional[FrameResult]:
        """Find objects on the result's frame and add the new and returning ones; their frame's result with them,
        or None when nothing was added."""
        frame_idx = result.frame_idx
        if self.on_keyframe is not None:
            self.on_keyframe(frame_idx)
        began = time.perf_counter()
        image = np.asarray(self.frames[frame_idx])
        present = self._present_masks(result)
        lost = [LostObject(obj_id, self.labels.get(obj_id, ""), look) for obj_id, look in self.looks.items()
                if obj_id not in present and obj_id in self.tasks]
        found = within_area(self.finder.find(image, self._backbone(frame_idx), frame_idx), self.settings,
                            image.shape[0] * image.shape[1])
        decisions = decide(found, present, lost, image, self.settings,
                           room=self.settings.max_objects - len(self.tasks))
        for obj_id, mask in present.items():
            self.looks[obj_id] = Look.of(image, mask)
        self.report.keyframes.append(frame_idx)
        self.report.left_out += sum(d.kind == "limit" for d in decisions)
        self.report.seconds += time.perf_counter() - began
        added = [d for d in decisions if d.kind in ("new", "reentry")]
        if not added:
            return None
        updated, new_ids = None, []
        for decision in added:
            obj_id = self._take(decision, frame_idx, image)
            updated = self.predictor.add_prompt(self.session, obj_id, self.tasks[obj_id],
                                                prompt_for(self.tasks[obj_id], frame_idx, decision.found.mask))
            if decision.kind == "new":
                new_ids.append((obj_id, decision.found.mask))
        if new_ids and self.settings.backfill and frame_idx > 0:
            self._backfill(new_ids, frame_idx)
        return updated

    def _take(self, decision: Decision, frame_idx: int, image: np.ndarray) -> int:
        """The id a new or returning object is prompted under; a new one is recorded as found."""
        if decision.kind == "reentry":
            self.report.reentries.append((decision.obj_id, frame_idx))
            self.looks[decision.obj_id] = Look.of(image, decision.found.mask)
            return decision.obj_id
        obj_id = self._next_id
        self._next_id += 1
        self.tasks[obj_id] = self.settings.task
        self.labels[obj_id] = decision.found.label
        self.looks[obj_id] = Look.of(image, decision.found.mask)
        self.report.found[obj_id] = FoundObject(obj_id, self.settings.task, decision.found.label,
                                                float(decision.found.score), frame_idx, frame_idx,
                                                self.settings.mode)
        return obj_id

    def _present_masks(self, result: FrameResult) -> dict[int, np.ndarray]:
        """The masks of the objects visible on the result's frame."""
        visible = result.visible.cpu().numpy()
        masks = result.masks.cpu().numpy()
        return {int(obj_id): masks[i] for i, obj_id in enumerate(result.obj_ids) if visible[i]}

    def _backbone(self, frame_idx: int) -> Optional[dict]:
        """The frame's image-encoder output as the tracker computed it, when the predictor gives it."""
        features = getattr(self.predictor, "frame_backbone", None)
        return None if features is None else features(self.session, frame_idx)

    def _empty_result(self, frame_idx: int) -> FrameResult:
        height, width = self.frames.info.height, self.frames.info.width
        return FrameResult(frame_idx, [], torch.zeros(0, height, width), torch.zeros(0), None, None, [])

    def _backfill(self, new: list[tuple[int, np.ndarray]], frame_idx: int) -> None:
        """Track the objects found on `frame_idx` backward, at most one interval, in a session of their own; each
        frame goes to `on_backfill`, and an object's first frame moves to the earliest it is visible on."""
        began = time.perf_counter()
        session = self.predictor.init_state(self.frames)
        for obj_id, mask in new:
            self.predictor.add_prompt(session, obj_id, self.tasks[obj_id], prompt_for(self.tasks[obj_id], frame_idx,
                                                                                    mask))
        steps = min(frame_idx, self.settings.keyframe_interval - 1)
        results = self.predictor.propagate_in_video(session, start_frame_idx=frame_idx, reverse=True,
                                                    max_frame_num_to_track=steps)
        absent = 0
        try:
            for result in results:
                if result.frame_idx == frame_idx:
                    continue
                if self.on_backfill is not None:
                    self.on_backfill(result)
                visible = result.visible.cpu().numpy()
                for i, obj_id in enumerate(result.obj_ids):
                    found = self.report.found[int(obj_id)]
                    if visible[i] and result.frame_idx < found.first_frame:
                        self.report.found[int(obj_id)] = replace(found, first_frame=result.frame_idx)
                absent = 0 if visible.any() else absent + 1
                if absent >= ENTERED_AFTER:
                    break
        finally:
            results.close()
        self.report.backfill_seconds += time.perf_counter() - began


def prompt_for(task: str, frame_idx: int, mask: np.ndarray) -> FramePrompt:
    """A found mask as a prompt of `task`: the mask itself, its bounding box, or one click on its most interior
    pixel nearest its centroid (the point task takes exactly one positive click)."""
    if task == "mask":
        return FramePrompt.of(frame_idx, mask=mask)
    if task == "box":
        return FramePrompt.of(frame_idx, box=mask_bbox(mask))
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    ys, xs = np.nonzero(distance >= distance.max() - 0.5)  # the most interior pixels; of those, the most central
    cy, cx = np.argwhere(mask).mean(axis=0)
    best = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return FramePrompt.of(frame_idx, points=[[xs[best] + 0.5, ys[best] + 0.5]])
