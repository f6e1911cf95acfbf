"""The command line's effect flags (``python -m sam2_plus.track``):

    --effect 1=blur --effect 2=fill,color=#000000 --background erase --feather 2 \\
        --effect-out effect.mp4 --cutout cutout.webm --cutout cutout.mov --cutout cutout_png/
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from .outputs import EffectOutputs
from .settings import (
    BACKGROUND_EFFECTS, OBJECT_EFFECTS, EffectError, EffectSettings, parse_effect_flag, parse_effects,
)

CUTOUT_SUFFIXES = {".webm": "webm", ".mov": "mov"}  # any other --cutout path: a PNG sequence (.zip or folder)


def add_effect_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("effects and cut-outs (README: Effects and cut-outs)")
    group.add_argument("--effect", action="append", metavar="ID=EFFECT[,KEY=VALUE]",
                       help=f"an object's effect, repeatable: {', '.join(OBJECT_EFFECTS)}; e.g. 1=blur,strength=20 "
                            "or 2=fill,color=#000000. The objects named are the chosen ones (default: all)")
    group.add_argument("--background", metavar="EFFECT[,KEY=VALUE]",
                       help=f"the effect outside the chosen objects: {', '.join(BACKGROUND_EFFECTS)}")
    group.add_argument("--feather", type=float, metavar="SIGMA", help="soft mask edges: a Gaussian's sigma in pixels")
    group.add_argument("--effects", metavar="JSON", help="the options JSON's effects object (a file or JSON text) "
                                                         "instead of --effect, --background and --feather")
    group.add_argument("--effect-out", type=Path, metavar="MP4", help="the effect video (H.264, source timing, "
                                                                      "audio)")
    group.add_argument("--cutout", type=Path, action="append", metavar="WEBM|MOV|ZIP|DIR",
                       help="a cut-out with alpha, repeatable: .webm (VP9), .mov (ProRes 4444), or RGBA PNGs into a "
                            ".zip or a folder")


def effect_settings(args: argparse.Namespace, read_json: Callable[[str, str], str]) -> Optional[EffectSettings]:
    """The effects of the flags (None when none is given); EffectError says what is wrong."""
    flags = [name for name, value in (("--effect", args.effect), ("--background", args.background),
                                      ("--feather", args.feather is not None)) if value]
    if args.effects:
        if flags:
            raise EffectError(f"--effects describes every effect; drop {', '.join(flags)}")
        return parse_effects(read_json(args.effects, "--effects"))
    if not flags:
        return None
    objects = {}
    for text in args.effect or ():
        obj_id, sep, spec = text.partition("=")
        if not sep or not obj_id.strip().isdigit():
            raise EffectError(f"--effect {text!r}: write ID=EFFECT with an object id, e.g. 1=blur")
        objects[obj_id.strip()] = parse_effect_flag(spec, OBJECT_EFFECTS, f"--effect {text!r}").to_json()
    document = {"objects": objects}
    if args.background:
        document["background"] = parse_effect_flag(args.background, BACKGROUND_EFFECTS,
                                                   f"--background {args.background!r}").to_json()
    if args.feather is not None:
        document["feather"] = args.feather
    return parse_effects(document)


def effect_outputs(args: argparse.Namespace, read_json: Callable[[str, str], str],
                   results_zip: Optional[Path] = None) -> Optional[EffectOutputs]:
    """The effect outputs the flags ask for; with --out-dir (`results_zip` is its ZIP) those of the folder."""
    settings = effect_settings(args, read_json)
    if args.out_dir is not None:
        return None if settings is None else EffectOutputs.in_folder(settings, args.out_dir, results_zip)
    if settings is None and args.effect_out is not None:
        raise EffectError("--effect-out needs an effect: --effect, --background or --effects")
    if settings is not None and args.effect_out is None and not args.cutout:
        raise EffectError("the effects need an output: --effect-out MP4, --cutout FILE or --out-dir DIR")
    if args.effect_out is None and not args.cutout:
        return None
    return EffectOutputs(settings or EffectSettings(), video=args.effect_out, **_cutouts(args.cutout or ()))


def _cutouts(paths: list[Path]) -> dict[str, Path]:
    chosen: dict[str, Path] = {}
    for path in paths:
        kind = CUTOUT_SUFFIXES.get(path.suffix.lower(), "png")
        if kind in chosen:
            raise EffectError(f"--cutout {path}: a {kind} cut-out is already {chosen[kind]}")
        chosen[kind] = path
    return chosen
