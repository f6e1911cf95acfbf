"""One video of a batch, wherever it runs (in the driver, a worker process, a Ray actor): its outputs are
staged, tracked with `sam2_plus.service` (whose cache keeps each worker's model loaded once), and published;
any failure of the video becomes its record's error and the batch goes on."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import INPUT_ERRORS, one_line
from ..prompts import PromptError
from ..provider import ModelProvider
from ..service import TrackFailed, TrackSummary, prepare_request, run_tracking
from ..track import UsageError, folder_outputs, read_prompts_text
from ..weights import WeightsSource
from .manifest import VideoJob
from .store import DONE, FAILED, PENDING, STOPPED, OutputStore, VideoRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoProgress:
    """A running video's frames, for the progress display."""

    name: str
    frames_done: int
    frames_total: int


ProgressSink = Callable[[VideoProgress], None]


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of a run shares: the output folder and the weights (resolved by the driver), and the
    model provider (None: each worker process's shared ModelCache; a provider of the caller's serves the
    in-process runner)."""

    store: OutputStore
    weights: WeightsSource
    models: Optional[ModelProvider] = None


def track_video(job: VideoJob, setup: WorkerSetup, device: Optional[str], progress: ProgressSink,
                should_stop: Callable[[], bool]) -> VideoRecord:
    """Track one manifest line into DIR/<name>; never raises for a bad video, prompt or model failure.
    A job that comes after a stop request is not started (PENDING)."""
    if should_stop():
        return VideoRecord.of(job, PENDING)
    started = time.perf_counter()
    staged = setup.store.stage(job)
    try:
        summary = _track_into(staged, job, setup, device, progress, should_stop)
        if not summary.stopped:
            setup.store.publish(job, staged)
        return VideoRecord.of(job, STOPPED if summary.stopped else DONE, frames=summary.frames_done,
                              objects=len(summary.tasks), seconds=time.perf_counter() - started)
    except (UsageError, TrackFailed, OSError, *INPUT_ERRORS) as e:
        error = f"invalid prompts: {one_line(e)}" if isinstance(e, PromptError) else one_line(e)
        return VideoRecord.of(job, FAILED, seconds=time.perf_counter() - started, error=error)
    except Exception as e:  # a fault of ours: this video fails with it, the batch goes on
        log.exception("video %s (manifest line %d) failed", job.name, job.line)
        return VideoRecord.of(job, FAILED, seconds=time.perf_counter() - started,
                              error=f"internal error: {one_line(e)}")
    finally:
        setup.store.discard(staged)  # gone already when it was published


def _track_into(staged: Path, job: VideoJob, setup: WorkerSetup, device: Optional[str], progress: ProgressSink,
                should_stop: Callable[[], bool]) -> TrackSummary:
    prompts = None if job.prompts is None else read_prompts_text(job.prompts, label="prompts")
    request = prepare_request(job.video, prompts, model=job.model, device=device, weights=setup.weights,
                              motion_aware=job.motion_aware, max_frames=job.max_frames, discovery=job.find)
    report = lambda p: progress(VideoProgress(job.name, p.frames_done, p.frames_total))  # noqa: E731
    outputs = folder_outputs(staged, job.outputs, export_formats=job.export_formats)
    return run_tracking(request, outputs, progress=report, should_stop=should_stop, models=setup.models)
