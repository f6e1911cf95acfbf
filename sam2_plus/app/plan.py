"""Checks of a tracking job before any GPU work, where a job enters (a Track click, a /track call): the video
against the limits (the job's one probe), the options, the prompts against the video (their one parse), the
model's tasks, the weights file and the GPU time. What passes is a `JobPlan`, carried checked to the GPU."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..effects.settings import EffectError
from ..exports import ExportError, check_export_formats
from ..service import TrackRequest, prepare_request
from .errors import AppInputError
from .gpu_time import job_gpu_seconds
from .options import TrackOptions, parse_options
from .settings import AppLimits, env_name


@dataclass(frozen=True)
class JobPlan:
    """A job that passed every check that needs no model."""

    request: TrackRequest  # what the GPU function tracks
    options: TrackOptions
    gpu_seconds: int

    @property
    def video(self) -> Path:
        return self.request.video

    @property
    def frames(self) -> int:
        return self.request.info.num_frames

    @property
    def objects(self) -> int:
        return len(self.request.objects)

    def job_arguments(self, job_dir: str | os.PathLike, stop_file: str | os.PathLike) -> tuple:
        """`jobs.run_job`'s arguments (those app.py's spaces.GPU function and its duration get): the request
        and the options its outputs need."""
        return self.request, str(job_dir), str(stop_file), self.options.export_formats, self.options.effects


def plan_job(video: Optional[str | os.PathLike], prompts: str | Mapping[str, Any],
             options: str | Mapping | TrackOptions | None, limits: AppLimits) -> JobPlan:
    """The checked job, or AppInputError / sam2_plus.errors.INPUT_ERRORS saying what to change."""
    if not video:
        raise AppInputError("no video: give a video file")
    info = limits.check_video(video)
    parsed = parse_options(options)
    if isinstance(prompts, str) and not prompts.strip():
        raise AppInputError('no prompts: give the prompts JSON, e.g. {"objects": [{"id": 1, "task": "mask", '
                            '"prompts": [{"frame": 0, "points": [[100, 80]]}]}]}')
    request = prepare_request(video, prompts, model=parsed.model, motion_aware=parsed.motion_aware, info=info)
    try:
        check_export_formats(parsed.export_formats, request.tasks)
        if parsed.effects is not None:
            parsed.effects.check_objects(request.tasks)
    except (ExportError, EffectError) as e:
        raise AppInputError(f"invalid options: {e}") from None
    seconds = job_gpu_seconds(request, effects=parsed.effects)
    if seconds > limits.max_gpu_seconds:
        raise AppInputError(f"{len(request.objects)} objects through {info.num_frames} frames need about "
                            f"{seconds} s of GPU time; the limit is {limits.max_gpu_seconds} s "
                            f"({env_name('max_gpu_seconds')}). Track fewer objects or a shorter video")
    return JobPlan(request, parsed, seconds)
