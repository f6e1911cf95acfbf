"""The batch's output folder: one folder a finished video, `summary.jsonl`, and a staging area.

    DIR/<name>/overlay.mp4, results.zip, results.json   the outputs asked for (sam2_plus.track.OUTPUT_FILES)
    DIR/summary.jsonl                                   one VideoRecord a manifest line, in manifest order
    DIR/.staging/                                       outputs being written; emptied when a run starts

A video is written into its own staging folder, which is renamed to DIR/<name> only when every output is
finished, so DIR/<name> holding the outputs asked for means the video is done, however a run ended. One
run at a time may use a folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterable, Optional

from ..track import OUTPUT_FILES
from .manifest import VideoJob

SUMMARY_FILE = "summary.jsonl"
STAGING_DIR = ".staging"

DONE = "done"  # tracked by this run
SKIPPED = "skipped"  # complete from an earlier run
FAILED = "failed"  # unusable input, or the model failed
STOPPED = "stopped"  # Ctrl-C came while it was tracked; nothing kept
PENDING = "pending"  # not started (the run was stopped first)
STATUSES = (DONE, SKIPPED, FAILED, STOPPED, PENDING)


@dataclass(frozen=True)
class VideoRecord:
    """A video's line of summary.jsonl."""

    name: str
    video: str
    status: str  # one of STATUSES
    frames: Optional[int] = None  # frames tracked and written
    objects: Optional[int] = None
    seconds: Optional[float] = None  # the video's job: decoding, model, writing (and loading the model, once)
    error: Optional[str] = None

    @classmethod
    def of(cls, job: VideoJob, status: str, **values) -> "VideoRecord":
        return cls(job.name, str(job.video), status, **values)

    def to_json(self) -> str:
        values = asdict(self)
        if self.seconds is not None:
            values["seconds"] = round(self.seconds, 3)
        return json.dumps(values)

    @classmethod
    def from_json(cls, line: str) -> Optional["VideoRecord"]:
        """The record of a summary line; None for a line that is not one (a line cut short by a kill)."""
        try:
            values = json.loads(line)
            return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
        except (ValueError, TypeError):
            return None


class OutputStore:
    """DIR: where the workers stage and publish videos and the driver keeps the summary."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.staging_root = self.root / STAGING_DIR
        self.summary_path = self.root / SUMMARY_FILE

    def folder(self, job: VideoJob) -> Path:
        return self.root / job.name

    def is_complete(self, job: VideoJob) -> bool:
        folder = self.folder(job)
        return all((folder / OUTPUT_FILES[name]).exists() for name in job.outputs)

    def start_run(self) -> None:
        """Create DIR and empty the staging area (what a killed run left half-written)."""
        self.staging_root.mkdir(parents=True, exist_ok=True)
        for leftover in self.staging_root.iterdir():
            _remove(leftover)

    def stage(self, job: VideoJob) -> Path:
        """A new, empty folder for the job's outputs."""
        self.staging_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{job.name}.", dir=self.staging_root))

    def discard(self, staged: Path) -> None:
        _remove(staged)

    def publish(self, job: VideoJob, staged: Path) -> None:
        """Make the staged outputs DIR/<name> (an incomplete folder there from an older run is replaced)."""
        target = self.folder(job)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{job.name}.old.", dir=self.staging_root))
            os.replace(target, old / job.name)
            os.replace(staged, target)
            _remove(old)
        else:
            os.replace(staged, target)

    def read_summary(self) -> dict[str, VideoRecord]:
        """The last record of each name in summary.jsonl (empty when there is none)."""
        try:
            lines = self.summary_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        records = (VideoRecord.from_json(line) for line in lines if line.strip())
        return {record.name: record for record in records if record is not None}

    def append_summary(self, record: VideoRecord) -> None:
        """Add a finished video's line at once, so a killed run still leaves it (write_summary tidies up)."""
        with open(self.summary_path, "a", encoding="utf-8") as file:
            file.write(record.to_json() + "\n")

    def write_summary(self, records: Iterable[VideoRecord]) -> None:
        """Replace summary.jsonl with exactly these lines, atomically."""
        handle, temporary = tempfile.mkstemp(prefix="summary.", dir=self.staging_root)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.writelines(record.to_json() + "\n" for record in records)
        os.replace(temporary, self.summary_path)


def skipped_record(job: VideoJob, earlier: Optional[VideoRecord]) -> VideoRecord:
    """A complete video's line: what its earlier run measured, when the summary still has it."""
    if earlier is None or earlier.status not in (DONE, SKIPPED):
        return VideoRecord.of(job, SKIPPED)
    return replace(earlier, video=str(job.video), status=SKIPPED, error=None)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
