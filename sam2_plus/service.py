"""The tracking job shared by the CLI (`python -m sam2_plus.track`) and the app.

    request = prepare_request("video.mp4", prompts_json, model="sam2++")
    summary = run_tracking(request, TrackOutputs(overlay="overlay.mp4", export="results.zip"),
                           progress=print, should_stop=lambda: False)

`prepare_request` is where a job's input is checked, once: it probes the video, parses the prompts against
it and checks the model, its tasks, the device and the weights; the `TrackRequest` it returns (sam2_plus/jobs.py,
where the app's `JobSpec` carries it) is carried, checked, to `run_tracking`. That checks the output paths,
gets a predictor from the model provider it is given (default: `provider.shared_models()`, each network built
once per (model, device, weights) and kept in-process), adds every object's prompts in frame order, and tracks
backward from the earliest prompted frame (when it is after frame 0) and then forward from it. Each
frame's result goes at once, in frame order, to the overlay video and the exports; only the frames of the
backward pass are parked (on disk) until they can be written in order. `should_stop()` is asked between
frames: what was computed is still written and every output file is finished and readable. When the model
fails during tracking (an exception, the GPU running out of memory), the job ends the same way and then
raises `TrackFailed`, whose `summary` describes the frames written before the failure. `removed()` (the app's
objects removed during a run) is asked before every frame too: from the next frame written on, a removed
object is absent from every output (no rows, no review flags) and the summary no longer counts it as tracked.
`between_steps()` is called before each prompt and each frame, while the model is idle (the app
lends the model to previews there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .config import canonical_model_name, feature_problem, load_config
from .discovery.finder import Finder
from .discovery.settings import DiscoverySettings
from .discovery.tracking import DiscoveringPass, DiscoveryReport
from .effects.outputs import EffectOutputs, EffectWriter
from .effects.settings import EffectError
from .errors import TrackError, describe_error, is_out_of_memory
from .exports import ExportError, ExportFormatError, check_export_formats
from .jobs import TrackRequest
from .media import export
from .media.decode import FrameSource, MediaError, VideoInfo, probe
from .outputs import OutputSet, OverlayVideoWriter, RecordWriter, ResultSpool, open_export
from .video.predictor import FrameResult, TrackingSession
from .prompts import ObjectPrompts, PromptError, parse_prompts
from .provider import ModelProvider, TrackingPredictor, resolve_device, shared_models
from .review import ReviewReport, ReviewTracker
from .weights import WEIGHTS_ENV, CheckpointError, WeightsSource, weights_from_env

log = logging.getLogger(__name__)

FOLDER_OUTPUTS = ("export", "cutout_png")  # outputs that are a .zip or else a folder


class TrackFailed(RuntimeError):
    """The model failed during tracking (an exception, out of memory). The outputs were still finished:
    `summary` describes the frames tracked before the failure, which they hold; the cause is chained."""

    def __init__(self, summary: "TrackSummary") -> None:
        super().__init__(f"tracking failed {summary.after_last_frame()}: {summary.failure}")
        self.summary = summary


@dataclass(frozen=True)
class TrackOutputs:
    """Where results go; None skips an output."""

    overlay: Optional[Path] = None  # MP4 with the results drawn on the video
    export: Optional[Path] = None  # ".zip": masks, DAVIS PNGs, results.json, boxes.csv, lasot/, points.npz;
    #                                any other path: a folder with the same files (masks.zip for the PNGs)
    results_json: Optional[Path] = None  # the results JSON on its own
    keep_audio: bool = True  # copy the source's audio into the overlay (and the effect video)
    export_formats: tuple[str, ...] = ()  # tools' formats added to the export (sam2_plus.exports: cvat, coco, ...)
    effects: Optional[EffectOutputs] = None  # the effect video and cut-outs (sam2_plus/effects)
    records: Optional[Path] = None  # every written frame's results, lossless (outputs.RecordWriter): the app
    #                                 re-renders effects and export formats from it without the model

    def paths(self) -> dict[str, Path]:
        named = {"overlay": self.overlay, "export": self.export, "json": self.results_json,
                 "records": self.records}
        paths = {name: Path(path) for name, path in named.items() if path is not None}
        if self.effects is not None:  # a PNG sequence may go into the export's ZIP
            paths.update((name, p) for name, p in self.effects.paths().items() if p != paths.get("export"))
        return paths


@dataclass(frozen=True)
class PromptStep:
    """The prompt a job is adding (its "prompting" phase can take a model pass per prompted frame)."""

    number: int  # 1-based, in the order the prompts are added (frame order)
    total: int  # prompts of the job
    obj_id: int
    object_number: int  # 1-based position of the object among the request's objects
    objects: int
    frame: int

    def describe(self) -> str:
        return (f"object {self.object_number} of {self.objects} (id {self.obj_id}) on frame {self.frame}, "
                f"prompt {self.number} of {self.total}")


@dataclass(frozen=True)
class TrackProgress:
    phase: str  # "loading" (the model), "prompting", "tracking"; a job that finds objects: "finding" (on the
    #             keyframe frame_idx) and, once tracking ends, "writing" (its outputs)
    frames_done: int
    frames_total: int
    elapsed: float  # seconds since the job started
    eta: Optional[float] = None  # seconds still needed, once the speed is measured (ETA_MIN_FRAMES, ETA_MIN_SECONDS)
    frame_idx: Optional[int] = None  # the frame just tracked
    frames_per_second: Optional[float] = None  # tracking speed so far
    prompt: Optional[PromptStep] = None  # while prompting: the prompt being added

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0


@dataclass(frozen=True)
class TrackSummary:
    video: VideoInfo  # as tracked (max_frames applied)
    model: str
    device: str
    weights: WeightsSource
    tasks: Mapping[int, str]  # object id -> task
    frames_total: int
    frames_done: int  # frames tracked and written
    first_frame: Optional[int]  # the written frames are first_frame..last_frame
    last_frame: Optional[int]
    stopped: bool  # should_stop() ended the job early
    stopped_at: Optional[int]  # when stopped or failed: the last frame tracked
    seconds: float  # the whole job
    model_seconds: float  # inside the predictor (prompts and propagation)
    load_seconds: float  # building the predictor (0 when it was cached)
    written: Mapping[str, Path] = field(default_factory=dict)  # TrackOutputs.paths() name -> path
    failure: Optional[str] = None  # when the model failed during tracking: what happened
    out_of_memory: bool = False  # ... and it was the GPU (or the CPU) running out of memory
    review: Optional[ReviewReport] = None  # flagged frames and per-object timelines of the written frames
    removed: Mapping[int, int] = field(default_factory=dict)  # removed during the run: id -> first frame without it
    tracking_seconds: float = 0.0  # inside the predictor for the tracked frames (not the prompts)
    discovery: Optional[DiscoveryReport] = None  # what a job that finds objects found (its objects are in tasks)

    @property
    def objects(self) -> tuple[int, ...]:
        return tuple(self.tasks)

    @property
    def tracked(self) -> dict[int, str]:
        """The objects tracked to the end (object id -> task): all but the removed ones."""
        return {obj_id: task for obj_id, task in self.tasks.items() if obj_id not in self.removed}

    def describe(self) -> str:
        """A few lines for people: what was tracked, how long it took, where the files are."""
        tracked = self.tracked
        objects = ", ".join(f"{obj_id} ({task})" for obj_id, task in tracked.items()) or "none"
        span = "" if self.first_frame is None else f", frames {self.first_frame}-{self.last_frame}"
        lines = [f"tracked {self.frames_done} of {self.frames_total} frames{span}; "
                 f"{len(tracked)} object{'s' if len(tracked) != 1 else ''}: {objects}"]
        lines.extend(f"removed during the run: object {obj_id} ({self.tasks.get(obj_id, 'mask')}), absent from "
                     f"frame {frame} on" for obj_id, frame in self.removed.items())
        if self.failure is not None:
            lines.append(f"failed {self.after_last_frame()}: {self.failure}; the outputs hold the frames tracked "
                         "before it")
        elif self.stopped:
            where = "before the first frame" if self.stopped_at is None else f"at frame {self.stopped_at}"
            lines.append(f"stopped on request {where}; the outputs hold the frames tracked so far")
        rate = self.frames_done / self.seconds if self.seconds > 0 else 0.0
        lines.append(f"model {self.model} on {self.device}, weights: {self.weights.describe()}")
        lines.append(f"time: {self.seconds:.1f} s total ({rate:.2f} frames/s), {self.model_seconds:.1f} s in "
                     f"the model (prompts and tracking), {self.load_seconds:.1f} s loading it, "
                     f"{max(self.seconds - self.model_seconds - self.load_seconds, 0.0):.1f} s decoding and writing")
        if self.discovery is not None:
            lines.extend(self.discovery.describe())
        if self.review is not None:
            lines.append(f"review: {self.review.flag_count} flag{'s' if self.review.flag_count != 1 else ''}")
            lines.extend(f"  {line}" for line in self.review.describe())
        for name, path in self.written.items():
            lines.append(f"wrote {name}: {path}")
        return "\n".join(lines)

    def after_last_frame(self) -> str:
        """Where a stop or failure came: "after frame N" (the last frame tracked), or "before the first frame"."""
        return "before the first frame" if self.stopped_at is None else f"after frame {self.stopped_at}"


ProgressCallback = Callable[[TrackProgress], Any]
StopCallback = Callable[[], bool]
ResultCallback = Callable[[export.FrameRecord], Any]
RemovedCallback = Callable[[], Collection[int]]  # the ids of the objects removed so far
StepCallback = Callable[[], None]  # between two steps of the model


# --------------------------------------------------------------------------- requests


def prepare_request(video, prompts, *, model: str = "sam2++", device: Optional[str] = None,
                    weights: Optional[WeightsSource] = None, motion_aware: bool = False,
                    max_frames: Optional[int] = None, info: Optional[VideoInfo] = None,
                    discovery: Optional[DiscoverySettings] = None) -> TrackRequest:
    """The checked request: `video` probed (`info`: what a caller that probed it already found, max_frames
    applied), `prompts` (JSON text or dict, the prompts.py format) parsed against it, the model and its
    tasks, the device and the weights (default: SAM2PLUS_WEIGHTS; a checkpoint file must exist). With
    `discovery` (objects the job finds by itself) the prompts may be None or hold no objects. Raises
    MediaError, PromptError, TrackError or CheckpointError."""
    if info is None:
        info = probe(video, max_frames=max_frames)
    finds = discovery is not None
    objects = () if finds and prompts is None else tuple(parse_prompts(prompts, info, allow_empty=finds))
    model = check_model(model, {obj.obj_id: obj.task for obj in objects})
    problem = feature_problem(model, motion_aware=motion_aware, finds=finds)
    if problem:
        raise TrackError(problem)
    if finds:
        check_discovery(discovery, model, [obj.obj_id for obj in objects])
    resolve_device(device)
    weights = weights or weights_from_env()
    check_weights(weights)
    return TrackRequest(Path(video), info, objects, model, weights, device, motion_aware, max_frames, discovery)


def check_discovery(discovery: DiscoverySettings, model: str, obj_ids: Collection[int]) -> None:
    """The found objects' task must be the model's, the hidden objects the request's, and there must be room for
    one more object; TrackError otherwise."""
    supported = load_config(model).tasks
    if discovery.task not in supported:
        raise TrackError(f"find: model {model} has no {discovery.task!r} task for the found objects (it supports "
                         f"{', '.join(supported)})")
    unknown = sorted(set(discovery.hidden) - set(obj_ids))
    if unknown:
        raise TrackError(f"find: 'hidden' names object {unknown[0]}, which the prompts do not have")
    if len(obj_ids) >= discovery.max_objects:
        raise TrackError(f"find: the job already has {len(obj_ids)} objects, the most it may hold "
                         f"(max_objects {discovery.max_objects}); no object could be found")


class ModelTaskError(PromptError):
    """An object's task that the model cannot track (the message is the prompts JSON's wording)."""

    def __init__(self, obj_id: int, model: str, task: str, supported: Sequence[str]) -> None:
        super().__init__(f"object {obj_id}: model {model} has no {task!r} task (it supports "
                         f"{', '.join(supported)}); use sam2++ for the box and point tasks")
        self.obj_id, self.model, self.task, self.supported = obj_id, model, task, tuple(supported)

    def __reduce__(self):  # picklable (an error may cross to another process on ZeroGPU)
        return type(self), (self.obj_id, self.model, self.task, self.supported)


def check_model(model: str, tasks: Mapping[int, str]) -> str:
    """The canonical model name; TrackError for an unknown model, ModelTaskError for a task it lacks."""
    try:
        name = canonical_model_name(model)
    except ValueError as e:
        raise TrackError(str(e)) from None
    supported = load_config(name).tasks
    for obj_id, task in tasks.items():
        if task not in supported:
            raise ModelTaskError(obj_id, name, task, supported)
    return name


def check_weights(weights: WeightsSource) -> None:
    """Fail before building a model when a checkpoint file is missing."""
    if weights.kind == "file" and not Path(weights.path).is_file():
        raise CheckpointError(f"checkpoint file not found: {weights.path}",
                              f"checkpoint file not found: {weights.path} ({WEIGHTS_ENV}); set {WEIGHTS_ENV} to "
                              "an existing checkpoint file, hub or seeded and restart the app")


def check_outputs(outputs: TrackOutputs, video: Path) -> None:
    """Output paths must differ from the video and from each other; their folders are created."""
    paths = outputs.paths()
    source = Path(video).resolve()
    seen: dict[Path, str] = {}
    for name, path in paths.items():
        resolved = path.resolve()
        if resolved == source:
            raise TrackError(f"the {name} output {path} would overwrite the input video")
        if resolved in seen:
            raise TrackError(f"the {name} and {seen[resolved]} outputs are both {path}")
        seen[resolved] = name
        zip_or_folder = name in FOLDER_OUTPUTS
        if not zip_or_folder and path.is_dir():
            raise TrackError(f"the {name} output {path} is a folder; give a file name")
        folder = path.parent if (not zip_or_folder or path.suffix.lower() == ".zip") else path
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackError(f"cannot create the folder for the {name} output {path}: {e.strerror or e}") from None


def check_export_options(outputs: TrackOutputs, tasks: Mapping[int, str]) -> None:
    """The export formats: known names, an export to hold them, objects they can hold (TrackError)."""
    if not outputs.export_formats:
        return
    if outputs.export is None:
        raise TrackError(f"the export formats ({', '.join(outputs.export_formats)}) go into the export; "
                         "ask for the export output too")
    try:
        check_export_formats(outputs.export_formats, tasks)
    except (ExportFormatError, ExportError) as e:
        raise TrackError(str(e)) from None


def check_effects(outputs: TrackOutputs, tasks: Mapping[int, str]) -> None:
    """The effects name only tracked objects (TrackError) and the cut-outs' encoders exist (EncodeError)."""
    if outputs.effects is None:
        return
    try:
        outputs.effects.settings.check_objects(tasks)
    except EffectError as e:
        raise TrackError(str(e)) from None
    outputs.effects.check()


# --------------------------------------------------------------------------- results


def to_frame_record(result: FrameResult) -> export.FrameRecord:
    """The predictor's result (tensors) as media.export's (numpy). Boxes come from SAM 2++'s box head
    for box-task objects and from the mask otherwise (none for an empty mask); the point is the
    predictor's; the score is the presence probability (sigmoid of the object score logit)."""
    count = len(result.obj_ids)
    tasks = list(result.tasks) or ["mask"] * count
    boxes = np.full((count, 4), np.nan, np.float32)
    if result.boxes is not None:
        for i, task in enumerate(tasks):
            if task == "box":
                boxes[i] = result.boxes[i].detach().float().cpu().numpy()
    points = (np.full((count, 2), np.nan, np.float32) if result.points is None
              else result.points.detach().float().cpu().numpy())
    return export.FrameRecord(
        frame_idx=result.frame_idx,
        obj_ids=result.obj_ids,
        masks=result.masks.cpu().numpy(),
        boxes=boxes,
        points=points,
        scores=torch.sigmoid(result.object_scores.detach().float()).cpu().numpy(),
        visible=result.visible.cpu().numpy(),
        motion_scores=None if result.motion_scores is None else result.motion_scores.cpu().numpy(),
    )


# --------------------------------------------------------------------------- the job


# The time left is given once the speed is measured over this many frames and seconds of tracking: the first
# frames can be much faster or slower than the rest (a prompted frame only reports its prompt's result).
ETA_MIN_FRAMES = 3
ETA_MIN_SECONDS = 2.0


class _Removals:
    """Objects removed during a run (`removed()`, asked once per frame): left out of every frame's record
    from then on, and the first frame of the outputs without each."""

    def __init__(self, removed: Optional[RemovedCallback], hidden: Collection[int] = ()) -> None:
        self.removed = removed
        self.hidden = frozenset(hidden)  # objects tracked unseen (discovery's), left out of every frame
        self.first_frame: dict[int, int] = {}  # object id -> the first written frame without it

    def apply(self, record: export.FrameRecord) -> export.FrameRecord:
        record = record.without(self.hidden)
        if self.removed is None:
            return record
        gone = {int(obj_id) for obj_id in self.removed()} & set(record.obj_ids)
        for obj_id in gone:
            # frames are passed on in frame order except a backward pass's, which all wait (spooled) and go
            # through here again when written: the smallest frame left out is the first written without it
            self.first_frame[obj_id] = min(self.first_frame.get(obj_id, record.frame_idx), record.frame_idx)
        return record.without(gone)


class _Job:
    """Clock, counters and callbacks of one run."""

    def __init__(self, frames_total: int, progress: Optional[ProgressCallback],
                 should_stop: Optional[StopCallback], on_result: Optional[ResultCallback] = None,
                 removed: Optional[RemovedCallback] = None, between_steps: Optional[StepCallback] = None,
                 hidden: Collection[int] = ()) -> None:
        self.started = time.perf_counter()
        self.frames_total = frames_total
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        self.on_result = on_result
        self.removals = _Removals(removed, hidden)
        self.between_steps = between_steps or (lambda: None)
        self.model_seconds = 0.0
        self.load_seconds = 0.0
        self.frames_done = 0
        self.tracking_seconds = 0.0  # model time of the tracked frames, for the ETA
        self.stopped = False
        self.stopped_at: Optional[int] = None  # the last frame tracked when stopped or failed
        self.last_tracked: Optional[int] = None
        self.failure: Optional[Exception] = None  # the model's error that ended the job

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timed(self, fn: Callable, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.model_seconds += time.perf_counter() - start

    def report(self, phase: str, frame_idx: Optional[int] = None, prompt: Optional[PromptStep] = None) -> None:
        if self.progress is None:
            return
        eta = rate = None
        if self.frames_done and self.tracking_seconds > 0:
            rate = self.frames_done / self.tracking_seconds
            measured = self.frames_done >= ETA_MIN_FRAMES and self.tracking_seconds >= ETA_MIN_SECONDS
            if measured or self.frames_done >= self.frames_total:
                eta = (self.frames_total - self.frames_done) / rate
        self.progress(TrackProgress(phase, self.frames_done, self.frames_total, self.elapsed(), eta, frame_idx,
                                    rate, prompt))

    @property
    def ended_early(self) -> bool:
        return self.stopped or self.failure is not None

    def run_pass(self, results: Iterator[FrameResult], write: Callable[[export.FrameRecord], None],
                 skip_frame: Optional[int] = None) -> None:
        """Pull frames from a propagation until it ends, should_stop() says so or the model fails."""
        try:
            while self._go_on():
                start = time.perf_counter()
                result = self._next_result(results)
                if result is None:
                    return
                if result.frame_idx == skip_frame:
                    continue
                self.tracking_seconds += time.perf_counter() - start
                result = self.removals.apply(result)
                write(result)
                if self.on_result is not None:
                    self.on_result(result)
                self.frames_done += 1
                self.last_tracked = result.frame_idx
                self.report("tracking", result.frame_idx)
        finally:
            results.close()

    def _next_result(self, results: Iterator[FrameResult]) -> Optional[export.FrameRecord]:
        """The propagation's next frame; None at its end or when the model failed (then `failure` is set)."""
        try:
            result = self.timed(next, results, None)
            return None if result is None else to_frame_record(result)
        except Exception as error:  # the frames so far are kept; run_tracking raises TrackFailed after writing
            log.error("tracking failed after frame %s", self.last_tracked, exc_info=error)
            self.failure = error
            self.stopped_at = self.last_tracked
            return None

    def _go_on(self) -> bool:
        """Between two frames: the model is lent (`between_steps`), then whether the pass goes on."""
        self.between_steps()
        return not self._stop_requested()

    def _stop_requested(self) -> bool:
        if self.failure is not None:
            return True
        if not self.stopped and self.should_stop():
            self.stopped = True
            self.stopped_at = self.last_tracked
        return self.stopped


def run_tracking(request: TrackRequest, outputs: TrackOutputs = TrackOutputs(),
                 progress: Optional[ProgressCallback] = None, should_stop: Optional[StopCallback] = None,
                 predictor: Optional[TrackingPredictor] = None,
                 on_result: Optional[ResultCallback] = None,
                 removed: Optional[RemovedCallback] = None,
                 between_steps: Optional[StepCallback] = None,
                 models: Optional[ModelProvider] = None) -> TrackSummary:
    """Track the request's objects through its video and write the outputs; see the module docstring.

    progress(TrackProgress) is called before loading, before each prompt, before the first frame and after
    every frame;
    should_stop() is asked before every frame; on_result(media.export.FrameRecord) gets every tracked
    frame as soon as it is computed (backward-pass frames too, in tracking order; live previews);
    removed() -> object ids is asked before each frame is written and passed on: those objects are left out of
    it (the app's objects removed during the run; `TrackSummary.removed` says from which frame);
    between_steps() is called before each prompt and each frame, while the model is idle (the app runs
    previews there: sam2_plus/app/gpu_slots.py).
    The predictor comes from `models` (default: the process's shared ModelCache); `predictor` replaces it (custom
    options). Raises TrackError for unusable outputs,
    CheckpointError for unavailable weights, and TrackFailed when the model fails during tracking (after
    finishing the outputs with the frames tracked before it)."""
    summary, failure = _run(request, outputs, progress, should_stop, predictor, on_result, removed,
                            between_steps, models or shared_models())
    if failure is not None:
        if summary.out_of_memory:
            failure.__traceback__ = None  # its frames hold the failed run's tensors
            _release_cached_gpu_memory()
        raise TrackFailed(summary) from failure
    return summary


def _release_cached_gpu_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _run(request: TrackRequest, outputs: TrackOutputs, progress: Optional[ProgressCallback],
         should_stop: Optional[StopCallback], predictor: Optional[TrackingPredictor],
         on_result: Optional[ResultCallback], removed: Optional[RemovedCallback],
         between_steps: Optional[StepCallback], models: ModelProvider) -> tuple[TrackSummary, Optional[Exception]]:
    """The job of run_tracking; returns its summary and the model's error when it failed during tracking."""
    check_outputs(outputs, request.video)
    check_export_options(outputs, request.tasks)
    check_effects(outputs, request.tasks)
    with FrameSource(request.video, max_frames=request.max_frames) as frames:
        info = frames.info
        if info.num_frames != request.info.num_frames:
            raise MediaError(f"{request.video.name} changed after it was checked: it has {info.num_frames} "
                             f"frames, not {request.info.num_frames}")
        job = _Job(info.num_frames, progress, should_stop, on_result, removed, between_steps,
                   request.discovery.hidden if request.discovery is not None else ())
        job.report("loading")
        predictor = predictor or _load_predictor(job, request, models)
        finder = None if request.discovery is None else _load_finder(job, request, models)
        session = job.timed(predictor.init_state, frames)
        start = _add_prompts(job, predictor, session, request.objects)
        tasks, report = request.tasks, None
        if finder is None:
            review = ReviewTracker(tasks)
            sink = open_outputs(outputs, frames, tasks, review)
            with sink:
                job.report("tracking")  # the prompts are in; the first frame can take as long as one of them
                _track_both_ways(job, predictor, session, start, sink)
        else:
            discovering = DiscoveringPass(predictor, session, frames, request.discovery, finder, tasks)
            sink, review = _track_discovering(job, predictor, session, start, discovering, outputs, frames)
            tasks, report = _shown(discovering.tasks, job.removals.hidden), discovering.report
    failure = job.failure
    summary = TrackSummary(
        video=info, model=request.model, device=str(predictor.device), weights=request.weights, tasks=tasks,
        frames_total=info.num_frames, frames_done=sink.frames_written, first_frame=sink.first_frame,
        last_frame=sink.last_frame, stopped=job.stopped, stopped_at=job.stopped_at, seconds=job.elapsed(),
        model_seconds=job.model_seconds, load_seconds=job.load_seconds, written=_written(outputs),
        failure=None if failure is None else describe_error(failure),
        out_of_memory=failure is not None and is_out_of_memory(failure), review=review.report(),
        removed=dict(sorted(job.removals.first_frame.items())),
        tracking_seconds=job.tracking_seconds, discovery=report,
    )
    return summary, failure


def _load_predictor(job: _Job, request: TrackRequest, models: ModelProvider) -> TrackingPredictor:
    start = time.perf_counter()
    predictor = models.video_predictor(request.model, request.device, request.weights, request.motion_aware)
    job.load_seconds = time.perf_counter() - start
    return predictor


def _load_finder(job: _Job, request: TrackRequest, models: ModelProvider) -> Finder:
    """What finds the job's objects (its detector loaded now: an unavailable one fails before any tracking)."""
    start = time.perf_counter()
    finder = models.finder(request.discovery, request.model, request.device, request.weights)
    job.load_seconds += time.perf_counter() - start
    return finder


def _add_prompts(job: _Job, predictor: TrackingPredictor, session: TrackingSession,
                 objects: Sequence[ObjectPrompts]) -> int:
    """Every object's prompts, in frame order (objects in their given order on a frame), each reported before
    it is added. Returns the earliest prompted frame (0 without objects)."""
    if not objects:
        return 0
    order = sorted(((p.frame, n, obj, p) for n, obj in enumerate(objects) for p in obj.prompts),
                   key=lambda item: item[:2])
    for number, (frame, position, obj, prompt) in enumerate(order, start=1):
        job.between_steps()
        job.report("prompting", prompt=PromptStep(number, len(order), obj.obj_id, position + 1, len(objects), frame))
        job.timed(predictor.add_prompt, session, obj.obj_id, obj.task, prompt)
    return order[0][0]


def open_outputs(outputs: TrackOutputs, frames: FrameSource, tasks: Mapping[int, str],
                 review: ReviewTracker, object_fields: Optional[Mapping[int, Mapping[str, Any]]] = None) -> OutputSet:
    """The writers of a job (and of the app's re-render, which feeds them a job's records); the review comes
    first, so it flags each frame before the JSON writers ask. `object_fields`: more fields of the objects in
    the results JSON (a found object's label, score and first frame)."""
    sink = OutputSet([review], background=True)
    try:
        if outputs.records is not None:
            sink.add(RecordWriter(outputs.records, frames.info, tasks, object_fields))
        if outputs.overlay is not None:
            sink.add(OverlayVideoWriter(outputs.overlay, frames, tasks, keep_audio=outputs.keep_audio))
        if outputs.export is not None:
            sink.add(open_export(outputs.export, frames.info, tasks, outputs.export_formats, review, object_fields))
        if outputs.results_json is not None:
            sink.add(export.ResultJsonWriter(outputs.results_json, frames.info, tasks, review, object_fields))
        if outputs.effects is not None:  # after the export: it may add files to the export's ZIP when closed
            sink.add(EffectWriter(outputs.effects, frames, tasks, keep_audio=outputs.keep_audio))
    except Exception:
        sink.close()
        raise
    return sink


def _track_both_ways(job: _Job, predictor: TrackingPredictor, session: TrackingSession, start: int,
                     sink: OutputSet) -> None:
    """Backward from the earliest prompted frame first (its frames are parked on disk and then written
    in increasing order), then forward from it, writing each frame as it comes."""
    if start > 0:
        with ResultSpool() as spool:
            _track_backward(job, predictor, session, start, spool)
            _write_parked(job, spool, sink)
    if not job.ended_early:
        job.run_pass(predictor.propagate_in_video(session, start_frame_idx=start), sink.write)


def _track_discovering(job: _Job, predictor: TrackingPredictor, session: TrackingSession, start: int,
                       discovering: DiscoveringPass, outputs: TrackOutputs,
                       frames: FrameSource) -> tuple[OutputSet, ReviewTracker]:
    """A job that finds objects: its objects are known only at its end, so every frame waits on disk (found
    objects tracked backward join the frames there) and the outputs are written once tracking ends, for all
    objects. Hand-prompted objects are tracked backward from their earliest prompted frame first (no discovery
    there), then the discovering pass runs forward from that frame."""
    with ResultSpool() as spool:
        discovering.on_backfill = lambda result: spool.join(to_frame_record(result))
        discovering.on_keyframe = lambda frame_idx: job.report("finding", frame_idx)
        job.report("tracking")
        if start > 0:
            _track_backward(job, predictor, session, start, spool)
        if not job.ended_early:
            job.run_pass(discovering.forward(start), spool.put)
        tasks = _shown(discovering.tasks, job.removals.hidden)
        fields = {obj_id: found.fields() for obj_id, found in discovering.report.found.items()}
        review = ReviewTracker(tasks)
        job.report("writing")
        sink = open_outputs(outputs, frames, tasks, review, fields)
        with sink:
            _write_parked(job, spool, sink)
    return sink, review


def _track_backward(job: _Job, predictor: TrackingPredictor, session: TrackingSession, start: int,
                    spool: ResultSpool) -> None:
    """Backward from the earliest prompted frame, its frames parked; the forward pass gives `start` itself."""
    backward = predictor.propagate_in_video(session, start_frame_idx=start, reverse=True)
    job.run_pass(backward, spool.put, skip_frame=start)


def _write_parked(job: _Job, spool: ResultSpool, sink: OutputSet) -> None:
    """The parked frames in increasing order (an object removed meanwhile leaves them too)."""
    for result in spool.replay():
        sink.write(job.removals.apply(result))


def _shown(tasks: Mapping[int, str], hidden: Collection[int]) -> dict[int, str]:
    return {obj_id: task for obj_id, task in tasks.items() if obj_id not in hidden}


def _written(outputs: TrackOutputs) -> dict[str, Path]:
    return {name: path for name, path in outputs.paths().items() if path.exists()}
