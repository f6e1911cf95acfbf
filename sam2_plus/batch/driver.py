"""A batch run: complete videos are skipped, the others go to a runner, and summary.jsonl ends with one line
per manifest line, in manifest order, however the run ends."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from .manifest import VideoJob
from .runners import Runner, StopCheck
from .store import PENDING, OutputStore, VideoRecord, skipped_record
from .worker import ProgressSink


def run_batch(jobs: Sequence[VideoJob], store: OutputStore, runner: Runner, progress: ProgressSink,
              finished: Callable[[VideoRecord], None], stop: StopCheck) -> list[VideoRecord]:
    """Track every job whose outputs are not complete yet. `finished(record)` hears of every video as it
    ends (skipped ones first); the records are returned in manifest order."""
    store.start_run()
    earlier = store.read_summary()
    records: dict[str, VideoRecord] = {}
    todo = []
    for job in jobs:
        if store.is_complete(job):
            records[job.name] = skipped_record(job, earlier.get(job.name))
            finished(records[job.name])
        else:
            todo.append(job)

    def ran(record: VideoRecord) -> None:
        records[record.name] = record
        store.append_summary(record)
        finished(record)

    try:
        if todo:
            runner.run(todo, progress, ran, stop)
    finally:
        ordered = [_record_of(job, records.get(job.name)) for job in jobs]
        store.write_summary(ordered)
    return ordered


def _record_of(job: VideoJob, record: Optional[VideoRecord]) -> VideoRecord:
    return record if record is not None else VideoRecord.of(job, PENDING)
