"""`python -m sam2_plus.batch MANIFEST --out DIR`: track every video of a manifest (see manifest.py).

Exit status: 0 every video done (or done before), 1 some failed (summary.jsonl says which and why), 2 the
manifest or an option cannot be used (nothing ran), 130 stopped with Ctrl-C (finished videos are kept; the
next run goes on from there)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console

from ..errors import TrackError, one_line
from ..service import check_weights, resolve_device
from ..track import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MODEL_FAILED,
    EXIT_OK,
    OUTPUT_FILES,
    StopFlag,
    UsageError,
    untrained_notice,
    usage_exit_status,
    weights_option,
)
from ..weights import WEIGHTS_ENV, CheckpointError
from .cluster import RayPool, import_ray
from .display import BatchDisplay, show_results
from .driver import run_batch
from .manifest import ManifestError, VideoJob, job_defaults, read_manifest
from .runners import BatchError, InProcessRunner, PoolRunner, ProcessPool, Runner, plan_devices
from .store import FAILED, OutputStore, VideoRecord
from .worker import WorkerSetup

STOP_NOTICE = "stopping after the current frame; finished videos are kept (Ctrl-C again to abort)..."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sam2_plus.batch",
        description="Track the videos of a JSONL manifest (one video and its prompts a line) into DIR/<name>/, "
                    "as python -m sam2_plus.track --out-dir writes them, with DIR/summary.jsonl. A re-run skips "
                    "finished videos.",
        epilog=f"Weights: ${WEIGHTS_ENV} = hub (default), a checkpoint path, or seeded[:SEED]; --checkpoint "
               "overrides it. Exit status: 0 all done, 1 some failed, 2 unusable manifest or options, 130 "
               "stopped.")
    parser.add_argument("manifest", type=Path, help="JSONL: {\"video\", \"prompts\", optional \"name\", \"model\", "
                                                     "\"motion_aware\", \"outputs\", \"max_frames\"} a line")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--model", default="sam2++", help="model of lines that name none (default: sam2++)")
    parser.add_argument("--outputs", default=",".join(OUTPUT_FILES), metavar="LIST",
                        help=f"outputs of lines that name none, from {', '.join(OUTPUT_FILES)} "
                             f"(default: all)")
    add_worker_arguments(parser)
    return parser


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The weights, where the workers run (one machine or Ray) and --quiet: the batch's and the evaluation's."""
    parser.add_argument("--checkpoint", metavar="SPEC", help=f"weights: hub, a path or seeded[:SEED] "
                                                             f"(overrides ${WEIGHTS_ENV})")
    machine = parser.add_argument_group("one machine")
    machine.add_argument("--device", help="the device of every worker (default: one worker per GPU, else the CPU)")
    machine.add_argument("--workers", type=int, metavar="N",
                         help="worker processes, each with its own model (default: one per GPU, else 1); "
                              "with --ray, the most actors")
    cluster = parser.add_argument_group("Ray")
    cluster.add_argument("--ray", metavar="ADDRESS", help="track on Ray: 'local' starts Ray on this machine, "
                                                          "'auto' or HOST:PORT joins a running cluster")
    cluster.add_argument("--cpus-per-worker", type=float, metavar="N",
                         help="CPUs of an actor on a cluster without GPUs (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


@dataclass(frozen=True)
class BatchPlan:
    jobs: list[VideoJob]
    store: OutputStore
    runner: Runner
    setup: WorkerSetup


def plan_batch(args: argparse.Namespace) -> BatchPlan:
    """Every option and the whole manifest checked, then the output folder made and the workers' pool (a Ray
    connection too); UsageError, ManifestError, BatchError or the service's errors otherwise."""
    check_options(args)
    weights = weights_option(args.checkpoint)
    if weights.kind == "file":  # workers may run in another folder
        weights = replace(weights, path=str(Path(weights.path).resolve()))
    check_weights(weights)
    jobs = read_manifest(args.manifest, job_defaults(args.model, args.outputs))
    store = OutputStore(args.out.resolve())  # workers may run elsewhere, in another folder
    try:
        store.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot create the folder ({e.strerror or e})") from None
    setup = WorkerSetup(store, weights)
    return BatchPlan(jobs, store, make_runner(args, setup), setup)


def check_options(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.ray is None:
        if args.cpus_per_worker is not None:
            raise UsageError("--cpus-per-worker goes with --ray")
        if args.device is not None:
            resolve_device(args.device)
        return
    if args.device is not None:
        raise UsageError("--device is for one machine; on Ray every actor uses its GPU, or the CPU")
    if args.cpus_per_worker is not None and args.cpus_per_worker <= 0:
        raise UsageError(f"--cpus-per-worker must be more than 0, got {args.cpus_per_worker:g}")
    import_ray()  # says how to install it


def make_runner(args: argparse.Namespace, setup: WorkerSetup) -> Runner:
    if args.ray is not None:
        cpus = 1.0 if args.cpus_per_worker is None else args.cpus_per_worker
        return PoolRunner(RayPool(setup, args.ray, args.workers, cpus))
    devices = plan_devices(args.device, args.workers)
    if len(devices) == 1:
        return InProcessRunner(setup, devices[0])
    return PoolRunner(ProcessPool(setup, devices))


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already printed
        return usage_exit_status(e)
    try:
        plan = plan_batch(args)
    except (UsageError, ManifestError, BatchError, TrackError, CheckpointError) as e:
        print(f"error: {e}" if isinstance(e, ManifestError) else f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not plan.setup.weights.is_trained:
        print(untrained_notice(plan.setup.weights), file=sys.stderr, flush=True)
    return run(plan, quiet=args.quiet)


def run(plan: BatchPlan, quiet: bool = False) -> int:
    stop = StopFlag(STOP_NOTICE)
    started = time.perf_counter()
    try:
        with stop.on_interrupt(), BatchDisplay(len(plan.jobs), quiet) as display:
            records = run_batch(plan.jobs, plan.store, plan.runner, display.progress, display.finished, stop)
    except KeyboardInterrupt:
        print(f"\naborted; finished videos are kept in {plan.store.root}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BatchError as e:
        print(f"error: {e}; finished videos are kept in {plan.store.root}", file=sys.stderr)
        return EXIT_MODEL_FAILED
    finally:
        plan.runner.close()
    show_results(records, time.perf_counter() - started, Console())
    print(f"summary: {plan.store.summary_path}")
    return exit_status(records, stop.requested)


def exit_status(records: Sequence[VideoRecord], stopped: bool) -> int:
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_MODEL_FAILED if any(r.status == FAILED for r in records) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
