"""Where a batch's videos run on one machine: in this process (one worker), or in one worker process per
device (`--workers`). `drive` hands videos to any pool of workers, one at a time each, and is what the Ray
pool (cluster.py) uses too."""

from __future__ import annotations

import multiprocessing
import queue
import signal
import time
from collections import deque
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import torch

from .manifest import VideoJob
from .store import FAILED, PENDING, VideoRecord
from .worker import ProgressSink, VideoProgress, WorkerSetup, track_video

POLL_SECONDS = 0.2  # how often the driver looks for finished videos, progress and Ctrl-C
PROGRESS_SECONDS = 0.5  # how often a remote worker sends a running video's progress

FinishedSink = Callable[[VideoRecord], None]
StopCheck = Callable[[], bool]


class BatchError(RuntimeError):
    """The batch cannot go on (a worker process died, the cluster went away)."""


class Runner(Protocol):
    def run(self, jobs: Sequence[VideoJob], progress: ProgressSink, finished: FinishedSink,
            stop: StopCheck) -> None:
        """Track `jobs`, calling finished() for each one that ran; after stop() only the running ones finish."""

    def close(self) -> None:
        """Let the workers go (running videos end after their current frame)."""


class WorkerPool(Protocol):
    """Workers that each take one video at a time."""

    def has_free(self) -> bool: ...

    def busy(self) -> bool: ...

    def submit(self, job: VideoJob) -> None: ...

    def wait(self, timeout: float) -> list[VideoRecord]: ...  # videos finished by now (may be none)

    def progress(self) -> list[VideoProgress]: ...  # what the workers reported since the last call

    def stop(self) -> None: ...  # running videos stop after their current frame

    def close(self) -> None: ...


def plan_devices(device: Optional[str], workers: Optional[int]) -> list[str]:
    """A device per worker: `device` for each, else one worker per GPU (round robin when --workers asks for
    more), else the CPU."""
    if device is not None:
        return [device] * (workers or 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        return [f"cuda:{i % gpus}" for i in range(workers or gpus)]
    return ["cpu"] * (workers or 1)


@dataclass
class InProcessRunner:
    """One worker: this process, its model loaded once (service's cache)."""

    setup: WorkerSetup
    device: Optional[str]

    def run(self, jobs: Sequence[VideoJob], progress: ProgressSink, finished: FinishedSink,
            stop: StopCheck) -> None:
        for job in jobs:
            record = track_video(job, self.setup, self.device, progress, stop)
            if record.status == PENDING:
                return
            finished(record)

    def close(self) -> None:
        pass  # the model stays in service's cache for whoever runs next in this process


@dataclass
class PoolRunner:
    """A WorkerPool, fed one video per free worker until the jobs run out or stop() says so."""

    pool: WorkerPool

    def run(self, jobs: Sequence[VideoJob], progress: ProgressSink, finished: FinishedSink,
            stop: StopCheck) -> None:
        waiting = deque(jobs)
        stopping = False
        while self.pool.busy() or (waiting and not stopping):
            if stop() and not stopping:
                stopping = True
                self.pool.stop()
            while waiting and not stopping and self.pool.has_free():
                self.pool.submit(waiting.popleft())
            for record in self.pool.wait(POLL_SECONDS):
                if record.status != PENDING:
                    finished(record)
            for update in self.pool.progress():
                progress(update)

    def close(self) -> None:
        self.pool.close()


class Throttled:
    """Passes a video's progress on at most every `seconds`, and always its first and last frame."""

    def __init__(self, sink: ProgressSink, seconds: float = PROGRESS_SECONDS) -> None:
        self.sink = sink
        self.seconds = seconds
        self._last = float("-inf")

    def __call__(self, update: VideoProgress) -> None:
        now = time.monotonic()
        if now - self._last >= self.seconds or update.frames_done in (0, update.frames_total):
            self._last = now
            self.sink(update)


# --------------------------------------------------------------------------- worker processes


class ProcessPool:
    """One spawned process per device, each holding its model; videos go to whichever is free."""

    def __init__(self, setup: WorkerSetup, devices: Sequence[str]) -> None:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
        self.size = len(devices)
        self._stop = context.Event()
        self._progress = context.Queue()
        device_queue = context.Queue()
        for device in devices:
            device_queue.put(device)
        # CPU workers share the threads one worker in this process would use
        threads = max(1, torch.get_num_threads() // max(1, sum(d == "cpu" for d in devices)))
        self._executor = futures.ProcessPoolExecutor(
            self.size, mp_context=context, initializer=_start_worker,
            initargs=(setup, device_queue, self._stop, self._progress, threads))
        self._running: dict[futures.Future, VideoJob] = {}

    def has_free(self) -> bool:
        return len(self._running) < self.size

    def busy(self) -> bool:
        return bool(self._running)

    def submit(self, job: VideoJob) -> None:
        try:
            self._running[self._executor.submit(_run_job, job)] = job
        except BrokenProcessPool:
            raise BatchError("a worker process died; run the batch again to go on") from None

    def wait(self, timeout: float) -> list[VideoRecord]:
        done, _ = futures.wait(self._running, timeout, return_when=futures.FIRST_COMPLETED)
        return [self._record(future, self._running.pop(future)) for future in done]

    @staticmethod
    def _record(future: futures.Future, job: VideoJob) -> VideoRecord:
        error = future.exception()
        if error is None:
            return future.result()
        return VideoRecord.of(job, FAILED, error=f"the worker process tracking it died ({error})")

    def progress(self) -> list[VideoProgress]:
        updates = []
        while True:
            try:
                updates.append(self._progress.get_nowait())
            except queue.Empty:
                return updates

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()  # when the run ends early, running videos end after their frame (none run otherwise)
        self._executor.shutdown(wait=True, cancel_futures=True)


_worker: dict = {}  # a worker process's device, stop event and progress sink (set once by _start_worker)


def _start_worker(setup: WorkerSetup, devices, stop, progress, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it asks workers to stop
    device = devices.get()
    if device == "cpu":
        torch.set_num_threads(threads)
    _worker.update(setup=setup, device=device, stop=stop, progress=Throttled(progress.put))


def _run_job(job: VideoJob) -> VideoRecord:
    return track_video(job, _worker["setup"], _worker["device"], _worker["progress"], _worker["stop"].is_set)
