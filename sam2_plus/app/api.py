"""One call of the public endpoint /track: checked like a UI job and run in its own folder, which lives exactly
as long as the call. Its results are handed to Gradio (`keep`: copied to where Gradio serves its own copies
from) before the folder goes, so nothing is left once they are served, whichever route the call came by. A
client gone for the reconnect grace (`SessionFiles`) has its job stopped after the current frame."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from ..provider import ModelProvider, shared_models
from .jobs import JobFiles, JobRunner, JobUpdate, run_job
from .plan import plan_job
from .settings import AppLimits
from .workdirs import SessionFiles, WorkDir

Keep = Callable[[Path], "str | os.PathLike"]  # a result file -> where it is served from (outside the folder)


def api_job(video: Optional[str | os.PathLike], prompts: str | Mapping[str, Any], options: str | Mapping | None,
            limits: AppLimits, session_files: SessionFiles, session_hash: Optional[str],
            run: JobRunner = run_job, *, keep: Keep, models: Optional[ModelProvider] = None) -> Iterator[JobUpdate]:
    """Check the call (`plan_job`: AppInputError / sam2_plus.errors.INPUT_ERRORS) and track it on `models` (the
    server's; default: the process's shared ModelCache) with `run`: run_job or the app's spaces.GPU wrapper of it.
    The last update holds the result, whose files `keep` has placed outside the job's folder (which is gone once
    this generator ends)."""
    plan = plan_job(video, prompts, options, limits)
    folder = WorkDir.create("api")
    session_files.add(session_hash, folder.close)  # the client gone for good: stop the job, remove the folder
    folder.begin_job()
    try:
        for update in run(plan.job_spec(folder.path, folder.stop.path), models or shared_models()):
            if update.result is not None:
                update = replace(update, result=replace(update.result, files=kept(update.result.files, keep)))
            yield update
    finally:
        session_files.discard(folder.close)
        folder.end_job()
        folder.close()


def kept(files: JobFiles, keep: Keep) -> JobFiles:
    """`files` after `keep` (None stays None)."""

    def one(path: Optional[Path]) -> Optional[Path]:
        return None if path is None else Path(keep(path))

    return JobFiles(one(files.overlay), one(files.export), one(files.results_json), one(files.effect),
                    tuple(Path(keep(p)) for p in files.cutouts))
