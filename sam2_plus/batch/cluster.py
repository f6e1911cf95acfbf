"""The batch on Ray (`--ray ADDRESS`): one actor per GPU of the cluster, or per `--cpus-per-worker` CPUs when
it has none, each holding its model; videos are handed to free actors one at a time (runners.PoolRunner),
the outputs go to the output folder, which every node must see at the same path, as the videos too. This
project's code is shipped to a running cluster with the job (Ray's working_dir); its requirements must be
installed on every node.

Ray is optional: `pip install -r requirements-cluster.txt`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

from ..errors import first_line
from .manifest import VideoJob
from .runners import BatchError, Throttled
from .store import FAILED, VideoRecord
from .worker import VideoProgress, WorkerSetup, track_video

INSTALL_HINT = "--ray needs Ray, which is not installed: pip install -r requirements-cluster.txt"
PROJECT_DIR = Path(__file__).resolve().parents[2]  # sam2_plus and its configs/, csrc/: shipped to a cluster
SHIPPED = {"working_dir": str(PROJECT_DIR), "excludes": ["/.git/", "/tests/", "/bench/", "/examples/"]}


def import_ray():
    try:
        import ray
        import ray.util.queue  # noqa: F401  (the progress queue)
    except ImportError:
        raise BatchError(INSTALL_HINT) from None
    return ray


class VideoActor:
    """A Ray actor (made remote in RayPool, as Ray is optional) tracking one video at a time; stop() is
    served beside a running video (the actor has two threads)."""

    def __init__(self, setup: WorkerSetup, device: str, progress: Any) -> None:
        self._setup = setup
        self._device = device
        self._progress = Throttled(progress.put)
        self._stop = threading.Event()

    def run(self, job: VideoJob) -> VideoRecord:
        return track_video(job, self._setup, self._device, self._progress, self._stop.is_set)

    def stop(self) -> None:
        self._stop.set()


class RayPool:
    """Actors started as videos need them, up to one per GPU (or CPU slot), `workers` at the most."""

    def __init__(self, setup: WorkerSetup, address: str, workers: Optional[int] = None,
                 cpus_per_worker: float = 1.0) -> None:
        self._ray = import_ray()
        self._setup = setup
        self._idle: list = []
        self._started = 0
        self._running: dict[Any, tuple[Any, VideoJob]] = {}
        self._queue = None
        self._owned = connect(self._ray, address)
        try:
            self._queue = self._ray.util.queue.Queue()
            self._actor_class, self._device, self.size = self._plan(workers, cpus_per_worker)
        except Exception:
            self.close()
            raise

    def _plan(self, workers: Optional[int], cpus_per_worker: float):
        resources = self._ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus:
            options, device, slots = {"num_gpus": 1}, "cuda", gpus
        else:
            options, device = {"num_cpus": cpus_per_worker}, "cpu"
            slots = int(resources.get("CPU", 0) // cpus_per_worker)
        if slots < 1:
            raise BatchError(f"the Ray cluster has no GPU and {resources.get('CPU', 0):g} CPUs, fewer than "
                             f"--cpus-per-worker {cpus_per_worker:g}")
        actor_class = self._ray.remote(VideoActor).options(max_concurrency=2, **options)
        return actor_class, device, min(slots, workers or slots)

    def has_free(self) -> bool:
        return bool(self._idle) or self._started < self.size

    def busy(self) -> bool:
        return bool(self._running)

    def submit(self, job: VideoJob) -> None:
        if self._idle:
            actor = self._idle.pop()
        else:
            actor = self._actor_class.remote(self._setup, self._device, self._queue)
            self._started += 1
        self._running[actor.run.remote(job)] = (actor, job)

    def wait(self, timeout: float) -> list[VideoRecord]:
        if not self._running:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        return [self._record(ref) for ref in ready]

    def _record(self, ref) -> VideoRecord:
        actor, job = self._running.pop(ref)
        try:
            record = self._ray.get(ref)
        except self._ray.exceptions.RayError as e:  # the actor died (out of memory, node lost): not reused
            self._started -= 1
            return VideoRecord.of(job, FAILED, error=f"the Ray worker tracking it failed: {first_line(e)}")
        self._idle.append(actor)
        return record

    def progress(self) -> list[VideoProgress]:
        count = self._queue.qsize()
        return self._queue.get_nowait_batch(count) if count else []

    def stop(self) -> None:
        for actor, _ in self._running.values():
            actor.stop.remote()

    def close(self) -> None:
        try:
            for actor in self._idle + [actor for actor, _ in self._running.values()]:
                self._ray.kill(actor)
            if self._queue is not None:
                self._queue.shutdown()
        finally:
            if self._owned:
                self._ray.shutdown()


def connect(ray, address: str) -> bool:
    """Connect to the cluster at `address` ("local": start one on this machine, "auto": the one this machine
    belongs to). True when this run made the connection (and ends it); a process that called ray.init
    itself keeps its own connection."""
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(include_dashboard=False)
        else:
            ray.init(address=address, runtime_env=SHIPPED)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BatchError(f"cannot connect to the Ray cluster at {address}: {first_line(e)}") from None
    return True
