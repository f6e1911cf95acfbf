"""Track objects through a video from the command line.

    python -m sam2_plus.track VIDEO --model sam2++ --task box --box X1,Y1,X2,Y2 \\
        --out overlay.mp4 --export results.zip --json results.json
    python -m sam2_plus.track VIDEO --points "x,y;x,y" --labels 1,0 --frame 10 --out overlay.mp4
    python -m sam2_plus.track VIDEO --prompts prompts.json --export results.zip
    python -m sam2_plus.track VIDEO --prompts prompts.json --out-dir results/   # overlay.mp4, results.zip, .json
    python -m sam2_plus.track VIDEO --prompts prompts.json --export results.zip --export-format cvat,yolo-seg
    python -m sam2_plus.track VIDEO --prompts prompts.json --effect 1=blur --background erase --out-dir results/
    python -m sam2_plus.track VIDEO --find everything --out-dir results/          # objects found by themselves
    python -m sam2_plus.track VIDEO --find "person. car." --keyframe-interval 10 --json results.json

Exit status: 0 done, 2 unusable input (video, prompts, weights, options), 130 stopped with Ctrl-C (the
outputs then hold the frames tracked so far). Weights come from SAM2PLUS_WEIGHTS (hub, a checkpoint
path, or seeded[:SEED]) unless --checkpoint is given.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, TextIO

import numpy as np

from .config import CONFIG_FILES
from .discovery.settings import DEFAULT_DETECTOR, DEFAULT_KEYFRAME_INTERVAL, DiscoveryError, DiscoverySettings, \
    parse_find
from .effects.cli import add_effect_arguments, effect_outputs
from .errors import INPUT_ERRORS, one_line
from .exports import EXPORT_FORMATS, ExportFormatError, parse_export_formats
from .media.rle import encode_rle
from .prompts import TASKS
from .provider import ModelProvider
from .service import (
    TrackFailed,
    TrackOutputs,
    TrackProgress,
    TrackSummary,
    check_outputs,
    prepare_request,
    run_tracking,
)
from .weights import WEIGHTS_ENV, WeightsSource, parse_weights_spec, weights_from_env

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_MODEL_FAILED = 1

# --out-dir's files, by TrackOutputs.paths() name; `python -m sam2_plus.batch` writes each video's folder so.
OUTPUT_FILES = {"overlay": "overlay.mp4", "export": "results.zip", "json": "results.json"}


def usage_exit_status(error: SystemExit) -> int:
    """The exit status of argparse's exit: 0 after --help, EXIT_BAD_INPUT after a usage error it printed."""
    return int(error.code or 0) if not isinstance(error.code, str) else EXIT_BAD_INPUT


class UsageError(ValueError):
    """A command-line value that cannot be used."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sam2_plus.track",
        description="Track objects given as a mask, a box or points, or found by themselves (--find everything "
                    "or by phrases), through a video with SAM 2++ or SAM 2.1; write an overlay video and the "
                    "results (masks, boxes, points; found objects with their label and score).",
        epilog=f"Weights: ${WEIGHTS_ENV} = hub (default), a checkpoint path, or seeded[:SEED] (untrained, for "
               "tests); --checkpoint overrides it. Coordinates are pixels of the video.",
    )
    parser.add_argument("video", type=Path, help="video file, folder of JPEG/PNG frames, or an image")
    parser.add_argument("--model", default="sam2++", choices=list(CONFIG_FILES),
                        help="default: sam2++ (test-micro: a micro network for tests, seeded weights only)")
    prompt = parser.add_argument_group("one object (or use --prompts)")
    prompt.add_argument("--task", choices=TASKS, default=None,
                        help="what to track: mask (default; clicks, a box or a mask in), box (a box in) or "
                             "point (one point in); box and point need sam2++")
    prompt.add_argument("--box", metavar="X1,Y1,X2,Y2", help="a box prompt")
    prompt.add_argument("--points", metavar="X,Y;X,Y", help="click prompts, separated by ';'")
    prompt.add_argument("--labels", metavar="1,0", help="a label per point: 1 positive (default), 0 negative")
    prompt.add_argument("--mask", type=Path, metavar="PNG", help="a mask prompt: PNG of the video's size, "
                                                                 "nonzero = object")
    prompt.add_argument("--frame", type=int, help="frame of the prompt (default 0)")
    prompt.add_argument("--obj-id", type=int, help="object id (default 1)")
    parser.add_argument("--prompts", metavar="JSON", help="prompts JSON file (or JSON text) for any number of "
                                                          "objects and tasks; see sam2_plus/prompts.py")
    add_find_arguments(parser)
    out = parser.add_argument_group("outputs (at least one)")
    out.add_argument("--out", type=Path, metavar="MP4", help="overlay video (H.264 MP4, source size, fps, audio)")
    out.add_argument("--export", type=Path, metavar="ZIP|DIR",
                     help="results: a .zip (mask PNGs, DAVIS PNGs, results.json, boxes.csv, lasot/, points.npz) "
                          "or a folder with the same files")
    out.add_argument("--json", type=Path, metavar="JSON", help="results JSON (masks as COCO RLE, boxes, points)")
    out.add_argument("--export-format", metavar="NAMES",
                     help="also export for tools, comma-separated, into the export: "
                          f"{', '.join(EXPORT_FORMATS)} (or all); see sam2_plus/exports")
    out.add_argument("--out-dir", type=Path, metavar="DIR",
                     help=f"all three into DIR: {', '.join(OUTPUT_FILES.values())} (instead of --out, --export "
                          "and --json)")
    add_effect_arguments(parser)
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--checkpoint", metavar="SPEC", help=f"weights: hub, a path or seeded[:SEED] "
                                                             f"(overrides ${WEIGHTS_ENV})")
    parser.add_argument("--motion-aware", action="store_true", help="motion-aware tracking")
    parser.add_argument("--max-frames", type=int, metavar="N", help="track only the first N frames")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the source's audio")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def add_find_arguments(parser: argparse.ArgumentParser) -> None:
    find = parser.add_argument_group("objects found by themselves (with or without prompts)")
    find.add_argument("--find", metavar="WHAT",
                      help="'everything' (automatic masks) or phrases ending with '.', e.g. \"person. red car.\" "
                           "(an open-vocabulary detector); runs on the first frame and every --keyframe-interval "
                           "frames, so objects that enter later are tracked from where they appear. With --find "
                           "the prompts are optional")
    find.add_argument("--keyframe-interval", type=whole_number, metavar="N",
                      help=f"frames between two searches for new objects (default {DEFAULT_KEYFRAME_INTERVAL})")
    find.add_argument("--find-threshold", type=fraction, metavar="SCORE",
                      help="phrases: the detector's lowest box score kept, 0..1 (default "
                           f"{DiscoverySettings.score_threshold:g})")
    find.add_argument("--detector", metavar="NAME",
                      help="phrases: a zero-shot-object-detection checkpoint of the Hub (default "
                           f"{DEFAULT_DETECTOR})")


def whole_number(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def discovery_option(args: argparse.Namespace) -> Optional[DiscoverySettings]:
    """--find and its options as the job's discovery settings (None without --find)."""
    given = {"--keyframe-interval": ("keyframe_interval", args.keyframe_interval),
             "--find-threshold": ("score_threshold", args.find_threshold), "--detector": ("detector", args.detector)}
    fields = {name: value for name, value in given.values() if value is not None}
    if args.find is None:
        if fields:
            flags = ", ".join(flag for flag, (_, value) in given.items() if value is not None)
            raise UsageError(f"{flags} set how objects are found: give --find everything or --find \"person. car.\"")
        return None
    try:
        settings = parse_find(args.find, **fields)
    except DiscoveryError as e:
        raise UsageError("--" + str(e)) from None  # the settings' messages start with "find: "
    if settings.mode == "everything" and (args.find_threshold is not None or args.detector is not None):
        raise UsageError("--find-threshold and --detector are for phrases (the detector); --find everything uses "
                         "automatic masks")
    return settings


# --------------------------------------------------------------------------- prompts from arguments


def _numbers(text: str, count: Optional[int], what: str, example: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a list of numbers like {example}") from None
    if count is not None and len(values) != count:
        raise UsageError(f"{what} {text!r} needs {count} numbers like {example}")
    return values


def parse_points(text: str) -> list[list[float]]:
    """'x,y;x,y' -> [[x, y], [x, y]]."""
    parts = [p for p in text.split(";") if p.strip()]
    if not parts:
        raise UsageError(f"--points {text!r} holds no point; write x,y;x,y")
    return [_numbers(p, 2, "--points entry", "12.5,40") for p in parts]


def parse_labels(text: str) -> list[int]:
    labels = _numbers(text, None, "--labels", "1,0")
    if any(v not in (0, 1) for v in labels):
        raise UsageError(f"--labels {text!r}: each label is 1 (positive) or 0 (negative)")
    return [int(v) for v in labels]


def read_mask_png(path: Path) -> np.ndarray:
    """HxW bool: palette PNGs are nonzero indices, anything else nonzero grey."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode == "P":
                return np.asarray(image) != 0
            return np.asarray(image.convert("L")) > 0
    except FileNotFoundError:
        raise UsageError(f"--mask {path}: no such file") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UsageError(f"--mask {path}: not a readable image ({e})") from None


def single_object_prompts(args: argparse.Namespace) -> dict[str, Any]:
    """The prompts JSON (as a dict) for the one object the prompt flags describe."""
    if args.labels and not args.points:
        raise UsageError("--labels needs --points")
    prompt: dict[str, Any] = {"frame": 0 if args.frame is None else args.frame}
    if args.points:
        prompt["points"] = parse_points(args.points)
        if args.labels:
            prompt["labels"] = parse_labels(args.labels)
    if args.box:
        prompt["box"] = _numbers(args.box, 4, "--box", "10,20,110,220")
    if args.mask:
        prompt["mask"] = encode_rle(read_mask_png(args.mask))
    obj_id = 1 if args.obj_id is None else args.obj_id
    return {"objects": [{"id": obj_id, "task": args.task or "mask", "prompts": [prompt]}]}


def read_prompts_text(text: str, label: str = "--prompts") -> str:
    """The prompts JSON given as JSON text (starting with '{') or as the path of a file holding it."""
    if text.lstrip().startswith("{"):
        return text
    try:
        return Path(text).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{label} {text}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{label} {text}: cannot be read ({e})") from None


def load_prompts(args: argparse.Namespace, finds: bool = False):
    """JSON text, or a dict built from the single-object flags; None when the job only finds its objects
    (`finds`) and no prompt is given."""
    single = [flag for flag, value in (("--box", args.box), ("--points", args.points), ("--mask", args.mask),
                                       ("--labels", args.labels), ("--task", args.task),
                                       ("--frame", args.frame is not None), ("--obj-id", args.obj_id is not None))
              if value]
    if args.prompts:
        if single:
            raise UsageError(f"--prompts describes every object; drop {', '.join(single)}")
        return read_prompts_text(args.prompts)
    if not (args.box or args.points or args.mask):
        if finds and not single:
            return None
        raise UsageError("give a prompt: --box, --points or --mask (one object), or --prompts"
                         + ("" if finds else "; or --find to find the objects"))
    return single_object_prompts(args)


# --------------------------------------------------------------------------- progress


class ProgressDisplay:
    """A line for each prompt added, then a tqdm bar when tqdm is installed, else one stderr line with frames/s and
    the ETA."""

    def __init__(self, stream: Optional[TextIO] = None, use_tqdm: bool = True, min_interval: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._bar = None
        self._tqdm = _tqdm() if use_tqdm else None
        self._last_line = 0.0
        self._shown = False

    def __call__(self, p: TrackProgress) -> None:
        if p.phase == "loading":
            print("loading the model...", file=self.stream, flush=True)
            return
        if p.phase == "prompting":  # before the bar: each prompt can take a model pass
            if p.prompt is not None:
                print(f"adding the prompts: {p.prompt.describe()}", file=self.stream, flush=True)
            return
        if p.phase in ("finding", "writing"):  # a job that finds objects: a keyframe, the outputs at the end
            self._note("writing the outputs" if p.phase == "writing" else f"finding objects on frame {p.frame_idx}")
            return
        if self._tqdm is not None:
            self._update_bar(p)
        else:
            self._update_line(p)

    def _note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)
            return
        if self._shown:  # end the progress line first
            self.stream.write("\n")
            self._shown = False
        print(text + "...", file=self.stream, flush=True)

    def _update_bar(self, p: TrackProgress) -> None:
        if self._bar is None:
            self._bar = self._tqdm(total=p.frames_total, unit="frame", desc="tracking", file=self.stream)
        self._bar.update(p.frames_done - self._bar.n)

    def _update_line(self, p: TrackProgress) -> None:
        if p.phase != "tracking":
            return
        now = time.monotonic()
        if now - self._last_line < self.min_interval and p.frames_done < p.frames_total:
            return
        self._last_line = now
        rate = "?" if p.frames_per_second is None else f"{p.frames_per_second:.2f}"
        eta = "?" if p.eta is None else _clock(p.eta)
        self.stream.write(f"\rtracking {p.frames_done}/{p.frames_total} frames  {rate} frames/s  ETA {eta}  ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._shown:
            self.stream.write("\n")
            self._shown = False


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- main


def untrained_notice(weights: WeightsSource) -> str:
    rule = "!" * 78
    return (f"{rule}\n!! {weights.describe()}\n"
            f"!! For real results set {WEIGHTS_ENV}=hub (the default) or pass --checkpoint PATH.\n{rule}")


class StopFlag:
    """Ctrl-C once: finish the current frame, write what was tracked. Twice: abort."""

    def __init__(self, notice: str = "stopping after this frame (Ctrl-C again to abort)...") -> None:
        self.requested = False
        self.notice = notice

    def __call__(self) -> bool:
        return self.requested

    @contextmanager
    def on_interrupt(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            print(f"\n{self.notice}", file=sys.stderr, flush=True)

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def folder_outputs(folder: Path, wanted: Sequence[str] = tuple(OUTPUT_FILES), keep_audio: bool = True,
                   export_formats: Sequence[str] = ()) -> TrackOutputs:
    """The outputs named in `wanted` ("overlay", "export", "json") as OUTPUT_FILES in `folder`."""
    paths = {name: Path(folder) / OUTPUT_FILES[name] for name in wanted}
    return TrackOutputs(overlay=paths.get("overlay"), export=paths.get("export"), results_json=paths.get("json"),
                        keep_audio=keep_audio, export_formats=tuple(export_formats))


def export_format_option(text: Optional[str], export_given: bool) -> tuple[str, ...]:
    """--export-format's names, checked; they need --export or --out-dir."""
    try:
        formats = parse_export_formats(text, "--export-format")
    except ExportFormatError as e:
        raise UsageError(str(e)) from None
    if formats and not export_given:
        raise UsageError("--export-format adds to the export: give --export ZIP|DIR or --out-dir too")
    return formats


def command_outputs(args: argparse.Namespace) -> TrackOutputs:
    single = [flag for flag, value in (("--out", args.out), ("--export", args.export), ("--json", args.json),
                                       ("--effect-out", args.effect_out), ("--cutout", args.cutout)) if value]
    formats = export_format_option(args.export_format, args.export is not None or args.out_dir is not None)
    if args.out_dir is not None:
        if single:
            raise UsageError(f"--out-dir names every output; drop {', '.join(single)}")
        outputs = folder_outputs(args.out_dir, keep_audio=not args.no_audio, export_formats=formats)
        return replace(outputs, effects=effect_outputs(args, read_prompts_text, outputs.export))
    outputs = TrackOutputs(overlay=args.out, export=args.export, results_json=args.json,
                           keep_audio=not args.no_audio, export_formats=formats,
                           effects=effect_outputs(args, read_prompts_text))
    if not outputs.paths():
        raise UsageError("nothing to write: give --out, --export and/or --json, or --out-dir")
    return outputs


def weights_option(spec: Optional[str]) -> WeightsSource:
    """--checkpoint's weights, else SAM2PLUS_WEIGHTS's."""
    try:
        return parse_weights_spec(spec) if spec else weights_from_env()
    except ValueError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace, models: Optional[ModelProvider] = None) -> TrackSummary:
    """The job the arguments describe, on `models` (default: the process's shared ModelCache)."""
    outputs = command_outputs(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}")
    weights = weights_option(args.checkpoint)
    discovery = discovery_option(args)
    request = prepare_request(args.video, load_prompts(args, finds=discovery is not None), model=args.model,
                              device=args.device, weights=weights, motion_aware=args.motion_aware,
                              max_frames=args.max_frames, discovery=discovery)
    check_outputs(outputs, request.video)  # before the weights notice: unusable input is one line
    if not weights.is_trained:
        print(untrained_notice(weights), file=sys.stderr, flush=True)
    display = None if args.quiet else ProgressDisplay()
    stop = StopFlag()
    try:
        with stop.on_interrupt():
            return run_tracking(request, outputs, progress=display, should_stop=stop, models=models)
    finally:
        if display is not None:
            display.close()


def main(argv: Optional[Sequence[str]] = None, models: Optional[ModelProvider] = None) -> int:
    """The command; `models`: the model provider (default: the process's shared ModelCache)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already printed
        return usage_exit_status(e)
    try:
        summary = run(args, models)
    except (UsageError, OSError, *INPUT_ERRORS) as e:  # unusable input: one line, status 2
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\naborted; the outputs hold the frames tracked so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrackFailed as e:
        print(e.summary.describe(), file=sys.stderr)
        print(f"error: {one_line(e)}; the outputs hold the frames tracked before it", file=sys.stderr)
        return EXIT_MODEL_FAILED
    print(summary.describe())
    return EXIT_INTERRUPTED if summary.stopped else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
