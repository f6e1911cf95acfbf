"""The app over raw HTTP, as a browser tab talks to it: one session hash, its heartbeat connection (which can be
dropped and reopened with the same hash), uploads, and the UI's private events through Gradio's queue. For the
tests of a session's life cycle, where gradio_client cannot drop and restore a heartbeat or call private events.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import httpx


@dataclass
class EventOutcome:
    """What Gradio sent for one event: its outputs (or its error) and the toasts (gr.Warning / gr.Info)."""

    success: bool
    data: list = field(default_factory=list)
    error: Any = None
    logs: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


class RawSession:
    """A browser tab's session against the app at `url` (ending in /)."""

    def __init__(self, url: str, session_hash: Optional[str] = None) -> None:
        self.url = url
        self.session_hash = session_hash or secrets.token_hex(6)
        self.http = httpx.Client(base_url=url, timeout=60)
        config = self.http.get("config").json()
        self.events = {d["api_name"]: d for d in config["dependencies"] if d.get("api_name")}
        self._heartbeat: Optional[tuple[threading.Thread, threading.Event]] = None

    # ------------------------------------------------------------------ the heartbeat
    def open_heartbeat(self) -> None:
        """Hold Gradio's heartbeat connection of this session open (in a thread) until `drop_heartbeat`."""
        assert self._heartbeat is None
        opened, done = threading.Event(), threading.Event()

        def hold() -> None:
            with httpx.Client(base_url=self.url, timeout=None) as http:
                with http.stream("GET", f"gradio_api/heartbeat/{self.session_hash}") as response:
                    opened.set()
                    for _ in response.iter_bytes():
                        if done.is_set():
                            return  # closing the stream drops the connection, as a lost network does

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        assert opened.wait(30)
        self._heartbeat = (thread, done)

    def drop_heartbeat(self) -> None:
        thread, done = self._heartbeat
        done.set()
        thread.join(30)
        self._heartbeat = None

    # ------------------------------------------------------------------ uploads and events
    def upload(self, path: Path) -> dict:
        with open(path, "rb") as file:
            response = self.http.post("gradio_api/upload", files=[("files", (path.name, file, "video/mp4"))])
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, event: str, *data: Any, event_data: Any = None, timeout: float = 120) -> EventOutcome:
        """Run the UI event `event` (its fn name) with `data` for its inputs (None for the gr.State) and wait
        for its end."""
        with httpx.Client(base_url=self.url, timeout=timeout) as http:
            self.join(http, event, *data, event_data=event_data)
            return read_until_done(http, self.session_hash)

    def join(self, http: httpx.Client, event: str, *data: Any, event_data: Any = None) -> None:
        """Queue the event; its messages come on the session's /queue/data stream (`read_until_done`)."""
        dependency = self.events[event]
        target = dependency["targets"][0][0] if dependency["targets"] else None
        body = {"data": list(data), "fn_index": dependency["id"], "session_hash": self.session_hash,
                "event_data": event_data, "trigger_id": target}
        http.post("gradio_api/queue/join", json=body).raise_for_status()

    def close(self) -> None:
        if self._heartbeat is not None:
            self.drop_heartbeat()
        self.http.close()


def read_until_done(http: httpx.Client, session_hash: str) -> EventOutcome:
    logs: list[str] = []
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as response:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "log":
                logs.append(message.get("log") or message.get("title") or "")
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return EventOutcome(bool(message.get("success")), output.get("data") or [], output.get("error"),
                                    logs, message)
    raise AssertionError("the event's stream ended without its result")
