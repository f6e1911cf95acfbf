"""Where sessions and API calls keep their files, and when those files go.

Each browser session and each API call owns a `WorkDir` under `work_root()`. `SessionFiles` remembers them
per Gradio session (the browser tab or the API client) and closes them once that session's client has been
gone for the reconnect grace (SAM2PLUS_RECONNECT_SECONDS): a client on a flaky network that reconnects within
it keeps its files and its running job; one that does not has its job stopped after the current frame and its
files removed. (Gradio itself keeps a closed session's gr.State for an hour, whose delete callback closes the
files too if they are still there.) A `Sweeper` thread does this on a timer and removes leftovers that no live
`WorkDir` holds (a crash, a restart) once untouched for SAM2PLUS_LEFTOVER_SECONDS.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import AppInputError
from .settings import AppLimits, env_name

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
    """Remove the work folders of `kind` untouched for `max_age` seconds that no live `WorkDir` of this process
    holds (leftovers of a crash, a restart, or anything missed); returns how many."""
    folder = (root or work_root()) / kind
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in folder.iterdir():
        try:
            if now - path.stat().st_mtime > max_age and not _live.holds(path):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


class _LiveFolders:
    """The folders of this process's open `WorkDir`s, which the sweep never removes however old."""

    def __init__(self) -> None:
        self._paths: set[Path] = set()
        self._lock = threading.Lock()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path.resolve())

    def discard(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path.resolve())

    def holds(self, path: Path) -> bool:
        with self._lock:
            return path.resolve() in self._paths


_live = _LiveFolders()


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

    @classmethod
    def create(cls, kind: str, root: Optional[Path] = None) -> "WorkDir":
        folder = cls(new_work_dir(kind, root))
        _live.add(folder.path)
        return folder

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
        if self._close_when_idle:
            self.close()

    def close(self) -> None:
        if self.busy:
            self.stop.set()
            self._close_when_idle = True
            return
        shutil.rmtree(self.path, ignore_errors=True)
        _live.discard(self.path)
        self.closed = True


Closer = Callable[[], None]


class SessionFiles:
    """The closers (e.g. `WorkDir.close`) of each Gradio session (a browser tab or an API client), called once
    that session's client has been gone for `reconnect_seconds`: a client back within that time (the same
    session reconnecting its heartbeat) keeps its files and its running job.

    Gone means: its last heartbeat connection closed (`heartbeat_closed`, from `HeartbeatWatch`) or Gradio's
    unload event ran (`disconnected`). Closers added for a session that is gone wait for the same deadline;
    added after it passed, they run at once. With `watch_heartbeats()`, a browser session's closers
    (`needs_heartbeat`) start the clock when no heartbeat of theirs is open. `expire` runs the due closers (the
    app's `Sweeper` calls it). Bound methods are held weakly, so that a session Gradio has dropped (its
    gr.State's delete callback closed it) is not kept alive here."""

    def __init__(self, reconnect_seconds: float = AppLimits.reconnect_seconds,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reconnect_seconds = reconnect_seconds
        self._clock = clock
        self._closers: dict[str, list[Callable[[], Optional[Closer]]]] = {}
        self._open: dict[str, int] = {}  # heartbeat connections open per session
        self._gone_since: dict[str, float] = {}
        self._ended: dict[str, float] = {}  # sessions whose closers ran, for closers added later
        self._watching = False
        self._lock = threading.Lock()

    def add(self, session_hash: Optional[str], closer: Closer, needs_heartbeat: bool = False) -> None:
        if not session_hash:
            return
        with self._lock:
            if session_hash not in self._ended:
                self._closers.setdefault(session_hash, []).append(_reference(closer))
                if needs_heartbeat and self._watching and not self._open.get(session_hash):
                    self._gone_since.setdefault(session_hash, self._clock())
                return
        _call(closer, session_hash)

    def discard(self, closer: Closer) -> None:
        """Forget `closer` (its owner closed its files itself)."""
        with self._lock:
            self._closers = {session_hash: kept for session_hash, references in self._closers.items()
                             if (kept := [r for r in references if r() is not None and r() != closer])}

    def move(self, closer: Closer, session_hash: str) -> None:
        """`closer` now belongs to `session_hash` (a reloaded page took over the files of the page it
        replaced): the old session's grace no longer reaches it."""
        self.discard(closer)
        self.add(session_hash, closer, needs_heartbeat=True)

    def here(self, session_hash: str) -> bool:
        """Whether the session's client is connected: a heartbeat of it is open (without `watch_heartbeats`:
        it has not gone)."""
        with self._lock:
            if self._watching:
                return self._open.get(session_hash, 0) > 0
            return session_hash not in self._gone_since and session_hash not in self._ended

    def away(self, session_hash: str) -> bool:
        """Whether the session's client is gone but within the grace: its files are still there."""
        with self._lock:
            return session_hash in self._gone_since

    def ended(self, session_hash: str) -> bool:
        """Whether the session's client stayed away past the grace (its closers ran)."""
        with self._lock:
            return session_hash in self._ended

    def watch_heartbeats(self) -> None:
        self._watching = True

    def heartbeat_opened(self, session_hash: str) -> None:
        with self._lock:
            self._open[session_hash] = self._open.get(session_hash, 0) + 1
            self._gone_since.pop(session_hash, None)
            self._ended.pop(session_hash, None)  # back after the grace: what it opens now is kept

    def heartbeat_closed(self, session_hash: str) -> None:
        with self._lock:
            left = self._open.pop(session_hash, 1) - 1
            if left > 0:
                self._open[session_hash] = left
            else:
                self._gone_since.setdefault(session_hash, self._clock())

    def disconnected(self, session_hash: Optional[str]) -> None:
        """Gradio's unload event: the session's client went away (unless a heartbeat of it is open again)."""
        with self._lock:
            if session_hash and not self._open.get(session_hash):
                self._gone_since.setdefault(session_hash, self._clock())

    def expire(self, forget_after: float = 3600.0) -> int:
        """End the sessions gone for `reconnect_seconds`; returns how many closers ran."""
        now = self._clock()
        with self._lock:
            due = [h for h, since in self._gone_since.items() if now - since >= self.reconnect_seconds]
            for session_hash in due:
                del self._gone_since[session_hash]
                self._ended[session_hash] = now
            self._ended = {h: t for h, t in self._ended.items() if now - t < max(forget_after, 0.0)}
        return sum(self.end_session(session_hash) for session_hash in due)

    def end_session(self, session_hash: Optional[str]) -> int:
        """Call every closer of the session now; returns how many."""
        with self._lock:
            references = self._closers.pop(session_hash or "", [])
        closers = [closer for closer in (r() for r in references) if closer is not None]
        for closer in closers:
            _call(closer, session_hash)
        return len(closers)

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for references in self._closers.values() for r in references if r() is not None)


def _reference(closer: Closer) -> Callable[[], Optional[Closer]]:
    if inspect.ismethod(closer):
        return weakref.WeakMethod(closer)
    return lambda: closer


def _call(closer: Closer, session_hash: Optional[str]) -> None:
    try:
        closer()
    except Exception:  # one failing closer must not keep the others' files
        log.exception("cleaning up after session %s failed", session_hash)


HEARTBEAT_PATH = re.compile(r"/heartbeat/([^/]+)/?$")


class HeartbeatWatch:
    """ASGI middleware: tells `SessionFiles` when a client's heartbeat connection (Gradio's
    /gradio_api/heartbeat/{session_hash}, held open by every page and gradio_client) opens and closes, so that
    a session that reconnects is known to be back. Gradio itself runs nothing when a heartbeat reconnects."""

    def __init__(self, app: Any, session_files: SessionFiles) -> None:
        self.app, self.session_files = app, session_files
        session_files.watch_heartbeats()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        match = HEARTBEAT_PATH.search(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        session_hash = match.group(1)
        self.session_files.heartbeat_opened(session_hash)
        try:
            await self.app(scope, receive, send)
        finally:
            self.session_files.heartbeat_closed(session_hash)


class Sweeper:
    """A daemon thread that, every `interval` seconds, ends the sessions gone for longer than their grace
    (`SessionFiles.expire`) and removes leftover folders untouched for `ttl` seconds (`sweep_work_dirs`)."""

    KINDS = ("sessions", "api")

    def __init__(self, session_files: SessionFiles, ttl: float, root: Optional[Path] = None) -> None:
        self.session_files, self.ttl, self.root = session_files, ttl, root or work_root()
        self.interval = min(max(min(session_files.reconnect_seconds, ttl) / 4, 0.2), 30.0)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sam2plus-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def sweep(self) -> int:
        """One round; returns how many closers ran and folders went."""
        done = self.session_files.expire(forget_after=self.ttl)
        return done + sum(sweep_work_dirs(kind, self.ttl, self.root) for kind in self.KINDS)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # the sweeper must outlive one bad folder
                log.exception("sweeping the work folders failed")
