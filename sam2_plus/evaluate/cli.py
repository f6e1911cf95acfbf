"""`python -m sam2_plus.evaluate DATASET_DIR --layout LAYOUT --out DIR`: track a benchmark's sequences from
their first annotations through `sam2_plus.batch`, write the predictions in the dataset's own format, score
them and report (report.py). `--score-only PRED_DIR` scores predictions made elsewhere.

Exit status: 0 every sequence scored, 1 some could not be tracked or scored (the report says which and why),
2 the dataset or an option cannot be used (nothing ran), 130 stopped with Ctrl-C (tracked sequences are kept;
the same command goes on from there)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..batch.cli import add_worker_arguments, check_options
from ..batch.display import totals_line
from ..batch.manifest import ManifestError
from ..batch.runners import BatchError, plan_devices
from ..errors import TrackError, one_line
from ..service import ModelTaskError, check_model, check_weights
from ..track import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_MODEL_FAILED, EXIT_OK, UsageError, untrained_notice, \
    usage_exit_status, weights_option
from ..weights import WEIGHTS_ENV, CheckpointError, WeightsSource
from .datasets import GRANULARITY, LAYOUTS, EvalSequence, read_dataset
from .metrics import trackeval_missing
from .report import RunInfo, checkpoint_of, now, precision_of, show_report, write_report
from .scores import SequenceScore, score_dataset
from .scoring import score_all
from .tracking import PREDICTIONS_DIR, TrackingOptions, claim_tracking_folder, convert, plan_tracking, track, \
    write_manifest

DEFAULT_MODEL = "sam2++"
FRAMES_DIR = "frames"  # TAP-Vid's frames, written from its pickle or npz files for the tracker to read
BAD_INPUT = (UsageError, ManifestError, BatchError, TrackError, CheckpointError, ModelTaskError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sam2_plus.evaluate",
        description="Evaluate a tracker on a benchmark: each sequence is tracked from its first annotation "
                    "(python -m sam2_plus.batch: resumable, a worker per GPU, --ray), its predictions written "
                    "in the dataset's format to DIR/predictions/, and scored into DIR/scores.json, "
                    "DIR/scores.csv and DIR/plots/.",
        epilog=f"Weights: ${WEIGHTS_ENV} = hub (default), a checkpoint path, or seeded[:SEED]; --checkpoint "
               "overrides it. Exit status: 0 all scored, 1 some not tracked or not scored, 2 unusable dataset "
               "or options, 130 stopped (run the same command again to go on).")
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="the dataset's folder")
    parser.add_argument("--layout", required=True, choices=LAYOUTS, help="how the dataset is laid out")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--model", help=f"the model that tracks (default: {DEFAULT_MODEL}); with --score-only, "
                                        "the name the report gives the predictions")
    parser.add_argument("--videos", metavar="LIST", help="only these sequences: names separated by commas, or "
                                                         "@FILE with a name a line")
    parser.add_argument("--score-only", type=Path, metavar="PRED_DIR",
                        help="score the predictions in PRED_DIR (the dataset's format) and track nothing")
    add_worker_arguments(parser)
    return parser


@dataclass(frozen=True)
class Evaluation:
    """What to evaluate, checked: the sequences and where they go."""

    sequences: list[EvalSequence]
    dataset: Path
    layout: str
    out: Path
    quiet: bool


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already printed
        return usage_exit_status(e)
    try:
        check_arguments(args)
        evaluation = Evaluation(read_sequences(args), args.dataset, args.layout, args.out, args.quiet)
        if args.score_only is not None:
            return score_only(evaluation, args.score_only, args.model)
        return track_and_score(evaluation, args)
    except BAD_INPUT as e:
        print(f"error: {e}" if isinstance(e, ManifestError) else f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\naborted; tracked sequences are kept in {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED


def check_arguments(args: argparse.Namespace) -> None:
    """The options checked before the dataset is read (UsageError and the batch's errors)."""
    missing = trackeval_missing() if GRANULARITY[args.layout] == "mask" else None
    if missing is not None:  # DAVIS-like datasets hold several objects a sequence
        raise UsageError(missing)
    if args.score_only is None:
        check_options(args)
        check_model(args.model or DEFAULT_MODEL, {1: GRANULARITY[args.layout]})
        check_weights(weights_option(args.checkpoint))
        return
    tracking = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--device", args.device),
                                         ("--workers", args.workers), ("--ray", args.ray),
                                         ("--cpus-per-worker", args.cpus_per_worker)) if value is not None]
    if tracking:
        raise UsageError(f"--score-only tracks nothing; drop {', '.join(tracking)}")
    if not args.score_only.is_dir():
        raise UsageError(f"--score-only {args.score_only}: no such folder")


def read_sequences(args: argparse.Namespace) -> list[EvalSequence]:
    videos = video_names(args.videos)
    try:
        sequences = read_dataset(args.dataset, args.layout, videos, cache=args.out / FRAMES_DIR)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{args.dataset} ({args.layout}): {one_line(e)}") from None
    if not sequences:
        raise UsageError(f"{args.dataset} holds no {args.layout} sequence")
    return sequences


def video_names(text: Optional[str]) -> Optional[list[str]]:
    """--videos: "a,b" or "@FILE" (a name a line; blank lines and #-comments skipped); None: all."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            lines = Path(text[1:]).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--videos {text}: cannot read the file ({one_line(e)})") from None
        names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--videos {text!r} names no sequence")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- the two ways


def track_and_score(evaluation: Evaluation, args: argparse.Namespace) -> int:
    model = args.model or DEFAULT_MODEL
    weights = weights_option(args.checkpoint)
    out = evaluation.out
    claim_tracking_folder(out, model, weights)
    manifest, unprompted = write_manifest(evaluation.sequences, model, out)
    if len(unprompted) == len(evaluation.sequences):
        raise UsageError(f"no sequence of {evaluation.dataset} has an annotation to prompt with")
    options = TrackingOptions(model, args.checkpoint, args.device, args.workers, args.ray, args.cpus_per_worker)
    plan = plan_tracking(manifest, out, options, args.quiet)
    if not weights.is_trained:
        print(untrained_notice(weights), file=sys.stderr, flush=True)
    try:
        tracked = track(plan, args.quiet)
    except BatchError as e:
        print(f"error: {e}; tracked sequences are kept in {out}", file=sys.stderr)
        return EXIT_MODEL_FAILED
    print(totals_line(tracked.records, tracked.seconds), file=sys.stderr)
    if tracked.stopped:
        print(f"stopped; tracked sequences are kept in {out}: run the same command to go on", file=sys.stderr)
        return EXIT_INTERRUPTED
    missing = unprompted | convert(evaluation.sequences, plan, tracked, out / PREDICTIONS_DIR)
    return score_and_report(evaluation, out / PREDICTIONS_DIR, missing, tracking_info(evaluation, model, weights, args))


def score_only(evaluation: Evaluation, pred_dir: Path, model: Optional[str]) -> int:
    label = f"predictions in {pred_dir}" if model is None else f"{model} (predictions in {pred_dir})"
    info = RunInfo(str(evaluation.dataset), evaluation.layout, label, None, None, None, None, now())
    return score_and_report(evaluation, pred_dir, {}, info)


def tracking_info(evaluation: Evaluation, model: str, weights: WeightsSource, args: argparse.Namespace) -> RunInfo:
    checkpoint, digest = checkpoint_of(weights, model)
    if args.ray is not None:
        devices, device = [], f"Ray ({args.ray}): a GPU an actor, else {args.cpus_per_worker or 1:g} CPUs"
    else:
        devices = plan_devices(args.device, args.workers)
        device = ", ".join(dict.fromkeys(devices)) + (f" ({len(devices)} workers)" if len(devices) > 1 else "")
    return RunInfo(str(evaluation.dataset), evaluation.layout, model, checkpoint, digest, precision_of(devices),
                   device, now())


def score_and_report(evaluation: Evaluation, pred_dir: Path, missing: dict[str, str], info: RunInfo) -> int:
    granularity = evaluation.sequences[0].granularity
    with ScoringProgress(len(evaluation.sequences), evaluation.quiet) as progress:
        sequences = score_all(evaluation.sequences, pred_dir, missing, progress.advance)
    scores = score_dataset(evaluation.layout, granularity, sequences)
    paths = write_report(scores, info, evaluation.out)
    show_report(scores, info, paths, Console())
    return EXIT_MODEL_FAILED if scores.errors else EXIT_OK


class ScoringProgress:
    """A bar over the sequences while they are scored (on stderr; none when quiet)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self._bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=Console(stderr=True), transient=True, disable=quiet)
        self._task = self._bar.add_task("scoring", total=total)

    def __enter__(self) -> "ScoringProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.stop()

    def advance(self, score: SequenceScore) -> None:
        self._bar.update(self._task, advance=1)

