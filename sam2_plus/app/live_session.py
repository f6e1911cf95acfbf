"""A browser session's (or API client's) live session, on the page's side: camera frames in, the newest result
drawn on its frame out, prompts from clicks on the live picture, frames/s and latency, Stop and the files.

The model loop (`live.run_live`, started through `runner`: off ZeroGPU a GPU slot held in this process, on ZeroGPU
one GPU call in a worker) runs on a thread of its own; this side never waits for the model: `put_frame` leaves the
frame in the inbox (replacing one not taken yet) and `view` draws the newest result there is.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..media.render import TrackRenderer
from ..prompts import TASKS
from ..video.streaming import frame_problem
from .editing import BOX, NEGATIVE, POSITIVE, ObjectState, add_click, set_box
from .errors import AppInputError
from .gpu_slots import describe_wait
from .live import LiveFiles, LiveSpec, LiveUpdate
from .live_inbox import LiveFrame, LiveInbox, LivePrompt

LiveRunner = Callable[[LiveSpec, Callable[[int], None]], Iterator[LiveUpdate]]  # (spec, on_wait(jobs ahead))
LIVE_TOOLS = (POSITIVE, NEGATIVE, BOX)
RATE_WINDOW = 2.0  # seconds over which frames/s and latency are measured
PICTURES_KEPT = 8  # recent frames kept to draw results on (a result comes a frame or two after its frame was sent)
STOP_SECONDS = 600.0  # the longest Stop waits for the files (writing them costs about as long as a job's)


@dataclass(frozen=True)
class LiveStats:
    """What the status line shows: frames sent and processed, frames/s of each, the latency, the newest frame."""

    sent: int
    processed: int
    sent_rate: float
    processed_rate: float
    latency: Optional[float]  # seconds from a frame's arrival to its result, mean over RATE_WINDOW
    frame_idx: Optional[int]

    def describe(self) -> str:
        if self.processed == 0:
            return f"Live: {self.sent} frames sent, waiting for the model's first result…"
        latency = "–" if self.latency is None else f"{self.latency * 1000:.0f} ms"
        return (f"Live: frame {self.frame_idx} · {self.processed_rate:.1f} frames/s processed of "
                f"{self.sent_rate:.1f} sent · latency {latency} · {self.sent - self.processed} dropped")


class _Rates:
    """Events and latencies over the last RATE_WINDOW seconds."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, float]] = deque()

    def add(self, latency: float = 0.0) -> None:
        now = time.monotonic()
        self._events.append((now, latency))
        while self._events and now - self._events[0][0] > RATE_WINDOW:
            self._events.popleft()

    def rate(self) -> float:
        if len(self._events) < 2:
            return 0.0
        span = self._events[-1][0] - self._events[0][0]
        return (len(self._events) - 1) / span if span > 0 else 0.0

    def mean_latency(self) -> Optional[float]:
        return sum(lat for _, lat in self._events) / len(self._events) if self._events else None


class LiveSession:
    """One live session (module doc). `spec` is checked; `runner(spec)` gives the loop's updates."""

    def __init__(self, spec: LiveSpec, runner: LiveRunner) -> None:
        self.spec = spec
        self.inbox = LiveInbox(spec.folder)
        self.objects: dict[int, ObjectState] = {}
        self.selected: Optional[int] = None
        self.frozen = False
        self.size: Optional[tuple[int, int]] = None  # (H, W) of the first frame
        self._sent = self._processed = self._latest = 0  # frames sent, processed, the newest processed
        self._prompts_sent = self._prompts_done = 0  # prompts sent to the loop, and answered by it
        self._sent_rates, self._done_rates = _Rates(), _Rates()
        self._pictures: OrderedDict[int, np.ndarray] = OrderedDict()  # frame number -> image
        self._number_of_frame: dict[int, int] = {}  # stream frame index -> frame number, of the pictures kept
        self._shown: Optional[tuple[int, np.ndarray]] = None  # the newest result: (frame index, drawn picture)
        self._shown_count = self._viewed = 0  # results drawn; the newest one a `fresh_view` gave
        self._renderer = TrackRenderer()
        self._corner: Optional[tuple[int, float, float]] = None  # a box's first corner: object id, x, y
        self.note = ""  # what the last prompt did
        self.waiting = ""  # while the loop waits for a GPU slot: where it stands
        self.ended = ""
        self.files: Optional[LiveFiles] = None
        self.error: Optional[BaseException] = None
        self._changed = threading.Condition()
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run, runner), name="sam2plus-live",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the loop's side

    def _run(self, runner: LiveRunner) -> None:
        try:
            for update in runner(self.spec, self._waiting):
                self._receive(update)
        except BaseException as error:  # said on the page
            self.error = error
        finally:
            with self._changed:
                self.ended = self.ended or "the model loop ended"
                self._changed.notify_all()

    def _waiting(self, ahead: int) -> None:
        self.waiting = describe_wait(ahead)

    def _receive(self, update: LiveUpdate) -> None:
        with self._changed:
            self.waiting = ""  # the loop has the GPU
            if update.files is not None:
                self.files, self.ended = update.files, update.ended
            if update.note:
                self.note = update.note
                self._prompts_done += not update.number
            if update.record is not None:
                self._draw(update)
            self._changed.notify_all()

    def _draw(self, update: LiveUpdate) -> None:
        record = update.record
        if update.number:
            self._processed += 1
            self._latest = max(self._latest, update.number)
            self._done_rates.add(update.latency)
            self._number_of_frame[record.frame_idx] = update.number
        picture = self._pictures.get(self._number_of_frame.get(record.frame_idx, -1))
        if picture is None:  # a prompt's result on a frame no longer kept
            return
        self._renderer.tasks = {obj_id: obj.task for obj_id, obj in self.objects.items()}
        self._shown = (record.frame_idx, self._renderer.render(picture, record))
        self._shown_count += 1

    # ------------------------------------------------------------------ the page's side

    def checked(self, image: object) -> np.ndarray:
        """`image` when it can be this session's next camera frame; AppInputError saying why not."""
        problem = frame_problem(image, self.size, noun="a camera frame", restart="press Stop and start a new session")
        if problem:
            raise AppInputError(problem)
        return image

    def put_frame(self, image: object) -> int:
        """Send a camera frame to the model, checked (dropped while frozen or ended); its number (0 when dropped)."""
        return self.send_frame(self.checked(image))

    def send_frame(self, image: np.ndarray) -> int:
        """Send a `checked` camera frame to the model (dropped while frozen or ended); its number (0 when dropped)."""
        if self.frozen or self.ended:
            return 0
        self.size = image.shape[:2]
        with self._changed:
            self._sent += 1
            number = self._sent
            self._pictures[number] = image
            while len(self._pictures) > PICTURES_KEPT:
                self._pictures.popitem(last=False)
        self._sent_rates.add()
        self.inbox.put_frame(LiveFrame(number, image, time.time()))
        return number

    def wait_for(self, number: int, timeout: float) -> bool:
        """Whether frame `number`'s result (or a later one) and the answers to every prompt sent came within
        `timeout` seconds (an API call's frame and prompts)."""
        def came() -> bool:
            return (self._latest >= number and self._prompts_done >= self._prompts_sent) or bool(self.ended)

        with self._changed:
            return self._changed.wait_for(came, timeout)

    def view(self) -> Optional[np.ndarray]:
        """The newest drawn picture (None before the first result)."""
        with self._changed:
            return None if self._shown is None else self._shown[1]

    def fresh_view(self) -> Optional[np.ndarray]:
        """The newest drawn picture when it came since the last `fresh_view`, else None (nothing to send)."""
        with self._changed:
            if self._shown is None or self._shown_count == self._viewed:
                return None
            self._viewed = self._shown_count
            return self._shown[1]

    def stats(self) -> LiveStats:
        with self._changed:
            frame_idx = None if self._shown is None else self._shown[0]
            return LiveStats(self._sent, self._processed, self._sent_rates.rate(), self._done_rates.rate(),
                             self._done_rates.mean_latency(), frame_idx)

    def describe(self) -> str:
        """The status line: the session's state, then the last prompt's note."""
        if self.error is not None:
            state = f"⚠️ The live session failed: {self.error}"
        elif self.files is not None:
            state = f"Live session ended ({self.ended}): {self.files.frames} frames in the files below."
        elif self.ended:
            state = f"Live session ended ({self.ended}); press Stop for its files."
        else:
            state = self.waiting or self.stats().describe()
            state += " · frozen: click to prompt, Go on to resume" if self.frozen else ""
        return state + (f" — {self.note}" if self.note else "")

    # ------------------------------------------------------------------ prompts

    def new_object(self, task: str) -> int:
        """A new object of `task`, selected: the next clicks prompt it."""
        if task not in TASKS:
            raise AppInputError(f"unknown granularity {task!r}; choose one of {', '.join(TASKS)}")
        obj_id = max(self.objects, default=0) + 1
        self.objects[obj_id] = ObjectState(obj_id, f"Object {obj_id}", task)
        self.selected, self._corner = obj_id, None
        return obj_id

    def click(self, x: float, y: float, tool: str, task: str = "mask") -> str:
        """A click on the live picture with `tool`, on the frame it shows: a prompt for the selected object (a new
        one of `task` when none is), or a box's first corner. Returns what it did."""
        if self._shown is None or self.size is None:
            raise AppInputError("no live picture yet: start the camera and wait for the first frame")
        if tool not in LIVE_TOOLS:
            raise AppInputError(f"unknown tool {tool!r}; choose one of {', '.join(LIVE_TOOLS)}")
        height, width = self.size
        if not (0 <= x < width and 0 <= y < height):
            raise AppInputError(f"the click ({x:g}, {y:g}) is outside the picture ({width}x{height} pixels)")
        obj = self.objects.get(self.selected) if self.selected is not None else None
        obj = obj or self.objects[self.new_object(task)]
        self.note = self._prompt(obj, self._shown[0], x, y, tool)  # the status line says it until the result
        return self.note

    def _prompt(self, obj: ObjectState, frame: int, x: float, y: float, tool: str) -> str:
        if tool == BOX:  # the picture moves on between the corners: the box goes on the frame of the second
            if self._corner is None or self._corner[0] != obj.obj_id:
                self._corner = (obj.obj_id, x, y)
                return "first corner set: click the opposite corner"
            _, x0, y0 = self._corner
            self._corner = None
            set_box(obj, frame, (x0, y0, x, y))
        else:
            add_click(obj, frame, x, y, positive=tool == POSITIVE)
        self.send_prompt(obj.obj_id, obj.task, obj.prompts[frame])
        return f"{obj.name} prompted on frame {frame}"

    def send_prompt(self, obj_id: int, task: str, prompt) -> None:
        """A checked prompt (`prompt_rules.FramePrompt`) for the model loop."""
        if self.ended:
            raise AppInputError(f"the live session has ended ({self.ended}): start a new one to prompt")
        with self._changed:
            self._prompts_sent += 1
        self.inbox.put_prompt(LivePrompt(obj_id, task, prompt))

    def track_object(self, obj_id: int, task: str) -> None:
        """Object `obj_id` of `task` drawn from now on (a prompt from the API; clicks add theirs themselves)."""
        if obj_id not in self.objects:
            self.objects[obj_id] = ObjectState(obj_id, f"Object {obj_id}", task)

    def remove_selected(self) -> str:
        if self.selected is None or self.selected not in self.objects:
            raise AppInputError("no object yet: click on the live picture to add one")
        obj = self.objects.pop(self.selected)
        self.selected = max(self.objects, default=None)
        self.send_prompt(obj.obj_id, obj.task, None)
        return f"{obj.name} removed"

    # ------------------------------------------------------------------ the end

    def stop(self, timeout: float = STOP_SECONDS) -> Optional[LiveFiles]:
        """End the session and wait for its files (None when the loop failed or did not end in time)."""
        self.inbox.stop()
        self._thread.join(timeout)
        return self.files

    def close(self) -> None:
        """The page went: the loop ends (its files are written; the session folder's owner removes them)."""
        self.inbox.stop()
