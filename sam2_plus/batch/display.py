"""What a batch shows people: a bar over the videos and one over each running video's frames while it runs
(on stderr), then a table of every video and a line of totals (on stdout)."""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table

from .store import DONE, FAILED, PENDING, SKIPPED, STATUSES, STOPPED, VideoRecord
from .worker import VideoProgress

STATUS_STYLES = {DONE: "green", SKIPPED: "cyan", FAILED: "red", STOPPED: "yellow", PENDING: "dim"}


class BatchDisplay:
    """Progress bars while the batch runs (none when `quiet`); use as a context manager."""

    def __init__(self, total: int, quiet: bool = False, console: Optional[Console] = None) -> None:
        self.console = console or Console(stderr=True)
        self.counts: Counter = Counter()
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                              disable=quiet)
        self._videos = self._bars.add_task("videos", total=total)
        self._frames: dict[str, int] = {}  # running video -> its frames bar
        self._ended: set[str] = set()  # a worker's last progress may come after its video's record

    def __enter__(self) -> "BatchDisplay":
        self._bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bars.stop()

    def progress(self, update: VideoProgress) -> None:
        if update.name in self._ended:
            return
        task = self._frames.get(update.name)
        if task is None:
            task = self._frames[update.name] = self._bars.add_task(f"  {update.name}", total=None)
        self._bars.update(task, completed=update.frames_done, total=update.frames_total or None)

    def finished(self, record: VideoRecord) -> None:
        self._ended.add(record.name)
        task = self._frames.pop(record.name, None)
        if task is not None:
            self._bars.remove_task(task)
        self.counts[record.status] += 1
        totals = ", ".join(f"{self.counts[s]} {s}" for s in STATUSES if self.counts[s])
        self._bars.update(self._videos, advance=1, description=f"videos ({totals})")


def results_table(records: Sequence[VideoRecord]) -> Table:
    table = Table(title="batch")
    for column, justify in (("video", "left"), ("status", "left"), ("frames", "right"), ("objects", "right"),
                            ("seconds", "right"), ("error", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for r in records:
        table.add_row(r.name, f"[{STATUS_STYLES[r.status]}]{r.status}[/]", _number(r.frames), _number(r.objects),
                      _number(r.seconds, "{:.1f}"), r.error or "")
    return table


def totals_line(records: Sequence[VideoRecord], seconds: float) -> str:
    counts = Counter(r.status for r in records)
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    frames = sum(r.frames or 0 for r in records if r.status == DONE)
    return f"{len(records)} videos: {parts}; {frames} frames tracked in {seconds:.1f} s"


def show_results(records: Sequence[VideoRecord], seconds: float, console: Optional[Console] = None) -> None:
    console = console or Console()
    console.print(results_table(records))
    console.print(totals_line(records, seconds), highlight=False)


def _number(value, pattern: str = "{}") -> str:
    return "" if value is None else pattern.format(value)
