"""The frame images that the exports refer to by name: ``python -m sam2_plus.exports.frames VIDEO FOLDER``
writes ``FOLDER/frame_000000.jpg`` and so on (``--mot``: ``000001.jpg``, MOT's ``img1/`` names), decoded as
the tracker decoded them (rotation applied)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import cv2

from ..media.decode import FrameSource
from .common import IMAGE_EXT, frame_name


def write_frame_images(video: str | os.PathLike, folder: str | os.PathLike, mot: bool = False,
                       max_frames: Optional[int] = None, ext: str = IMAGE_EXT) -> int:
    """Write every frame (or the first `max_frames`) as an image; returns how many."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FrameSource(video, max_frames=max_frames) as frames:
        for index, image in enumerate(frames):
            name = f"{index + 1:06d}" if mot else frame_name(index)
            if not cv2.imwrite(str(folder / f"{name}{ext}"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {folder / (name + ext)}")
        return frames.info.num_frames


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_plus.exports.frames", description=__doc__)
    parser.add_argument("video", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--mot", action="store_true", help="MOT's names (000001.jpg, from 1)")
    parser.add_argument("--max-frames", type=int, metavar="N")
    args = parser.parse_args(argv)
    count = write_frame_images(args.video, args.folder, mot=args.mot, max_frames=args.max_frames)
    print(f"wrote {count} frames to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
