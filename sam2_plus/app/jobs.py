"""A job (`sam2_plus.jobs.JobSpec`) run and streamed as `JobUpdate`s (progress, live frames, and at the end the
result files). `run_job` is pure (a checked spec and files in, files out), so ZeroGPU can run it in another
process; Stop is a file (`StopSignal`) for the same reason. Each mode has one entry in `RUNNERS`: how it runs and
how much GPU time it asks for (`job_gpu_seconds`). A tracking job is the service's `run_tracking` in a worker
thread; a still-image job (segment_image, find_objects) is one call of sam2_plus.segment, one update."""

from __future__ import annotations

import html
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..effects.outputs import EffectOutputs
from ..effects.render import EffectRenderer
from ..effects.settings import EffectSettings
from ..media import export
from ..media.decode import FrameSource
from ..media.render import TrackRenderer
from ..review import ObservationLog, ReviewReport
from ..jobs import JobMode, JobSpec
from ..provider import ModelProvider, shared_models
from ..service import StepCallback, TrackFailed, TrackOutputs, TrackProgress, TrackSummary, run_tracking
from ..discovery.tracking import DiscoveryReport
from ..segment import FindOutcome, SegmentOutcome, run_find_objects, run_segment_image
from .find_panel import FrameFindOutcome, run_frame_find
from .gpu_time import find_frame_gpu_seconds, find_gpu_seconds, segment_gpu_seconds, tracking_gpu_seconds
from .workdirs import StopSignal

VIEW_CACHE_BYTES = 48 * 1024 * 1024  # decoded frames kept for the live frames of a job
PROGRESS_INTERVAL = 0.25  # seconds between progress updates of a job
LIVE_FRAME_INTERVAL = 1.0  # seconds between live frames of a job
OUTPUT_NAMES = {"overlay": "sam2plus_overlay.mp4", "export": "sam2plus_results.zip",
                "json": "sam2plus_results.json", "records": "records.jsonl"}  # records: not a download
EFFECT_NAMES = {"effect": "sam2plus_effect.mp4", "cutout_webm": "sam2plus_cutout.webm",
                "cutout_mov": "sam2plus_cutout.mov"}  # also added to the results ZIP (/track returns one ZIP)


@dataclass(frozen=True)
class JobFiles:
    overlay: Optional[Path] = None
    export: Optional[Path] = None
    results_json: Optional[Path] = None
    effect: Optional[Path] = None  # the effect video, when effects were chosen
    cutouts: tuple[Path, ...] = ()  # the cut-out videos (WebM, MOV), when the background was erased
    records: Optional[Path] = None  # the frames' results, lossless, for a re-render (outputs.RecordWriter)

    @property
    def video(self) -> Optional[Path]:
        """The video to show: the effect video when there is one, else the overlay."""
        return self.effect or self.overlay

    def downloads(self) -> list[str]:
        files = (self.export, self.results_json, self.overlay, self.effect, *self.cutouts)
        return [str(p) for p in files if p is not None]

    def all_within(self, folder: Path) -> bool:
        files = (self.overlay, self.export, self.results_json, self.effect, *self.cutouts)
        return any(p is not None and folder in p.parents for p in files)


@dataclass(frozen=True)
class RenderSettings:
    """What a run's files show besides its masks: the effects (None: no effect video, no cut-outs) and the
    export formats in the results ZIP. The app re-renders the files from the records when these change."""

    effects: Optional[EffectSettings] = None
    export_formats: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobResult:
    files: JobFiles
    summary: str  # TrackSummary.describe()
    stopped: bool
    frames_done: int
    frames_total: int
    first_frame: Optional[int]
    last_frame: Optional[int]
    failure: Optional[str] = None  # the model failed during tracking: what happened (TrackSummary.failure)
    out_of_memory: bool = False
    failed_after: str = ""  # "after frame N" / "before the first frame"
    review: Optional[ReviewReport] = None  # per-object timelines and flagged frames of the tracked frames
    removed: Mapping[int, int] = field(default_factory=dict)  # objects removed mid-run -> first frame without them
    rendered: RenderSettings = RenderSettings()  # what the files show
    tracking_seconds: float = 0.0  # the model's time for the tracked frames (TrackSummary.tracking_seconds)
    discovery: Optional[DiscoveryReport] = None  # what the job found by itself (TrackSummary.discovery)

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def describe(self) -> str:
        """One line for people: how the job ended."""
        kept = f"{self.frames_done} of {self.frames_total} frames tracked; the results hold them"
        if self.out_of_memory:
            return (f"Out of memory {self.failed_after}: {kept}. Track fewer objects or a shorter or smaller "
                    "video, or try again later.")
        if self.failed:
            return f"Tracking failed {self.failed_after} ({self.failure}): {kept}. Track again to retry."
        if self.stopped:
            return f"Stopped: {kept}."
        return f"Done: {self.frames_done} frames tracked."


@dataclass(frozen=True)
class JobUpdate:
    """One event of a job: progress, optionally a live frame, and at the end the result (a still-image job
    has only that)."""

    progress: Optional[TrackProgress] = None
    frame: Optional[np.ndarray] = None  # the latest tracked frame with its results drawn
    frame_idx: Optional[int] = None
    review: Optional[ReviewReport] = None  # the timelines so far (with the live frame)
    result: Optional[JobResult | SegmentOutcome | FindOutcome | FrameFindOutcome] = None


JobRunner = Callable[..., Iterator[JobUpdate]]  # run_job's: (spec, models, between_steps=None)


def job_outputs(job_dir: str | os.PathLike, export_formats: tuple[str, ...] = (),
                effects: Optional[EffectSettings] = None) -> TrackOutputs:
    folder = Path(job_dir)
    export_zip = folder / OUTPUT_NAMES["export"]
    effect_outputs = None if effects is None else EffectOutputs.in_folder(effects, folder, export_zip,
                                                                          EFFECT_NAMES, bundle=True)
    return TrackOutputs(overlay=folder / OUTPUT_NAMES["overlay"], export=export_zip,
                        results_json=folder / OUTPUT_NAMES["json"], export_formats=export_formats,
                        effects=effect_outputs, records=folder / OUTPUT_NAMES["records"])


def run_job(spec: JobSpec, models: Optional[ModelProvider] = None,
            between_steps: Optional[StepCallback] = None) -> Iterator[JobUpdate]:
    """Run a checked job (`plan.plan_job`) by its mode's runner on `models` (default: the process's shared
    ModelCache) and stream its updates, the last with the result. `between_steps()` runs before each step of the
    model, while it is idle (the app's GPU slots lend the model there: gpu_slots.Lender)."""
    return _runner(spec).run(spec, models or shared_models(), between_steps)


def job_gpu_seconds(spec: JobSpec, *_: Any, **__: Any) -> int:
    """The GPU seconds a checked job asks for; also `spaces.GPU(duration=...)` of the app's job function, which
    calls it with that function's own arguments."""
    return _runner(spec).gpu_seconds(spec)


def track_job(spec: JobSpec, models: ModelProvider,
              between_steps: Optional[StepCallback] = None) -> Iterator[JobUpdate]:
    """A tracking job through the service in a worker thread, its progress streamed; the spec's export formats
    go into the results ZIP, its effects make the effect video and cut-outs (both checked by the plan too).

    Stop: the job ends at the next frame when the spec's stop file exists, or when this generator is closed;
    either way the outputs hold the frames tracked so far and are complete files."""
    request, job_dir = spec.request, spec.folder()
    outputs = job_outputs(job_dir, spec.export_formats, spec.effects)
    stop = StopSignal(Path(spec.stop_file)) if spec.stop_file else None
    removed = RemovedObjects.of(job_dir)
    closed = threading.Event()
    events: "queue.Queue[Any]" = queue.Queue()
    latest = _Latest(request.tasks)

    def work() -> None:
        try:
            summary = run_tracking(request, outputs, progress=events.put,
                                   should_stop=lambda: closed.is_set() or (stop is not None and stop.is_set()),
                                   on_result=latest.set, removed=removed.read,
                                   between_steps=between_steps, models=models)
            events.put(summary)
        except BaseException as error:  # handed to the consumer, raised there
            events.put(error)

    worker = threading.Thread(target=work, name="sam2plus-job", daemon=True)
    worker.start()
    try:
        yield from _stream(events, latest, request.video, live_renderer(request.tasks, spec.effects),
                           RenderSettings(spec.effects, spec.export_formats))
    finally:
        closed.set()
        worker.join()


@dataclass(frozen=True)
class ModeRunner:
    """How the jobs of one mode run (streamed updates, the last with the result) and the GPU seconds they ask."""

    run: Callable[[JobSpec, ModelProvider, Optional[StepCallback]], Iterator[JobUpdate]]
    gpu_seconds: Callable[[JobSpec], int]


def segment_job(spec: JobSpec, models: ModelProvider,
                between_steps: Optional[StepCallback] = None) -> Iterator[JobUpdate]:
    """A segment_image job: its objects' masks and files (sam2_plus.segment) in the job's folder."""
    yield JobUpdate(result=run_segment_image(spec.request, spec.folder(), models))


def find_job(spec: JobSpec, models: ModelProvider,
             between_steps: Optional[StepCallback] = None) -> Iterator[JobUpdate]:
    """A find_objects job: the proposals and their files (sam2_plus.segment) in the job's folder."""
    yield JobUpdate(result=run_find_objects(spec.request, spec.folder(), models))


def find_frame_job(spec: JobSpec, models: ModelProvider,
                   between_steps: Optional[StepCallback] = None) -> Iterator[JobUpdate]:
    """The page's Find on one frame: the objects its discovery settings' finder finds there (no files)."""
    yield JobUpdate(result=run_frame_find(spec.request, models))


RUNNERS: dict[JobMode, ModeRunner] = {
    "track": ModeRunner(track_job, tracking_gpu_seconds),
    "segment_image": ModeRunner(segment_job, segment_gpu_seconds),
    "find_objects": ModeRunner(find_job, find_gpu_seconds),
    "find_frame": ModeRunner(find_frame_job, find_frame_gpu_seconds),
}


def job_result(updates: Iterator[JobUpdate]) -> Any:
    """The result of a job's updates (the last one's), for a caller that shows no progress."""
    result = None
    for update in updates:
        result = update.result if update.result is not None else result
    return result


def _runner(spec: JobSpec) -> ModeRunner:
    try:
        return RUNNERS[spec.mode]
    except KeyError:
        raise ValueError(f"this app runs no {spec.mode} job (it runs {', '.join(RUNNERS)})") from None


@dataclass(frozen=True)
class RemovedObjects:
    """The objects removed while their job runs: a file in the job's folder (a file, like StopSignal, so that a
    job in another process sees it). The service asks `read` before every frame: from the next frame on they
    are absent from the job's results, review and live frames (`service.run_tracking`'s `removed`)."""

    path: Path

    @classmethod
    def of(cls, job_dir: str | os.PathLike) -> "RemovedObjects":
        return cls(Path(job_dir) / "removed-objects.json")

    def add(self, obj_id: int) -> None:
        ids = sorted(self.read() | {int(obj_id)})
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(ids))
        os.replace(partial, self.path)  # the job never reads a half-written list

    def read(self) -> frozenset[int]:
        try:
            return frozenset(int(i) for i in json.loads(self.path.read_text()))
        except FileNotFoundError:
            return frozenset()


class _Latest:
    """The newest tracked frame and the observations of every tracked frame, set by the job's thread and read
    by the stream."""

    def __init__(self, tasks: Mapping[int, str]) -> None:
        self.value: Optional[export.FrameRecord] = None
        self.log = ObservationLog(tasks)

    def set(self, result: export.FrameRecord) -> None:
        self.log.add(result)
        self.value = result


def live_renderer(tasks: Mapping[int, str],
                  effects: Optional[EffectSettings]) -> TrackRenderer | EffectRenderer:
    """What the live frames show: the effects when chosen, else the overlay."""
    return TrackRenderer(tasks) if effects is None else EffectRenderer(effects, tasks)


def _stream(events: "queue.Queue[Any]", latest: _Latest, video: Path, renderer: TrackRenderer | EffectRenderer,
            rendered: RenderSettings) -> Iterator[JobUpdate]:
    last_progress = last_frame = 0.0
    last_phase = ""
    with FrameSource(video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        while True:
            item = events.get()
            if isinstance(item, TrackFailed):  # the outputs hold the frames tracked before the failure
                yield JobUpdate(result=_job_result(item.summary, rendered))
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, TrackSummary):
                yield JobUpdate(result=_job_result(item, rendered))
                return
            now = time.monotonic()
            if item.phase == last_phase == "tracking" and now - last_progress < PROGRESS_INTERVAL:
                continue  # every change of phase is shown
            last_progress, last_phase = now, item.phase
            result = latest.value
            if result is None or now - last_frame < LIVE_FRAME_INTERVAL:
                yield JobUpdate(progress=item)
                continue
            last_frame = now
            yield JobUpdate(progress=item, frame=renderer.render(frames[result.frame_idx], result),
                            frame_idx=result.frame_idx, review=latest.log.report())


def _job_result(summary: TrackSummary, rendered: RenderSettings) -> JobResult:
    written = summary.written
    cutouts = tuple(written[name] for name in ("cutout_webm", "cutout_mov") if name in written)
    files = JobFiles(written.get("overlay"), written.get("export"), written.get("json"), written.get("effect"),
                     cutouts, written.get("records"))
    return JobResult(files, summary.describe(), summary.stopped, summary.frames_done, summary.frames_total,
                     summary.first_frame, summary.last_frame, summary.failure, summary.out_of_memory,
                     summary.after_last_frame(), summary.review, dict(summary.removed), rendered,
                     summary.tracking_seconds, summary.discovery)


def describe_progress(progress: TrackProgress) -> str:
    if progress.phase == "loading":
        return "Loading the model…"
    if progress.phase == "prompting":
        step = progress.prompt
        return "Adding the prompts…" if step is None else f"Adding the prompts: {step.describe()}…"
    if progress.phase == "finding":
        return (f"Finding new objects on frame {progress.frame_idx} (tracked {progress.frames_done} / "
                f"{progress.frames_total} frames)…")
    if progress.phase == "writing":
        return f"Writing the results of {progress.frames_done} frames…"
    text = f"Tracking: {progress.frames_done} / {progress.frames_total} frames ({100 * progress.fraction:.0f} %)"
    if progress.frames_done >= progress.frames_total:
        return text
    if progress.eta is None or not progress.frames_per_second:  # the service gives it once it is measured
        return text + ", estimating the time left…"
    return text + f", {format_rate(progress.frames_per_second)}, about {format_seconds(progress.eta)} left"


def format_rate(frames_per_second: float) -> str:
    """Frames per second, or seconds per frame when under one frame a second (never "0.0 frames/s")."""
    if frames_per_second >= 1:
        return f"{frames_per_second:.1f} frames/s"
    return f"{1 / frames_per_second:.1f} s/frame"


def progress_html(text: str, progress: Optional[TrackProgress] = None) -> str:
    """The progress line for people: a bar of the frames done (while tracking) or of the prompts added (while
    adding them) above the text."""
    line = f'<div class="progress-text">{html.escape(text)}</div>'
    if progress is not None and progress.phase in ("tracking", "finding", "writing"):
        done, total = progress.frames_done, progress.frames_total
    elif progress is not None and progress.phase == "prompting" and progress.prompt is not None:
        done, total = progress.prompt.number - 1, progress.prompt.total
    else:
        return line
    return bar_html(done, total) + line


def bar_html(done: int, total: int) -> str:
    """A progress bar of `done` out of `total` (frames, prompts)."""
    return f'<progress value="{done}" max="{max(1, total)}" style="width:100%;height:0.9em"></progress>'


def counted(count: int, noun: str) -> str:
    """'1 frame', '3 frames'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"
