"""Checks of a tracking job before any GPU work, where a job enters (a Track click, a /track call): the video
against the limits (the job's one probe), the options, the prompts against the video (their one parse), the
model's tasks, the weights file and the GPU time. What passes is a `JobPlan`, whose `JobSpec` is carried checked to
the GPU."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..effects.settings import EffectError
from ..exports import ExportError, check_export_formats
from ..jobs import JobSpec, TrackRequest
from ..service import prepare_request
from .errors import AppInputError
from .jobs import job_gpu_seconds
from .options import TrackOptions, parse_options
from .settings import AppLimits, env_name


@dataclass(frozen=True)
class JobPlan:
    """A job that passed every check that needs no model."""

    spec: JobSpec  # what the GPU function runs, once placed in a folder (`job_spec`)
    options: TrackOptions
    gpu_seconds: int

    @property
    def request(self) -> TrackRequest:
        return self.spec.request

    @property
    def video(self) -> Path:
        return self.request.video

    @property
    def frames(self) -> int:
        return self.request.info.num_frames

    @property
    def objects(self) -> int:
        return len(self.request.objects)

    def job_spec(self, job_dir: str | os.PathLike, stop_file: str | os.PathLike) -> JobSpec:
        """The job as app.py's spaces.GPU function (and its duration) gets it: writing into `job_dir`, stopped by
        `stop_file`."""
        return self.spec.in_folder(job_dir, stop_file)


def plan_job(video: Optional[str | os.PathLike], prompts: str | Mapping[str, Any],
             options: str | Mapping | TrackOptions | None, limits: AppLimits) -> JobPlan:
    """The checked job, or AppInputError / sam2_plus.errors.INPUT_ERRORS saying what to change. With the options'
    "find" the prompts may be empty (text) or hold no objects: the job finds them."""
    if not video:
        raise AppInputError("no video: give a video file")
    info = limits.check_video(video)
    parsed = parse_options(options)
    if isinstance(prompts, str) and not prompts.strip():
        if parsed.find is None:
            raise AppInputError('no prompts: give the prompts JSON, e.g. {"objects": [{"id": 1, "task": "mask", '
                                '"prompts": [{"frame": 0, "points": [[100, 80]]}]}]}')
        prompts = None  # a job that only finds its objects
    request = prepare_request(video, prompts, model=parsed.model, motion_aware=parsed.motion_aware, info=info,
                              discovery=parsed.find)
    try:
        check_export_formats(parsed.export_formats, request.tasks)
        if parsed.effects is not None:
            parsed.effects.check_objects(request.tasks)
    except (ExportError, EffectError) as e:
        raise AppInputError(f"invalid options: {e}") from None
    spec = JobSpec("track", request, parsed.export_formats, parsed.effects)
    seconds = job_gpu_seconds(spec)
    if seconds > limits.max_gpu_seconds:
        raise AppInputError(f"{len(request.objects)} objects through {info.num_frames} frames need about "
                            f"{seconds} s of GPU time; the limit is {limits.max_gpu_seconds} s "
                            f"({env_name('max_gpu_seconds')}). Track fewer objects or a shorter video")
    return JobPlan(spec, parsed, seconds)
