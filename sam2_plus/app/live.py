"""A live session's model loop: camera frames pushed one at a time into the streaming predictor (`init_stream`,
`push_frame`), prompts applied on the frames it still holds, a result per frame, and at the end the session's
files written like a tracking job's.

    for update in run_live(LiveSpec(folder, "sam2++", weights), models):
        ...  # LiveUpdate: a frame's result, a prompt's result or its refusal, and last the files

The loop takes its work from the session folder's `LiveInbox` (the newest frame only: late frames are dropped
when the model is slower than the camera). It runs in the app's process off ZeroGPU and in a ZeroGPU worker
on ZeroGPU (one `spaces.GPU` call for the whole session), so everything it gets and gives can be pickled.

Bounded: at most `max_frames` frames are processed and the loop ends `max_seconds` after it started (the
page's Stop ends it sooner); each processed camera frame goes straight into an MP4 on disk (`VideoWriter`) and
its result into a `ResultSpool`, so memory does not grow with the session. At the end the overlay MP4, the
results ZIP and the results JSON are written from them by the tracking job's writers (`service.open_outputs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import INPUT_ERRORS
from ..media.decode import FrameSource
from ..media.encode import VideoWriter
from ..media.export import FrameRecord
from ..outputs import ResultSpool
from ..provider import ModelProvider
from ..review import ReviewTracker
from ..service import TrackOutputs, open_outputs, to_frame_record
from ..weights import WeightsSource
from .live_inbox import LiveFrame, LiveInbox, LivePrompt

HISTORY = 30  # frames the stream holds for prompts: a click on a picture up to this many frames old still lands
CAMERA_FPS = 30.0  # the camera MP4's nominal rate; each frame is placed at the time it arrived
TAKE_SECONDS = 0.5  # the longest the loop waits for work before it looks at its clock again
CAMERA_FILE, OVERLAY_FILE, EXPORT_FILE, JSON_FILE = "camera.mp4", "overlay.mp4", "results.zip", "results.json"


@dataclass(frozen=True)
class LiveSpec:
    """A checked live session: its folder (the inbox and the files), the model and the bounds."""

    folder: Path
    model: str
    weights: WeightsSource
    device: Optional[str] = None
    max_frames: int = 1800
    max_seconds: float = 120.0
    history: int = HISTORY


@dataclass(frozen=True)
class LiveFiles:
    """The files of an ended session (None: not written, no frame was processed)."""

    overlay: Optional[Path]
    export: Optional[Path]
    results_json: Optional[Path]
    frames: int
    objects: dict[int, str] = field(default_factory=dict)  # object id -> task

    def downloads(self) -> list[str]:
        return [str(p) for p in (self.overlay, self.export, self.results_json) if p is not None]


@dataclass(frozen=True)
class LiveUpdate:
    """One step of the loop: a frame's result (`record`, with the frame's `number` among those sent and the
    `latency` from its arrival to its result), a prompt's result or refusal (`note`), or the end (`files`)."""

    number: int = 0
    record: Optional[FrameRecord] = None
    latency: float = 0.0
    note: str = ""
    ended: str = ""  # why the loop ended ("" while it runs)
    files: Optional[LiveFiles] = None


class LiveRecorder:
    """The session on disk as it runs: the processed camera frames (MP4) and their results (spool), and the
    objects' tasks; `finish` writes the job's files from them."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.spool = ResultSpool()
        self.tasks: dict[int, str] = {}
        self.frames = 0
        self._writer: Optional[VideoWriter] = None
        self._origin = 0.0
        self._last_time = -1.0

    def add_frame(self, frame: LiveFrame) -> None:
        height, width = frame.image.shape[:2]
        if self._writer is None:
            self._writer = VideoWriter(self.folder / CAMERA_FILE, fps=CAMERA_FPS, width=width, height=height)
            self._origin = frame.arrived
        # at least a millisecond apart: the writer's timestamps must increase
        self._last_time = max(frame.arrived - self._origin, self._last_time + 1e-3)
        self._writer.write(frame.image, timestamp=self._last_time)
        self.frames += 1

    def add_result(self, record: FrameRecord) -> None:
        self.spool.put(record)  # a prompt's result replaces its frame's

    def finish(self) -> LiveFiles:
        if self._writer is None:
            self.spool.close()
            return LiveFiles(None, None, None, 0)
        self._writer.close()
        outputs = TrackOutputs(overlay=self.folder / OVERLAY_FILE, export=self.folder / EXPORT_FILE,
                               results_json=self.folder / JSON_FILE, keep_audio=False)
        tasks = dict(self.tasks)
        try:
            with FrameSource(self.folder / CAMERA_FILE) as frames:
                with open_outputs(outputs, frames, tasks, ReviewTracker(tasks)) as sink:
                    for record in self.spool.replay():
                        sink.write(record.without(set(record.obj_ids) - set(tasks)))
        finally:
            self.spool.close()
        return LiveFiles(outputs.overlay, outputs.export, outputs.results_json, self.frames, tasks)


def run_live(spec: LiveSpec, models: ModelProvider,
             between_steps: Optional[Callable[[], None]] = None) -> Iterator[LiveUpdate]:
    """The session's loop (module doc): an update per processed frame and per prompt, then one with the files."""
    between_steps = between_steps or (lambda: None)
    inbox = LiveInbox(spec.folder)
    recorder = LiveRecorder(spec.folder)
    predictor = models.video_predictor(spec.model, spec.device, spec.weights)
    stream = predictor.init_stream(history=spec.history)
    started = time.monotonic()
    ended = ""
    try:
        while not (ended := _why_ended(spec, inbox, recorder, time.monotonic() - started)):
            between_steps()
            work = inbox.take(TAKE_SECONDS)
            if work.frame is not None:  # first: a prompt sent with a frame (the API's) is on that frame
                yield _push(predictor, stream, recorder, work.frame)
            for prompt in work.prompts:
                yield _apply_prompt(predictor, stream, recorder, prompt)
    finally:
        files = recorder.finish()  # also when the page went away or the model failed: the frames so far
    yield LiveUpdate(ended=ended, files=files)


def _why_ended(spec: LiveSpec, inbox: LiveInbox, recorder: LiveRecorder, seconds: float) -> str:
    if inbox.stopped():
        return "stopped"
    if recorder.frames >= spec.max_frames:
        return f"the session's limit of {spec.max_frames} frames was reached"
    if seconds >= spec.max_seconds:
        return f"the session's limit of {spec.max_seconds:g} seconds was reached"
    return ""


def _push(predictor, stream, recorder: LiveRecorder, frame: LiveFrame) -> LiveUpdate:
    result = to_frame_record(predictor.push_frame(stream, frame.image))
    recorder.add_frame(frame)
    recorder.add_result(result)
    return LiveUpdate(frame.number, result, latency=max(time.time() - frame.arrived, 0.0))


def _apply_prompt(predictor, stream, recorder: LiveRecorder, prompt: LivePrompt) -> LiveUpdate:
    """The prompt's result on its frame (which then replaces that frame's result), or why it was refused."""
    try:
        if prompt.prompt is None:
            predictor.remove_object(stream, prompt.obj_id)
            recorder.tasks.pop(prompt.obj_id, None)
            return LiveUpdate(note=f"object {prompt.obj_id} removed")
        result = to_frame_record(predictor.add_prompt(stream, prompt.obj_id, prompt.task, prompt.prompt))
    except INPUT_ERRORS as error:
        return LiveUpdate(note=f"⚠️ {error}")
    recorder.tasks[prompt.obj_id] = prompt.task
    recorder.add_result(result)
    return LiveUpdate(record=result, note=f"object {prompt.obj_id} prompted on frame {prompt.prompt.frame}")

