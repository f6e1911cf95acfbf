"""The still-image endpoints, /segment_image and /find_objects: checked where they enter (no model: the image or
video against the app's limits, the options, the prompts, the GPU time), then run on the GPU as previews are (a
short call of the app's `GpuSlots`, between a tracking job's frames), in a work folder that lives as long as the
call; the files are handed to Gradio (`keep`) before it goes.

The GPU part is a job spec (sam2_plus/jobs.py, mode "segment_image" or "find_objects") run by app.py's one GPU
function for jobs; its ZeroGPU duration is the mode's (gpu_time.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional

from ..media.decode import MediaError
from ..segment import (FindRequest, SegmentRequest, StillImage, parse_find_options, prepare_find,
                       prepare_segment, read_frame, read_image)
from ..segment.inputs import IMAGE_SUFFIXES
from ..jobs import JobMode, JobSpec
from ..segment.runs import FindOutcome, SegmentOutcome
from .errors import AppInputError
from .gpu_slots import CallWait, GpuSlots
from .gpu_time import estimate_find_seconds
from .settings import AppLimits, env_name
from .workdirs import WorkDir

NO_IMAGE = "no image: give an image file (PNG, JPEG or WebP)"

Keep = Callable[[Path], "str | os.PathLike"]  # a result file -> where Gradio serves it from
WaitReport = Callable[[CallWait], None]
RunJob = Callable[[JobSpec], SegmentOutcome | FindOutcome]  # app.py: a job spec on the GPU, its result


# --------------------------------------------------------------------------- checks


def check_image(path: Optional[str | os.PathLike], limits: AppLimits) -> StillImage:
    """The uploaded image, read, within the app's limits (its upload size and longer side, as a video's)."""
    if not path:
        raise AppInputError(NO_IMAGE)
    path = Path(path)
    limits.check_file(path, "image")
    try:
        image = read_image(path)
    except MediaError as e:
        raise AppInputError(f"The image cannot be used: {e}") from None
    if max(image.width, image.height) > limits.max_side:
        raise AppInputError(f"the image is {image.width}x{image.height}; this app takes up to {limits.max_side} px "
                            f"on the longer side ({env_name('max_side')}). Scale it down and upload it again")
    return image


def check_frame(source: Optional[str | os.PathLike], frame: Any, limits: AppLimits) -> StillImage:
    """Frame `frame` of an uploaded image or video (the video checked against the app's limits first)."""
    if not source:
        raise AppInputError("no image or video: give an image (PNG, JPEG, WebP) or a video file")
    index = frame_index(frame)
    if Path(source).suffix.lower() in IMAGE_SUFFIXES:
        image = check_image(source, limits)
        if index != 0:
            raise AppInputError(f"frame {index} is out of range; an image has one frame: use frame 0")
        return image
    limits.check_video(source)
    return read_frame(source, index)


def frame_index(frame: Any) -> int:
    """The frame input (a number box gives a float; empty means 0) as a frame index."""
    if frame is None or frame == "":
        return 0
    if isinstance(frame, bool) or not isinstance(frame, (int, float)) or not float(frame).is_integer() or frame < 0:
        raise AppInputError(f"the frame must be a whole number from 0, got {frame!r}")
    return int(frame)


def plan_segment_image(image: Optional[str | os.PathLike], prompts: str | Mapping[str, Any],
                       options: str | Mapping[str, Any] | None, limits: AppLimits) -> SegmentRequest:
    """The checked /segment_image call, or AppInputError / sam2_plus.errors.INPUT_ERRORS saying what to change."""
    still = check_image(image, limits)
    if isinstance(prompts, str) and not prompts.strip():
        raise AppInputError('no prompts: give the prompts JSON, e.g. {"objects": [{"id": 1, "task": "mask", '
                            '"prompts": [{"frame": 0, "points": [[100, 80]]}]}]}')
    return prepare_segment(still, prompts, options)


def plan_find_objects(source: Optional[str | os.PathLike], frame: Any, options: str | Mapping[str, Any] | None,
                      limits: AppLimits) -> FindRequest:
    """The checked /find_objects call (options first: they are cheaper to check than a video)."""
    parsed = parse_find_options(options)
    seconds = estimate_find_seconds(parsed)
    if seconds > limits.max_gpu_seconds:
        raise AppInputError(f"Find objects with {parsed.grid}x{parsed.grid} points and {parsed.crop_n_layers} crop "
                            f"layers needs about {seconds} s of GPU time; the limit is {limits.max_gpu_seconds} s "
                            f"({env_name('max_gpu_seconds')}). Use fewer crop layers or a coarser density")
    return prepare_find(check_frame(source, frame, limits), options=parsed)


# --------------------------------------------------------------------------- calls


def segment_image_call(image: Optional[str], prompts: str, options: str, limits: AppLimits, slots: GpuSlots,
                       run: RunJob, keep: Keep,
                       on_wait: WaitReport = lambda wait: None) -> tuple[Path, Path]:
    """/segment_image: the ZIP of masks, cut-outs and COCO JSON, and the results JSON, where `keep` placed them."""
    return _on_gpu(slots, run, "segment_image", plan_segment_image(image, prompts, options, limits), on_wait, keep)


def find_objects_call(source: Optional[str], frame: Any, options: str, limits: AppLimits, slots: GpuSlots,
                      run: RunJob, keep: Keep,
                      on_wait: WaitReport = lambda wait: None) -> Path:
    """/find_objects: the proposals JSON, where `keep` placed it."""
    return _on_gpu(slots, run, "find_objects", plan_find_objects(source, frame, options, limits), on_wait, keep)[1]


def _on_gpu(slots: GpuSlots, run: RunJob, mode: JobMode, request: SegmentRequest | FindRequest,
            on_wait: WaitReport, keep: Keep) -> tuple[Path, Path]:
    """The request's job run on a short GPU call, in a work folder of its own; its ZIP and JSON as kept."""
    folder = WorkDir.create("image")
    try:
        with slots.short_call() as turn:
            for wait in turn:
                on_wait(wait)
            outcome = run(JobSpec(mode, request).in_folder(folder.path))
        return Path(keep(outcome.files.archive)), Path(keep(outcome.files.document))
    finally:
        folder.close()
