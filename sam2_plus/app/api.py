"""One call of the public endpoint /track: checked like a UI job, run in its own folder, which goes when the
API client disconnects (`SessionFiles`) or, for a client that never does, an hour later (`sweep_work_dirs`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from .jobs import JobRunner, JobUpdate, run_job
from .plan import plan_job
from .settings import AppLimits
from .workdirs import SessionFiles, WorkDir, sweep_work_dirs

API_JOB_TTL = 3600.0  # seconds an API job's folder may outlive its call (Gradio serves its own copies)
API_RELEASE_DELAY = 5.0  # seconds an ended session's API folder stays after its job, for Gradio to copy results


def api_job(video: Optional[str | os.PathLike], prompts: str | Mapping[str, Any], options: str | Mapping | None,
            limits: AppLimits, session_files: SessionFiles, session_hash: Optional[str],
            run: JobRunner = run_job) -> Iterator[JobUpdate]:
    """Check the call (`plan_job`: AppInputError / sam2_plus.errors.INPUT_ERRORS) and track it (`run`: run_job
    or the app's spaces.GPU wrapper of it); the last update holds the result."""
    sweep_work_dirs("api", API_JOB_TTL)
    plan = plan_job(video, prompts, options, limits)
    folder = WorkDir.create("api")
    session_files.add(session_hash, lambda: folder.release(API_RELEASE_DELAY))
    folder.begin_job()
    try:
        yield from run(*plan.job_arguments(folder.path, folder.stop.path))
    finally:
        folder.end_job()
