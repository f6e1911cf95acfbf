"""On a CPU, which model tracks fastest and what a frame costs, measured once per process on a small frame: the
page says it beside the model choice. The measurement starts in the background when the page is built; a page that loads before it ends says
so and shows the result when it comes (`CpuSpeedProbe.notes`). On a GPU there is nothing to say, and on ZeroGPU
(whose main process has no GPU but tracks on one) nothing is measured: CPU work in the main process would hang the
GPU workers it forks (sam2_plus/app/hardware.py).

The candidates are the light models (EdgeTAM, SAM 2.1 tiny); with stand-in weights, the micro test models
instead, so that a test server does not run real-size networks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..provider import ModelProvider
from ..weights import WeightsSource
from .hardware import on_zero_gpu

LIGHT_MODELS = ("edgetam", "sam2.1-tiny")
STAND_IN_MODELS = ("test-edgetam", "test-micro")
FRAME_HW = (180, 320)  # a small frame: the models work at their own input size whatever the video's
MEASURE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class FrameCost:
    model: str
    seconds: float  # one tracked frame with one object


@dataclass(frozen=True)
class CpuSpeed:
    costs: tuple[FrameCost, ...]  # fastest first

    def describe(self) -> str:
        best = self.costs[0]
        others = ", ".join(f"{c.model} {c.seconds:.1f} s" for c in self.costs[1:])
        return (f"On this CPU **{best.model}** tracks fastest: about {best.seconds:.1f} s per frame and object "
                f"(measured at start-up{'; ' + others if others else ''}).")


def measure_frame_cost(predictor, frame: np.ndarray) -> float:
    """Seconds the predictor takes to track one frame with one object (the frame after a prompted one)."""
    session = predictor.init_state([frame, frame])
    h, w = frame.shape[:2]
    predictor.add_new_points_or_box(session, 0, 1, box=[w // 4, h // 4, 3 * w // 4, 3 * h // 4])
    frames = predictor.propagate_in_video(session)
    next(frames)  # the prompted frame
    started = time.perf_counter()
    next(frames)
    return time.perf_counter() - started


def measure_cpu_speed(models: ModelProvider, names: Sequence[str], weights: WeightsSource) -> CpuSpeed:
    frame = (np.indices(FRAME_HW).sum(axis=0) % 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    costs = [FrameCost(name, measure_frame_cost(models.video_predictor(name, "cpu", weights), frame))
             for name in names]
    return CpuSpeed(tuple(sorted(costs, key=lambda c: c.seconds)))


class CpuSpeedProbe:
    """`measure` run once, in a background thread from `start`; `note` waits for it (a GPU machine: no note)."""

    def __init__(self, measure: Callable[[], CpuSpeed], on_cpu: Optional[bool] = None) -> None:
        self._measure = measure
        self.on_cpu = (not torch.cuda.is_available() and not on_zero_gpu()) if on_cpu is None else on_cpu
        self._done = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._result: Optional[CpuSpeed] = None
        self._error: Optional[str] = None

    def start(self) -> None:
        with self._lock:
            if self._started or not self.on_cpu:
                return
            self._started = True
        threading.Thread(target=self._run, name="cpu-speed", daemon=True).start()

    def _run(self) -> None:
        try:
            self._result = self._measure()
        except Exception as e:  # a model that cannot load (no weights offline): the page says so, tracking still works
            self._error = f"{e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        finally:
            self._done.set()

    def notes(self) -> Iterator[str]:
        """The page's note at once, and again when the measurement ends (a page load does not wait for it)."""
        yield self.note(timeout=0)
        if self.on_cpu and not self._done.is_set():
            yield self.note()

    def note(self, timeout: float = MEASURE_TIMEOUT_S) -> str:
        """Markdown for the page: the fastest model here and its frame cost, or why it is not known."""
        if not self.on_cpu:
            return ""
        self.start()
        if not self._done.wait(timeout):
            return "<small>Measuring which model is fastest on this CPU...</small>"
        if self._result is None:
            return f"<small>The models' speed on this CPU could not be measured ({self._error}).</small>"
        return f"<small>{self._result.describe()}</small>"


def cpu_speed_probe(models: ModelProvider, weights: WeightsSource) -> CpuSpeedProbe:
    """The app's probe: the light models, or the micro ones with stand-in weights."""
    names = LIGHT_MODELS if weights.is_trained else STAND_IN_MODELS
    return CpuSpeedProbe(lambda: measure_cpu_speed(models, names, weights))
