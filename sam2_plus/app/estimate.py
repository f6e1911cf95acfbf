"""How long Track will take on this machine, said before it is pressed: measured, never assumed. The first
measurement of a model is its first preview's model time (the image encoder and one decoder pass: most of a
tracked frame's work); once a run of that model finished, its own speed replaces it for the frames (the prompts
stay a preview's work). Both are scaled to the video's frames and objects in "preview units", the time of one
preview:

    seconds a frame ~ unit * (ENCODER_UNITS + OBJECT_UNITS * objects);  adding the prompts ~ unit * PROMPT_UNITS
    per prompted frame

The constants were measured with SAM 2.1 tiny (stand-in weights, the 320x240 example clip) on this shared
2-core CPU, each run between two previews: a preview took 2.4-2.9 s; a tracked frame after the prompted one took
1.82 previews with 1 object and 3.17 with 3 (1.15 + 0.675 * objects), and adding one frame's prompts 1.0-1.1
previews. An earlier run (4 frames, the cheap prompted one included, a 4.0 s preview) took 7.1, 9.0 and 15.2 s a
frame with 1, 2 and 4 objects. The measurements live in the process (`SPEEDS`): this machine, whichever session
made them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

from ..config import canonical_model_name
from .jobs import counted, format_rate, format_seconds

ENCODER_UNITS = 1.15
OBJECT_UNITS = 0.675
PROMPT_UNITS = 1.1


def frame_units(objects: int) -> float:
    """A tracked frame's time with `objects` objects, in previews."""
    return ENCODER_UNITS + OBJECT_UNITS * max(1, objects)


@dataclass(frozen=True)
class Speed:
    """One measurement of a model on this machine: a preview's model time, or a finished run's seconds a
    tracked frame with its number of objects."""

    seconds: float
    objects: Optional[int] = None  # a run's objects; None for a preview

    @property
    def unit(self) -> float:
        """The time of one preview that this measurement implies."""
        return self.seconds if self.objects is None else self.seconds / frame_units(self.objects)

    def source(self) -> str:
        if self.objects is None:
            return f"the last preview took {format_seconds_fine(self.seconds)}"
        return f"the last run tracked {counted(self.objects, 'object')} at {format_rate(1 / self.seconds)}"


@dataclass(frozen=True)
class Estimate:
    """A tracking run's time on this machine from a `Speed` of its model (for the frames) and the time of one of
    its previews (for the prompts)."""

    model: str
    frames: int
    objects: int
    prompted_frames: int
    speed: Speed
    prompt_unit: float

    @property
    def seconds_per_frame(self) -> float:
        return self.speed.unit * frame_units(self.objects)

    @property
    def total_seconds(self) -> float:
        return self.frames * self.seconds_per_frame + self.prompted_frames * PROMPT_UNITS * self.prompt_unit

    def describe(self) -> str:
        total = "under a second" if self.total_seconds < 1 else f"~{format_seconds(self.total_seconds)}"
        return (f"Estimate: about {format_rate(1 / self.seconds_per_frame)} here with {self.model}, {total} for "
                f"this video ({self.frames} frames) with {counted(self.objects, 'object')}; measured on this machine "
                f"({self.speed.source()}).")


def format_seconds_fine(seconds: float) -> str:
    """A short time with its precision (a preview of the micro model takes milliseconds)."""
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else format_seconds(seconds)


class SpeedLog:
    """The latest measurements of each model on this machine (thread-safe; any name of a model finds them)."""

    def __init__(self) -> None:
        self._previews: dict[str, Speed] = {}
        self._runs: dict[str, Speed] = {}
        self._lock = threading.Lock()

    def preview(self, model: str, seconds: float) -> None:
        """A preview's model time (with its image encoder)."""
        if seconds > 0:
            with self._lock:
                self._previews[_key(model)] = Speed(seconds)

    def run(self, model: str, objects: int, seconds_per_frame: float) -> None:
        if seconds_per_frame > 0 and objects > 0:
            with self._lock:
                self._runs[_key(model)] = Speed(seconds_per_frame, objects)

    def get(self, model: str) -> Optional[Speed]:
        """What the frames' time is estimated from: the last run's speed, else the last preview."""
        with self._lock:
            return self._runs.get(_key(model)) or self._previews.get(_key(model))

    def estimate(self, model: str, frames: int, objects: int, prompted_frames: int) -> Optional[Estimate]:
        speed = self.get(model)
        if speed is None:
            return None
        with self._lock:
            preview = self._previews.get(_key(model))
        return Estimate(model, frames, objects, prompted_frames, speed, (preview or speed).unit)

    def clear(self) -> None:
        with self._lock:
            self._previews.clear()
            self._runs.clear()


SPEEDS = SpeedLog()


def _key(model: str) -> str:
    try:
        return canonical_model_name(model)
    except ValueError:
        return model


def describe_estimate(model: str, frames: int, objects: int, prompted_frames: int,
                      speeds: SpeedLog = SPEEDS) -> str:
    """The page's line about Track's time with `model` for a video of `frames` frames and `objects` objects."""
    estimate = speeds.estimate(model, frames, objects, prompted_frames)
    if estimate is None:
        return f"Track's time with {model} on this machine is estimated after the first preview with it."
    return estimate.describe()
