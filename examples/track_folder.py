"""Track every video of a folder with the Space's /track endpoint; needs only `pip install gradio_client`.

    python examples/track_folder.py VIDEOS --prompts prompts.json --out results/ \\
        --space http://127.0.0.1:7860/ --concurrency 2 --model sam2++

The outputs have the layout of `python -m sam2_plus.batch`: results/<video name>/overlay.mp4, results.zip and
results.json, and results/summary.jsonl with one line per video (status, frames, objects, seconds, error).
A video's prompts are VIDEOS/<video name>.json when that file exists, else --prompts (the prompts JSON of
sam2_plus/prompts.py). At most --concurrency videos are sent at once; a request the Space's queue refuses
("Queue is full") is sent again after a growing pause, up to --retries times. A video whose folder is complete
is skipped, so running the command again finishes an interrupted run; a folder appears only once all three
files are in it. `--space` is a URL or a Space's name ("owner/space"; add --token for a private one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import httpx
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError, TooManyRequestsError

# The layout of `python -m sam2_plus.batch` (sam2_plus.track.OUTPUT_FILES), in the order /track returns them.
OUTPUT_FILES = {"overlay": "overlay.mp4", "export": "results.zip", "json": "results.json"}
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif")
SUMMARY_FILE = "summary.jsonl"
STAGING_DIR = ".staging"
FIRST_PAUSE = 2.0  # seconds before the first retry; doubled each time, at most MAX_PAUSE, with jitter
MAX_PAUSE = 60.0


@dataclass(frozen=True)
class VideoRecord:
    """A line of summary.jsonl, as sam2_plus.batch writes it."""

    name: str
    video: str
    status: str  # done, skipped (complete from an earlier run) or failed
    frames: Optional[int] = None
    objects: Optional[int] = None
    seconds: Optional[float] = None
    error: Optional[str] = None


def pause(attempt: int) -> None:
    time.sleep(min(FIRST_PAUSE * 2 ** attempt, MAX_PAUSE) * random.uniform(0.5, 1.0))


def is_busy(error: Exception) -> bool:
    """The Space refused a request for a full queue (Gradio's, or the app's queue for the GPU) or too many
    requests: worth sending again later."""
    return isinstance(error, (QueueError, TooManyRequestsError)) or (
        isinstance(error, AppError) and str(error).startswith("Queue is full"))


def call_with_retries(call: Callable[[], tuple], retries: int, name: str) -> tuple:
    """`call()`, again after a pause while the Space refuses it for a full queue or too many requests."""
    attempt = 0
    while True:
        try:
            return call()
        except (QueueError, TooManyRequestsError, AppError) as e:
            if not is_busy(e) or attempt == retries:
                raise
            print(f"{name}: {e} (retry {attempt + 1} of {retries})", file=sys.stderr, flush=True)
            pause(attempt)
            attempt += 1


@dataclass(frozen=True)
class Batch:
    client: Client
    out: Path
    default_prompts: Optional[str]
    options: str
    retries: int

    def track(self, video: Path) -> VideoRecord:
        started = time.perf_counter()
        try:
            prompts = self.prompts_for(video)
            files = call_with_retries(lambda: self.client.predict(
                handle_file(str(video)), prompts, self.options, api_name="/track"), self.retries, video.stem)
            frames, objects = self.publish(video.stem, files)
        except (AppError, QueueError, TooManyRequestsError, httpx.HTTPError, ValueError, OSError) as e:
            return VideoRecord(video.stem, str(video), "failed", seconds=time.perf_counter() - started,
                               error=" ".join(str(e).split()) or type(e).__name__)
        return VideoRecord(video.stem, str(video), "done", frames, objects, time.perf_counter() - started)

    def prompts_for(self, video: Path) -> str:
        own = video.with_suffix(".json")
        if own.is_file():
            return own.read_text(encoding="utf-8")
        if self.default_prompts is None:
            raise ValueError(f"no prompts: {own.name} does not exist and --prompts was not given")
        return self.default_prompts

    def publish(self, name: str, files: Sequence[str]) -> tuple[int, int]:
        """The three files into out/<name>, all at once; (frames, objects) of the results JSON."""
        header = json.loads(Path(files[2]).read_text(encoding="utf-8"))
        frames, total = len(header["frames"]), header["video"]["num_frames"]
        if frames < total:  # the model failed part way; the Space sent what it had
            raise ValueError(f"the Space tracked only {frames} of {total} frames")
        staging = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=self.out / STAGING_DIR))
        for source, target in zip(files, OUTPUT_FILES.values()):
            shutil.copyfile(source, staging / target)
        shutil.rmtree(self.out / name, ignore_errors=True)  # an incomplete folder of an older run
        os.replace(staging, self.out / name)
        return frames, len(header["objects"])


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in OUTPUT_FILES.values())


def earlier_records(out: Path) -> dict[str, dict]:
    try:
        lines = (out / SUMMARY_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    records = {}
    for line in lines:
        try:
            record = json.loads(line)
            records[record["name"]] = record
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short when a run was killed
    return records


def run(batch: Batch, videos: Sequence[Path], concurrency: int) -> list[VideoRecord]:
    earlier = earlier_records(batch.out)
    records: dict[str, VideoRecord] = {}
    for video in videos:
        if is_complete(batch.out / video.stem):
            values = {**earlier.get(video.stem, {}), "name": video.stem, "video": str(video), "status": "skipped",
                      "error": None}
            records[video.stem] = VideoRecord(**{k: values.get(k) for k in VideoRecord.__dataclass_fields__})
    lock = threading.Lock()

    def track(video: Path) -> None:
        record = batch.track(video)
        with lock:
            records[video.stem] = record
            with open(batch.out / SUMMARY_FILE, "a", encoding="utf-8") as file:
                file.write(json.dumps(asdict(record)) + "\n")
            print(f"{record.name}: {record.status}" + (f" ({record.error})" if record.error else ""), flush=True)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(track, [video for video in videos if video.stem not in records]))
    ordered = [records[video.stem] for video in videos]
    summary = batch.out / STAGING_DIR / SUMMARY_FILE
    summary.write_text("".join(json.dumps(asdict(r)) + "\n" for r in ordered), encoding="utf-8")
    os.replace(summary, batch.out / SUMMARY_FILE)
    return ordered


def find_videos(folder: Path) -> list[Path]:
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    stems = [p.stem for p in videos]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise SystemExit(f"error: several videos are named {repeated[0]!r} (with other suffixes); rename them")
    return videos


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", type=Path, help="folder of videos")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--prompts", type=Path, help="prompts JSON for videos without their own <name>.json")
    parser.add_argument("--space", default="http://127.0.0.1:7860/", help="the app's URL or a Space's name")
    parser.add_argument("--token", help="Hugging Face token, for a private Space")
    parser.add_argument("--model", default="sam2++")
    parser.add_argument("--motion-aware", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2, help="videos sent at once (default 2)")
    parser.add_argument("--retries", type=int, default=8, help="retries of a request the queue refuses")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.concurrency < 1 or args.retries < 0:
        raise SystemExit("error: --concurrency must be at least 1 and --retries at least 0")
    if not args.videos.is_dir():
        raise SystemExit(f"error: {args.videos} is not a folder")
    prompts = args.prompts.read_text(encoding="utf-8") if args.prompts else None
    videos = find_videos(args.videos)
    shutil.rmtree(args.out / STAGING_DIR, ignore_errors=True)  # what a killed run left half-written
    (args.out / STAGING_DIR).mkdir(parents=True, exist_ok=True)
    options = json.dumps({"model": args.model, "motion_aware": args.motion_aware})
    client = Client(args.space, token=args.token, verbose=False)
    try:
        records = run(Batch(client, args.out, prompts, options, args.retries), videos, args.concurrency)
    finally:
        client.close()
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + f"; summary: {args.out / SUMMARY_FILE}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
