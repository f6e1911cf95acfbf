"""The app's GPU slots: one limiter that every GPU event holds around its GPU part only (an API job, a Track
click's job, a preview). The checks of a request run before it, so a bad request is refused at once whatever
runs; a request that passed waits here, and says so while it waits.

Two kinds of callers:

- Jobs (tracking runs) hold a slot for their whole run (`held`, `runner`): first come first served, at most
  `max_waiting` wait, a further one is refused (QueueFullError).
- Short calls (previews) never wait for a whole job (`short_call`): a job lends its slot between two steps of
  its model (`Lender`, called before each prompt and each frame) to the short calls waiting at that moment,
  one after another, then goes on; a short call also takes a free slot, before the jobs waiting for one. A
  job gives way only to the calls that waited when it reached a step, so a stream of clicks slows it by the
  calls' own time and never stops it. On ZeroGPU the job runs in another process (`lending=False`): there a
  job lends only as it starts, and a short call waits for it to end, and says so.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..jobs import JobSpec
from ..provider import ModelProvider
from .errors import QueueFullError
from .jobs import JobRunner, JobUpdate, counted
from .settings import env_name

WAIT_REPORT_INTERVAL = 1.0  # seconds between "waiting" reports of a job or short call that waits
CLAIM_SECONDS = 5.0  # a lent slot its short call has not taken up by then goes back to the job (a page gone)

WaitReport = Callable[[int], None]  # called with the number of jobs ahead while a job waits


def jobs(count: int) -> str:
    return counted(count, "job")


def describe_wait(ahead: int) -> str:
    """The progress line of a job waiting for the GPU."""
    return "Waiting for the GPU (next in line)…" if ahead == 0 else f"Waiting for the GPU ({jobs(ahead)} ahead)…"


@dataclass(frozen=True)
class CallWait:
    """Where a waiting short call stands."""

    ahead: int  # short calls before it
    jobs_running: int  # tracking jobs holding slots
    lending: bool  # whether those jobs lend their slot between frames

    def describe(self) -> str:
        """The status line of a preview waiting for the GPU."""
        place = "next in line" if self.ahead == 0 else f"{self.ahead} ahead"
        if self.jobs_running == 0:  # every slot runs another short call
            return f"Waiting for the GPU: other previews are running ({place})…"
        one = self.jobs_running == 1
        running = "a tracking job is running" if one else f"{self.jobs_running} tracking jobs are running"
        if self.lending:
            after = "after its current frame" if one else "after the current frame of one of them"
        else:
            after = "when it ends" if one else "when one of them ends"
        return f"Waiting for the GPU: {running}; the preview runs {after} ({place})…"


WAITING, LENT, ON_LOAN, OWN_SLOT, DONE = "waiting", "lent", "on loan", "own slot", "done"


class _Call:
    """A short call's place: waiting, lent a job's slot, running on it, running on a slot of its own, done."""

    def __init__(self) -> None:
        self.state = WAITING


class GpuSlots:
    """`slots` GPU callers at once (module doc); `lending`: jobs lend their slot between frames (off ZeroGPU)."""

    def __init__(self, slots: int, max_waiting: int, lending: bool = True) -> None:
        self.slots, self.max_waiting, self.lending = slots, max_waiting, lending
        self._busy = 0
        self._jobs_running = 0
        self._waiting: deque[object] = deque()  # jobs
        self._calls: deque[_Call] = deque()  # short calls
        self._changed = threading.Condition()

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        """Jobs waiting for a slot."""
        return len(self._waiting)

    @property
    def calls_waiting(self) -> int:
        return len(self._calls)

    # ------------------------------------------------------------------ jobs

    @contextmanager
    def held(self, on_wait: WaitReport = lambda ahead: None) -> Iterator["Lender"]:
        """Hold a slot for the body (a job); while waiting for it, `on_wait(jobs ahead)` every second or so. The
        body gets the slot's `Lender`, after it has lent the slot to the short calls that were waiting."""
        self._acquire(on_wait)
        lender = Lender(self)
        try:
            lender()
            yield lender
        finally:
            with self._changed:
                self._busy -= 1
                self._jobs_running -= 1
                self._changed.notify_all()

    def runner(self, run: JobRunner, on_wait: WaitReport) -> JobRunner:
        """`run` (a JobRunner) holding a slot from its first update to its last, lending it between steps."""

        def run_held(spec: JobSpec, models: ModelProvider) -> Iterator[JobUpdate]:
            with self.held(on_wait) as lender:
                yield from (run(spec, models, between_steps=lender) if self.lending else run(spec, models))

        return run_held

    def _acquire(self, on_wait: WaitReport) -> None:
        ticket = object()
        with self._changed:
            if not self._waiting and self._busy < self.slots:
                self._take_slot(job=True)
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
            self._take_slot(job=True)
            self._changed.notify_all()  # the next in line may fit in another free slot
            return True

    def _take_slot(self, job: bool) -> None:
        self._busy += 1
        self._jobs_running += job

    # ------------------------------------------------------------------ short calls

    @contextmanager
    def short_call(self) -> Iterator["Turn"]:
        """A short GPU call: iterate the `Turn` (a `CallWait` about every second while it waits), then run the
        call in the body. QueueFullError when `max_waiting` short calls wait already."""
        call = self._enter(_Call())
        try:
            yield Turn(self, call)
        finally:
            with self._changed:
                if call.state == OWN_SLOT:
                    self._busy -= 1
                elif call.state == WAITING:
                    self._calls.remove(call)
                call.state = DONE  # a lender waiting for it goes on
                self._changed.notify_all()

    def _enter(self, call: _Call) -> _Call:
        with self._changed:
            if not self._calls and self._busy < self.slots:
                self._take_slot(job=False)
                call.state = OWN_SLOT
            elif len(self._calls) >= self.max_waiting:
                raise QueueFullError(f"Queue is full: {counted(len(self._calls), 'preview')} waiting for the GPU, "
                                     f"the most allowed ({env_name('queue_size')}). Try again in a moment")
            else:
                self._calls.append(call)
        return call

    def _claim(self, call: _Call) -> bool:
        """Whether `call` may run now: a slot lent to it (taken up here) or a free one. Under the lock."""
        if call.state == LENT:
            call.state = ON_LOAN
            self._changed.notify_all()
        elif call.state == WAITING and self._calls[0] is call and self._busy < self.slots:
            self._calls.popleft()
            self._take_slot(job=False)
            call.state = OWN_SLOT
            self._changed.notify_all()
        return call.state in (ON_LOAN, OWN_SLOT)

    def _call_wait(self, call: _Call) -> CallWait:
        return CallWait(self._calls.index(call), self._jobs_running, self.lending)

    def _lend(self) -> None:
        """Run the short calls waiting now on the caller's slot, one after another (`Lender`)."""
        with self._changed:
            for call in list(self._calls):
                if call not in self._calls:  # it took a free slot, left, or another job lent it its slot
                    continue
                self._calls.remove(call)
                call.state = LENT
                self._changed.notify_all()
                if not self._changed.wait_for(lambda: call.state != LENT, CLAIM_SECONDS):
                    call.state = WAITING  # its page went quiet: back to the head of the line, the job goes on
                    self._calls.appendleft(call)
                    continue
                self._changed.wait_for(lambda: call.state == DONE)


class Lender:
    """A job's slot, lent between two steps of its model: calling it runs the short calls waiting now (on this
    slot, one after another) and returns when they are done. Only the process holding the slots can lend."""

    def __init__(self, slots: GpuSlots) -> None:
        self._slots = slots

    def __call__(self) -> None:
        self._slots._lend()


class Turn:
    """A short call's wait for the GPU: iterating it yields a `CallWait` about every second (the first at once)
    until the call may run; nothing when a slot was free."""

    def __init__(self, slots: GpuSlots, call: _Call) -> None:
        self._slots, self._call = slots, call

    def __iter__(self) -> Iterator[CallWait]:
        slots, call = self._slots, self._call
        with slots._changed:
            if slots._claim(call):
                return
            report = slots._call_wait(call)
        while True:
            yield report
            with slots._changed:
                if slots._changed.wait_for(lambda: slots._claim(call), WAIT_REPORT_INTERVAL):
                    return
                report = slots._call_wait(call)

    def wait(self) -> None:
        """Wait without reports."""
        for _ in self:
            pass
