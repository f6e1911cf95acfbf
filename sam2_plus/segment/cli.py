"""Segment a still image, or find the objects in it, from the command line.

    python -m sam2_plus.segment photo.jpg --prompts prompts.json --out results/
    python -m sam2_plus.segment photo.jpg --prompts '{"objects": [{"id": 1, "task": "mask",
        "prompts": [{"frame": 0, "points": [[120, 80]]}]}]}' --choose 1=2 --model sam2.1-tiny
    python -m sam2_plus.segment photo.jpg --everything --density fine --max-proposals 20 --out proposals/
    python -m sam2_plus.segment clip.mp4 --everything --frame 12           # a video's frame

--prompts writes mask PNGs, RGBA cut-outs, COCO JSON, results.json and segmentation.zip (writers.py);
--everything writes the proposals' mask PNGs, COCO JSON, proposals.json and proposals.zip. Options come from
--options JSON (text or a file) and the flags, which add to it (a key given both ways is refused).

Exit status: 0 done, 2 unusable input (image, prompts, options, weights), 130 stopped with Ctrl-C. Weights come
from SAM2PLUS_WEIGHTS (hub, a checkpoint path, or seeded[:SEED]) unless --checkpoint is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from ..config import CONFIG_FILES
from ..errors import INPUT_ERRORS, one_line
from ..provider import shared_models
from ..track import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, UsageError, read_prompts_text, untrained_notice, \
    usage_exit_status, weights_option
from ..weights import WEIGHTS_ENV
from .inputs import DENSITIES, SORT_KEYS
from .runs import FindOutcome, SegmentOutcome, prepare_find, prepare_segment, run_find_objects, run_segment_image

# flag -> the options key it sets (--everything's)
FIND_FLAGS = {"density": "density", "points_per_side": "points_per_side", "pred_iou_thresh": "pred_iou_thresh",
              "stability_thresh": "stability_score_thresh", "crop_layers": "crop_n_layers",
              "max_proposals": "max_proposals", "sort": "sort"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sam2_plus.segment",
        description="Segment objects in a still image from prompts (clicks, a box, a mask; three candidates for a "
                    "lone click), or find every object in it (--everything); write mask PNGs, cut-outs, COCO JSON "
                    "and the results JSON.",
        epilog=f"Weights: ${WEIGHTS_ENV} = hub (default), a checkpoint path, or seeded[:SEED] (untrained, for "
               "tests); --checkpoint overrides it. Coordinates are pixels of the image (after its EXIF rotation).",
    )
    parser.add_argument("image", type=Path, help="PNG, JPEG or WebP image (--everything: also a video, with --frame)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--prompts", metavar="JSON", help="prompts JSON file (or JSON text) of sam2_plus/prompts.py, "
                                                        "every prompt on frame 0")
    mode.add_argument("--everything", action="store_true", help="find every object (automatic masks)")
    parser.add_argument("--model", choices=list(CONFIG_FILES), help="default: sam2++")
    parser.add_argument("--options", metavar="JSON", help="options JSON file or text (README: Still images)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: IMAGE's name + "
                                                                "-segmentation or -proposals, here)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--checkpoint", metavar="SPEC", help=f"weights: hub, a path or seeded[:SEED] "
                                                             f"(overrides ${WEIGHTS_ENV})")
    prompts = parser.add_argument_group("--prompts")
    prompts.add_argument("--choose", action="append", metavar="ID=INDEX", default=[],
                         help="keep candidate INDEX (0-2) of object ID instead of the highest predicted IoU")
    prompts.add_argument("--single-mask", action="store_true", help="one candidate for a lone click too")
    find = parser.add_argument_group("--everything")
    find.add_argument("--frame", type=int, default=0, help="the video's frame (default 0)")
    find.add_argument("--density", choices=list(DENSITIES), help="grid of clicks: coarse 8, normal 16 (default), "
                                                                 "fine 32 points per side")
    find.add_argument("--points-per-side", type=int, metavar="N", help="grid of N x N clicks (overrides --density)")
    find.add_argument("--pred-iou-thresh", type=float, metavar="X", help="keep masks above this predicted IoU "
                                                                         "(default 0.8)")
    find.add_argument("--stability-thresh", type=float, metavar="X", help="keep masks above this stability "
                                                                          "(default 0.95)")
    find.add_argument("--crop-layers", type=int, metavar="N", help="also run on 4^k crops for k=1..N (default 0)")
    find.add_argument("--max-proposals", type=int, metavar="N", help="at most N proposals (default 64)")
    find.add_argument("--sort", choices=SORT_KEYS, help="largest area first (default) or highest predicted IoU")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    return parser


def options_document(args: argparse.Namespace) -> dict[str, Any]:
    """--options with the flags added (UsageError for a key given both ways, or flags of the other mode)."""
    document = _read_options(args.options) if args.options else {}
    flags: dict[str, Any] = {"model": args.model}
    if args.everything:
        flags.update({key: getattr(args, flag) for flag, key in FIND_FLAGS.items()})
        other = [flag for flag, given in (("--choose", args.choose), ("--single-mask", args.single_mask)) if given]
    else:
        flags.update({"choices": _choices(args.choose) or None, "multimask": False if args.single_mask else None})
        other = [f"--{flag.replace('_', '-')}" for flag in ("frame", *FIND_FLAGS)
                 if getattr(args, flag) not in (None, 0)]
    if other:
        raise UsageError(f"{', '.join(other)} belong{'s' if len(other) == 1 else ''} to "
                         f"{'--prompts' if args.everything else '--everything'}")
    for key, value in flags.items():
        if value is None:
            continue
        if key in document:
            raise UsageError(f"the option {key!r} is given by --options and by a flag; give it once")
        document[key] = value
    return document


def _read_options(text: str) -> dict[str, Any]:
    source = read_prompts_text(text, "--options")
    try:
        document = json.loads(source)
    except json.JSONDecodeError as e:
        raise UsageError(f"--options is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(document, dict):
        raise UsageError("--options must be a JSON object")
    return document


def _choices(items: Sequence[str]) -> dict[str, int]:
    choices: dict[str, int] = {}
    for item in items:
        obj_id, sep, index = item.partition("=")
        if not sep or not obj_id.strip().isdigit() or not index.strip().isdigit():
            raise UsageError(f"--choose {item!r}: write ID=INDEX, e.g. 1=2")
        choices[obj_id.strip()] = int(index)
    return choices


def default_folder(image: Path, everything: bool) -> Path:
    return Path(f"{image.stem}-{'proposals' if everything else 'segmentation'}")


def run(args: argparse.Namespace) -> SegmentOutcome | FindOutcome:
    options = options_document(args)
    weights = weights_option(args.checkpoint)
    folder = args.out or default_folder(args.image, args.everything)
    if args.everything:
        request = prepare_find(args.image, args.frame, options, device=args.device, weights=weights)
    else:
        request = prepare_segment(args.image, read_prompts_text(args.prompts), options, device=args.device,
                                  weights=weights)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; give a folder")
    if not weights.is_trained and not args.quiet:
        print(untrained_notice(weights), file=sys.stderr, flush=True)
    if args.everything:
        return run_find_objects(request, folder, shared_models())
    return run_segment_image(request, folder, shared_models())


def describe(outcome: SegmentOutcome | FindOutcome) -> str:
    """A few lines for people: what was found, where the files are."""
    lines = []
    if isinstance(outcome, SegmentOutcome):
        for obj in outcome.result.objects:
            iou = "" if obj.iou is None else f", predicted IoU {obj.iou:.3f}"
            of = f" of {len(obj.candidates)}" if len(obj.candidates) > 1 else ""
            lines.append(f"object {obj.obj_id} ({obj.task}, {obj.prompt_kind}): candidate {obj.chosen}{of}{iou}, "
                         f"{obj.area} pixels")
    else:
        lines.append(f"{len(outcome.proposals)} proposal{'s' if len(outcome.proposals) != 1 else ''}")
    lines.append(f"time: {outcome.model_seconds:.1f} s in the model")
    lines.append(f"wrote {outcome.files.archive} and {len(outcome.files.files)} files in {outcome.files.folder}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already printed
        return usage_exit_status(e)
    try:
        outcome = run(args)
    except (UsageError, OSError, *INPUT_ERRORS) as e:  # unusable input: one line, status 2
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        print(describe(outcome))
    return EXIT_OK
