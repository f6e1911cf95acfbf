"""The tracking jobs of a page's session (`AppSession` inherits it): a Track click's job checked from every prompt,
run here or on a thread of its own (`DetachedJob`), its folder, and its result kept. It works on the session's
objects, files and results (session.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from .detached import DetachedJob
from .estimate import SPEEDS
from .jobs import JobResult, JobRunner, JobUpdate, run_job
from .options import TrackOptions
from .plan import JobPlan, plan_job
from .settings import AppLimits

RENDER_STOP_SECONDS = 30.0  # how long a job waits for a re-render to stop (it does at its next frame)


class JobControl:
    """`AppSession`'s methods for its tracking jobs (its fields job, jobs, last_options and results hold their
    state)."""

    def plan_job(self, options: TrackOptions, limits: AppLimits) -> JobPlan:
        """A Track click's job from every prompt, checked (`plan.plan_job`)."""
        self.check_open()
        with self.granularity_words():
            return plan_job(self.video, self.prompts_document(finding=options.find is not None), options, limits)

    def tracking_job(self, options: TrackOptions, limits: AppLimits, run: JobRunner = run_job) -> Iterator[JobUpdate]:
        """Check and run a tracking job from every prompt (`run`: run_job, or the app's spaces.GPU wrapper of
        it); the last update holds the result, which the session keeps. Stop: `self.stop.set()`."""
        plan = self.plan_job(options, limits)
        yield from self._job_updates(plan, self.begin_job(), run)

    def start_job(self, options: TrackOptions, limits: AppLimits, run: JobRunner = run_job) -> DetachedJob:
        """tracking_job checked and begun here (input errors are raised here), then run in a thread of its own
        (`DetachedJob`): it runs to its end whether or not a page follows it, and the session keeps its result."""
        plan = self.plan_job(options, limits)
        updates = self._job_updates(plan, self.begin_job(), run)
        self.job, self.last_options = DetachedJob(updates), options
        return self.job

    def _job_updates(self, plan: JobPlan, job_dir: Path, run: JobRunner) -> Iterator[JobUpdate]:
        result = None
        try:
            for update in run(plan.job_spec(job_dir, self.stop.path), self.models):
                result = update.result or result
                yield update
        finally:
            self.end_job(result)
        if result is not None and not result.failed and result.frames_done:  # Track's next estimate
            SPEEDS.run(plan.request.model, plan.objects, result.tracking_seconds / result.frames_done)

    def begin_job(self) -> Path:
        """Mark the session busy (prompt edits are refused) and return the folder for the job's outputs. A
        re-render sees the job at its next frame and stops; the job's folder comes after it."""
        self.files.begin_job()
        if self._rendering.acquire(timeout=RENDER_STOP_SECONDS):  # else a stalled one: it stops when resumed
            self._rendering.release()
        return self.new_job_dir()

    def end_job(self, result: Optional[JobResult]) -> None:
        if result is not None and not self.cleared:
            self.set_results(result)
            self.take_found(result)
        self.files.end_job()

    @property
    def job_dir(self) -> Path:
        """The folder of the last (or running) job's outputs."""
        return self.workdir / f"job-{self.jobs}"

    def new_job_dir(self) -> Path:
        """A folder for the next job's outputs; earlier jobs' files go (the app has its own copies)."""
        self.jobs += 1
        for old in self.workdir.glob("job-*"):
            if self.results is None or not self.results.files.all_within(old):
                shutil.rmtree(old, ignore_errors=True)
        self.job_dir.mkdir()
        return self.job_dir

    def set_results(self, result: JobResult) -> None:
        if self._overlay is not None:
            self._overlay.close()
            self._overlay = None
        self._records = None
        self.results = result
