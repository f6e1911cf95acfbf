"""A dataset tracked through `sam2_plus.batch`, and its results turned into the dataset's own predictions:

    DIR/manifest.jsonl           the batch manifest: a line per sequence (its video, prompts file, model)
    DIR/prompts/<name>.json      each sequence's prompts (`datasets.prompts_for`: each object's first annotation)
    DIR/tracking/                the batch's output folder: <name>/results.json once a sequence is tracked,
                                 summary.jsonl, run.json (the model and weights that track into it)
    DIR/predictions/             the predictions in the dataset's format (`datasets.write_predictions`)

The batch skips sequences tracked by an earlier run, so an interrupted evaluation goes on where it stopped;
run.json keeps a later run from mixing in another model's or weights' tracking."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..batch.cli import STOP_NOTICE, BatchPlan, plan_batch
from ..batch.display import BatchDisplay
from ..batch.driver import run_batch
from ..batch.store import VideoRecord
from ..errors import one_line
from ..track import OUTPUT_FILES, StopFlag, UsageError
from ..weights import WeightsSource
from .datasets import EvalSequence, prompts_for, write_predictions

MANIFEST_FILE = "manifest.jsonl"
PROMPTS_DIR = "prompts"
TRACKING_DIR = "tracking"
PREDICTIONS_DIR = "predictions"
RUN_FILE = "run.json"


@dataclass(frozen=True)
class TrackingOptions:
    """The batch's options (its command line's), for every sequence."""

    model: str
    checkpoint: Optional[str] = None
    device: Optional[str] = None
    workers: Optional[int] = None
    ray: Optional[str] = None
    cpus_per_worker: Optional[float] = None


@dataclass(frozen=True)
class Tracked:
    records: list[VideoRecord]  # a line per sequence, in the dataset's order
    stopped: bool  # Ctrl-C: the sequences tracked by then are kept, the others wait for the next run
    seconds: float


def job_name(seq: EvalSequence) -> str:
    """The sequence's folder in the batch (a name with a '/' in it, as some datasets nest, is flattened)."""
    name = seq.name.replace("/", "__").replace("\\", "__")
    return f"_{name}" if name.startswith(".") else name


def write_manifest(sequences: Sequence[EvalSequence], model: str, out: Path) -> tuple[Path, dict[str, str]]:
    """DIR/manifest.jsonl and DIR/prompts/: a batch line per sequence, asking for the results JSON only; the
    sequences that have no annotation to prompt with are left out (returned with why)."""
    prompts_dir = out / PROMPTS_DIR
    prompts_dir.mkdir(parents=True, exist_ok=True)
    lines, unprompted = [], {}
    for seq in sequences:
        name = job_name(seq)
        try:
            prompts = prompts_for(seq)
        except ValueError as e:
            unprompted[seq.name] = one_line(e)
            continue
        (prompts_dir / f"{name}.json").write_text(json.dumps(prompts), encoding="utf-8")
        lines.append(json.dumps({"video": str(Path(seq.video).resolve()), "prompts": f"{PROMPTS_DIR}/{name}.json",
                                 "name": name, "model": model, "outputs": ["json"]}))
    manifest = out / MANIFEST_FILE
    manifest.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return manifest, unprompted


def claim_tracking_folder(out: Path, model: str, weights: WeightsSource) -> None:
    """DIR/tracking/run.json names the model and weights; a run with others is refused (UsageError)."""
    folder = out / TRACKING_DIR
    identity = {"model": model, "weights": weights_label(weights)}
    path = folder / RUN_FILE
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(identity) + "\n", encoding="utf-8")
        return
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} cannot be read ({one_line(e)}); remove it or use another --out") from None
    if earlier != identity:
        raise UsageError(f"{folder} holds tracking by {earlier.get('model')} with weights {earlier.get('weights')}, "
                         f"not {model} with {identity['weights']}; use another --out for another model or weights")


def weights_label(weights: WeightsSource) -> str:
    """The weights as --checkpoint names them: hub, seeded:SEED or the checkpoint file's absolute path."""
    if weights.kind == "file":
        return str(Path(weights.path).resolve())
    return f"seeded:{weights.seed}" if weights.kind == "seeded" else weights.kind


def plan_tracking(manifest: Path, out: Path, options: TrackingOptions, quiet: bool) -> BatchPlan:
    """The batch's plan (its checks, output folder and workers), as `python -m sam2_plus.batch` makes it."""
    args = argparse.Namespace(manifest=manifest, out=out / TRACKING_DIR, model=options.model, outputs="json",
                              checkpoint=options.checkpoint, device=options.device, workers=options.workers,
                              ray=options.ray, cpus_per_worker=options.cpus_per_worker, quiet=quiet)
    return plan_batch(args)


def track(plan: BatchPlan, quiet: bool = False) -> Tracked:
    """Run the batch (progress bars on stderr unless `quiet`); BatchError and a second Ctrl-C's
    KeyboardInterrupt pass through, the runner closed."""
    stop = StopFlag(STOP_NOTICE)
    started = time.perf_counter()
    try:
        with stop.on_interrupt(), BatchDisplay(len(plan.jobs), quiet) as display:
            records = run_batch(plan.jobs, plan.store, plan.runner, display.progress, display.finished, stop)
    finally:
        plan.runner.close()
    return Tracked(records, stop.requested, time.perf_counter() - started)


def convert(sequences: Sequence[EvalSequence], plan: BatchPlan, tracked: Tracked, pred_dir: Path) -> dict[str, str]:
    """Each tracked sequence's results JSON written as the dataset's predictions in `pred_dir`; the
    sequences that have none, with why."""
    pred_dir.mkdir(parents=True, exist_ok=True)
    jobs = {job.name: job for job in plan.jobs}
    records = {record.name: record for record in tracked.records}
    missing = {}
    for seq in sequences:
        job = jobs.get(job_name(seq))
        if job is None:
            continue  # not in the manifest (write_manifest said why)
        if not plan.store.is_complete(job):
            record = records.get(job.name)
            missing[seq.name] = (record.error if record is not None and record.error else
                                 f"not tracked ({record.status if record is not None else 'pending'})")
            continue
        try:
            write_predictions(seq, plan.store.folder(job) / OUTPUT_FILES["json"], pred_dir)
        except (OSError, ValueError, KeyError) as e:
            missing[seq.name] = f"cannot write its predictions: {one_line(e)}"
    return missing
