"""A session's tracking job in a thread of its own (`DetachedJob`), so that it outlives the page that started it.

Gradio stops iterating an event's generator once its page's connection goes (a reload, a closed tab): a job
iterated by the page itself would be left half-done, its results never reaching the session. Here a thread
runs the job to its end and keeps its latest state; pages follow it (`follow`): the page that pressed Track,
or a reloaded page that rejoined the session.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from typing import Optional

from .jobs import JobResult, JobUpdate

FOLLOW_POLL = 1.0  # seconds a follower waits before looking again (a job reports far more often)


class DetachedJob:
    """Runs `updates` (a session's job: JobUpdates, the last with the result) in a daemon thread, in the
    context of the call that started it (so Gradio's progress and ZeroGPU's request context reach it), and
    keeps the newest progress, the newest live frame, the result and the error."""

    def __init__(self, updates: Iterator[JobUpdate], name: str = "sam2plus-detached-job") -> None:
        self._updates = updates
        self._changed = threading.Condition()
        self._count = 0  # updates received
        self._progress: Optional[JobUpdate] = None
        self._frame: Optional[JobUpdate] = None  # the newest update with a live frame
        self._frame_count = 0  # the value of _count when _frame came
        self.result: Optional[JobResult] = None
        self.error: Optional[BaseException] = None
        self.done = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for update in self._updates:
                with self._changed:
                    self._count += 1
                    if update.result is not None:
                        self.result = update.result
                    elif update.progress is not None:
                        self._progress = update
                    if update.frame is not None:
                        self._frame, self._frame_count = update, self._count
                    self._changed.notify_all()
        except BaseException as error:  # raised to the followers
            self.error = error
        finally:
            with self._changed:
                self.done = True
                self._changed.notify_all()

    def _snapshot(self, with_frame: bool) -> Optional[JobUpdate]:
        if self._progress is None:
            return None
        frame = self._frame if with_frame and self._frame is not None else None
        if frame is None:
            return JobUpdate(progress=self._progress.progress)
        return JobUpdate(progress=self._progress.progress, frame=frame.frame, frame_idx=frame.frame_idx,
                         review=frame.review)

    def follow(self, poll: float = FOLLOW_POLL) -> Iterator[JobUpdate]:
        """The job's state each time it changes, starting with its state now, until it ends; then its error, if
        it failed, is raised. Updates that came while the follower was busy are merged into one (the newest
        progress; the newest live frame when one came since the last). Stopping to follow leaves the job
        running."""
        seen, frame_seen, progress_seen = 0, 0, None
        while True:
            with self._changed:
                while self._count == seen and not self.done:
                    self._changed.wait(poll)
                if self._count == seen:  # done, nothing new
                    break
                seen = self._count
                new_frame = self._frame_count > frame_seen
                snapshot = self._snapshot(with_frame=new_frame)
                fresh = new_frame or self._progress is not progress_seen  # not only the result came
                frame_seen, progress_seen = self._frame_count, self._progress
            if snapshot is not None and fresh:
                yield snapshot
        if self.error is not None:
            raise self.error

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Whether the job ended within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.done, timeout)

