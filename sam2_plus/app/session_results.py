"""The results half of a page's session (`AppSession` inherits it): the last run's records re-rendered with new
choices, its cut-out preview, its review (timeline and flagged frames) and its overlay's frames. It works on the
session's results, objects and files (session.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Optional

import numpy as np

from ..effects.settings import EffectSettings
from ..media.decode import FrameSource
from ..outputs import RecordError, RecordFile
from ..review import ReviewReport
from .errors import AppInputError
from .jobs import VIEW_CACHE_BYTES, RenderSettings
from .rerender import RerenderError, RerenderUpdate, cutout_preview, rerender
from .timeline import describe_flags_on, frame_at_click, render_timeline


class ResultsView:
    """`AppSession`'s methods for its last results (its fields results, _records and _overlay hold their state)."""

    # ------------------------------------------------------------------ re-rendering the results
    @property
    def records(self) -> RecordFile:
        """The last results' records; RerenderError when there are none to re-render."""
        if self.results is None:
            raise RerenderError("there are no results to re-render yet: track first")
        if self._records is None:
            if self.results.first_frame is None:
                raise RerenderError("the last run tracked no frame: track again")
            if self.results.files.records is None:
                raise RerenderError("the last run's masks were not kept: track again")
            self.check_open()
            try:
                self._records = RecordFile(self.results.files.records)
            except RecordError as error:
                raise RerenderError(f"the last run's results cannot be re-rendered ({error}): track again") from None
        return self._records

    def rerender_target(self) -> Optional[RenderSettings]:
        """The settings the last results' files should have now, when they differ from what they show (None
        when they already show them, or there are none)."""
        if self.results is None or self.results.first_frame is None:
            return None
        tracked = [obj_id for obj_id in self.objects if obj_id in self.records.tasks]
        target = self.render_settings(obj_ids=tracked)
        return None if target == self.results.rendered else target

    def rerender(self) -> Iterator[RerenderUpdate]:
        """Re-render the last results' files with the current choices (the objects' effects and `scene`) from
        their records, without the model, into a new folder; nothing when they already show them. One at a time;
        one that sees a job start, the session close or the choices change again stops (its folder goes, and it
        yields no result: the change's own re-render follows). The last update holds the new result."""
        with self._rendering:
            target = self.rerender_target()
            if target is None or self.tracking:
                return
            records, result = self.records, self.results
            folder = self.new_job_dir()
            try:
                for update in rerender(result, records, self.video, folder, target,
                                       should_stop=lambda: self.tracking or self.closed
                                       or self.rerender_target() != target):
                    if update.result is not None and not self.closed:
                        self.set_results(update.result)
                    yield update
            finally:
                if self.results is result or self.closed:
                    shutil.rmtree(folder, ignore_errors=True)

    def cutout_preview(self, frame: int) -> Optional[np.ndarray]:
        """The cut-out of the last results on `frame` (their first frame when it was not tracked) over a
        checkerboard; None when they have no cut-out (the background is not erased). An image's results always
        have one (what its cut-out PNG holds)."""
        if self.is_image and self.image_results is not None and not self.closed:
            found = self.image_results
            return cutout_preview(self.frame(0), found.segmentation.record(), found.effects or EffectSettings(),
                                  found.segmentation.tasks)
        result = self.results
        effects = None if result is None else result.rendered.effects
        if effects is None or not effects.erases_background or result.first_frame is None or self.closed:
            return None
        records = self.records
        record = records.get(frame) or records.get(result.first_frame)
        return cutout_preview(self.frame(record.frame_idx), record, effects, records.tasks)

    # ------------------------------------------------------------------ review of the results
    @property
    def review(self) -> Optional[ReviewReport]:
        """The last results' per-object timelines and flagged frames."""
        return None if self.results is None else self.results.review

    def object_names(self) -> dict[int, str]:
        return {obj_id: obj.name for obj_id, obj in self.objects.items()}

    def render_timeline(self, frame: int, review: Optional[ReviewReport] = None) -> Optional[np.ndarray]:
        """The timeline of `review` (default: the last results', with their removed objects) with `frame`
        marked; None without one."""
        last = review is None and self.results is not None
        removed = self.results.removed if last else None
        review = review or self.review
        if review is None or not review.objects:
            return None
        return render_timeline(review, self.info.num_frames, self.object_names(), current=frame, removed=removed,
                               new=self.new_objects() if last else None)

    def new_objects(self) -> dict[int, int]:
        """The objects the last job found by itself -> their first frame."""
        report = None if self.results is None else self.results.discovery
        return {} if report is None else {obj_id: found.first_frame for obj_id, found in report.found.items()}

    def describe_flags(self, frame: int) -> str:
        """What is flagged on `frame`, and which found objects are new on it."""
        if self.review is None:
            return ""
        names = self.object_names()
        new = [names.get(obj_id, f"object {obj_id}") for obj_id, first in self.new_objects().items() if first == frame]
        note = f" New on this frame: {', '.join(new)}." if new else ""
        return describe_flags_on(self.review, frame, names) + note

    def frame_at_timeline(self, x: float) -> int:
        """The frame a click at `x` on the timeline image selects."""
        if self.review is None:
            raise AppInputError("there is no timeline yet: track first")
        return frame_at_click(self.review, self.info.num_frames, x)

    def flagged_frame(self, frame: int, forward: bool) -> int:
        """The next (or previous) flagged frame from `frame`."""
        if self.review is None:
            raise AppInputError("there are no results to review yet: track first")
        found = self.review.next_flagged(frame) if forward else self.review.previous_flagged(frame)
        if found is None:
            raise AppInputError(f"no flagged frame {'after' if forward else 'before'} frame {frame}")
        return found

    # ------------------------------------------------------------------ the overlay's frames
    def tracked_frame(self, index: int) -> Optional[np.ndarray]:
        """The frame of the last results' overlay video, when that run reached it."""
        result = self.results
        if result is None or result.files.overlay is None or result.first_frame is None:
            return None
        if not result.first_frame <= index <= result.last_frame:
            return None
        self.check_open()
        if self._overlay is None:
            self._overlay = FrameSource(result.files.overlay, cache_bytes=VIEW_CACHE_BYTES)
        position = index - result.first_frame
        return self._overlay[position] if position < len(self._overlay) else None

    def play_step(self, frame: int) -> Optional[int]:
        """The frame Play shows after `frame`: the next tracked frame (the first when `frame` is outside the
        tracked ones); None after the last, or without results."""
        result = self.results
        if result is None or result.first_frame is None:
            return None
        if not result.first_frame <= frame < result.last_frame:
            return None if frame == result.last_frame else result.first_frame
        return frame + 1
