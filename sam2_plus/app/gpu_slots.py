"""The app's GPU slots: one limiter that every GPU event holds around its GPU part only (an API job, a Track
click's job, a preview). The checks of a request run before it, so a bad request is refused at once whatever
runs; a request that passed waits here for a slot, first come first served, and says so while it waits."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import QueueFullError
from .jobs import JobRunner, JobUpdate
from .settings import env_name

WAIT_REPORT_INTERVAL = 1.0  # seconds between "waiting" reports of a job that waits for a slot

WaitReport = Callable[[int], None]  # called with the number of jobs ahead while a job waits


def jobs(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def describe_wait(ahead: int) -> str:
    """The progress line of a job waiting for the GPU."""
    return "Waiting for the GPU (next in line)…" if ahead == 0 else f"Waiting for the GPU ({jobs(ahead)} ahead)…"


class GpuSlots:
    """`slots` GPU jobs at once; at most `max_waiting` wait, a further one is refused (QueueFullError)."""

    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots, self.max_waiting = slots, max_waiting
        self._busy = 0
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextmanager
    def held(self, on_wait: WaitReport = lambda ahead: None) -> Iterator[None]:
        """Hold a slot for the body; while waiting for it, `on_wait(jobs ahead)` every second or so."""
        self._acquire(on_wait)
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def _acquire(self, on_wait: WaitReport) -> None:
        ticket = object()
        with self._changed:
            if not self._waiting and self._busy < self.slots:
                self._busy += 1
                return
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(f"Queue is full: {jobs(len(self._waiting))} waiting for the GPU, the most "
                                     f"allowed ({env_name('queue_size')}). Try again in a few minutes")
            self._waiting.append(ticket)
        try:
            while not self._take_if_first(ticket):
                with self._changed:
                    ahead = self._waiting.index(ticket)
                on_wait(ahead)
                with self._changed:
                    if self._waiting[0] is not ticket or self._busy >= self.slots:
                        self._changed.wait(WAIT_REPORT_INTERVAL)
        except BaseException:
            with self._changed:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._changed.notify_all()
            raise

    def _take_if_first(self, ticket: object) -> bool:
        with self._changed:
            if self._waiting[0] is not ticket or self._busy >= self.slots:
                return False
            self._waiting.popleft()
            self._busy += 1
            self._changed.notify_all()  # the next in line may fit in another free slot
            return True

    def runner(self, run: JobRunner, on_wait: WaitReport) -> JobRunner:
        """`run` (a JobRunner) holding a slot from its first update to its last."""

        def run_held(*args) -> Iterator[JobUpdate]:
            with self.held(on_wait):
                yield from run(*args)

        return run_held
