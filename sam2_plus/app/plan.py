"""Checks of a tracking job before any GPU work: the video against the limits, the options, the prompts
against the video, the model's tasks, the weights file and the GPU time."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..effects.settings import EffectError
from ..service import check_request, prepare_request
from .errors import AppInputError
from .gpu_time import estimate_gpu_seconds
from .options import TrackOptions, parse_options
from .settings import AppLimits, env_name


@dataclass(frozen=True)
class JobPlan:
    """A job that passed every check that needs no model."""

    video: Path
    prompts_json: str
    options: TrackOptions
    frames: int
    objects: int
    gpu_seconds: int


def plan_job(video: Optional[str | os.PathLike], prompts: str | Mapping[str, Any], options: str | Mapping | None,
             limits: AppLimits) -> JobPlan:
    """The checked job, or AppInputError / USER_ERRORS saying what to change."""
    if not video:
        raise AppInputError("no video: give a video file")
    info = limits.check_video(video)
    parsed = parse_options(options)
    if isinstance(prompts, str) and not prompts.strip():
        raise AppInputError('no prompts: give the prompts JSON, e.g. {"objects": [{"id": 1, "task": "mask", '
                            '"prompts": [{"frame": 0, "points": [[100, 80]]}]}]}')
    request = prepare_request(video, prompts, model=parsed.model, motion_aware=parsed.motion_aware)
    check_request(request)
    if parsed.effects is not None:
        try:
            parsed.effects.check_objects(request.tasks)
        except EffectError as e:
            raise AppInputError(f"invalid options: {e}") from None
    seconds = estimate_gpu_seconds(info.num_frames, len(request.objects), parsed.model, parsed.effects)
    if seconds > limits.max_gpu_seconds:
        raise AppInputError(f"{len(request.objects)} objects through {info.num_frames} frames need about "
                            f"{seconds} s of GPU time; the limit is {limits.max_gpu_seconds} s "
                            f"({env_name('max_gpu_seconds')}). Track fewer objects or a shorter video")
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return JobPlan(Path(video), text, parsed, info.num_frames, len(request.objects), seconds)
