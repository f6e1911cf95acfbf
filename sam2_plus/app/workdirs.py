"""Where sessions and API calls keep their files, and when those files go.

Each browser session and each API call owns a `WorkDir` under `work_root()`. `SessionFiles` remembers them
per Gradio session (the browser tab or the API client); the app's unload event calls `end_session` when that
session disconnects, which removes them at once. (Gradio deletes a closed session's gr.State only an hour
later, and a server that crashed never does: `sweep_work_dirs` removes old leftovers.)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import AppInputError
from .settings import env_name

log = logging.getLogger(__name__)


def work_root() -> Path:
    """Where sessions and API jobs keep their files (SAM2PLUS_APP_TMP, else the system's temp folder)."""
    root = Path(os.environ.get(env_name("app_tmp")) or tempfile.gettempdir()) / "sam2plus-app"
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_work_dir(kind: str, root: Optional[Path] = None) -> Path:
    folder = (root or work_root()) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-", dir=folder))


def sweep_work_dirs(kind: str, max_age: float, root: Optional[Path] = None) -> int:
    """Remove the work folders of `kind` older than `max_age` seconds; returns how many."""
    folder = (root or work_root()) / kind
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in folder.iterdir():
        try:
            if now - path.stat().st_mtime > max_age:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


class StopSignal:
    """The Stop flag of a job: a file, so that a job in another process (ZeroGPU) sees it too."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def set(self) -> None:
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_set(self) -> bool:
        return self.path.exists()


@dataclass(eq=False)
class WorkDir:
    """A folder owned by one session or API call, where at most one tracking job runs at a time.
    close() removes it; while a job runs, close() stops the job and the folder goes when the job ends."""

    path: Path
    busy: bool = False
    closed: bool = False
    _close_when_idle: bool = False
    _release_delay: Optional[float] = None  # set by release(): remove this long after the job ends

    @classmethod
    def create(cls, kind: str, root: Optional[Path] = None) -> "WorkDir":
        return cls(new_work_dir(kind, root))

    @property
    def stop(self) -> StopSignal:
        return StopSignal(self.path / "stop")

    def begin_job(self) -> None:
        if self.busy:
            raise AppInputError("tracking is already running")
        if self.closed:
            raise AppInputError("this session has ended; reload the page")
        self.stop.clear()
        self.busy = True

    def end_job(self) -> None:
        self.busy = False
        self.stop.clear()
        if self._release_delay is not None:
            self.release(self._release_delay)
        elif self._close_when_idle:
            self.close()

    def release(self, delay: float) -> None:
        """Remove the folder `delay` seconds after its job ends (or from now when idle), without stopping the
        job. For API calls: the caller still receives the results, which Gradio copies from here once the job
        has ended, even when its connection dropped for a moment and Gradio ended its session."""
        if self.busy:
            self._release_delay = delay
            return
        timer = threading.Timer(delay, self.close)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        if self.busy:
            self.stop.set()
            self._close_when_idle = True
            return
        shutil.rmtree(self.path, ignore_errors=True)
        self.closed = True


class SessionFiles:
    """The closers (e.g. `WorkDir.close`) of each Gradio session, called when that session ends."""

    def __init__(self) -> None:
        self._closers: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()

    def add(self, session_hash: Optional[str], closer: Callable[[], None]) -> None:
        if session_hash:
            with self._lock:
                self._closers.setdefault(session_hash, []).append(closer)

    def discard(self, session_hash: Optional[str], closer: Callable[[], None]) -> None:
        with self._lock:
            closers = self._closers.get(session_hash or "", [])
            if closer in closers:
                closers.remove(closer)

    def end_session(self, session_hash: Optional[str]) -> int:
        """Call every closer of the session; returns how many."""
        with self._lock:
            closers = self._closers.pop(session_hash or "", [])
        for closer in closers:
            try:
                closer()
            except Exception:  # one failing closer must not keep the others' files
                log.exception("cleaning up after session %s failed", session_hash)
        return len(closers)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(closers) for closers in self._closers.values())
