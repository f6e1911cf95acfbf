"""Tiny benchmark datasets in each layout that sam2_plus.evaluate.datasets reads, made from the example clips.

The frames are the first frames of `examples/*.mp4`, shrunk to `SIZE`, with coloured squares painted on them
(tests/discovery_fakes.py's `Square`): the ground truth is where the squares were painted, so masks, boxes and
points are exact whatever the clip shows. Each maker writes one layout under `base` and returns what it wrote
(`Made`), which the tests compare with what the reader reads back. Three sequences of 10 frames each:

- ``seq0``: two squares crossing the frame on every frame;
- ``seq1``: one square throughout and a second one that enters on frame 3 (an object that appears later);
- ``seq2``: one square throughout and a second that leaves after frame 6 (absent at the end).

Box layouts track the first square of each sequence, which is absent on some frames in ``seq2``'s box variant
(its first square leaves instead). ``python tests/eval_datasets.py OUT`` writes every layout under OUT.
"""

from __future__ import annotations

import json
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]  # run as a script, too
from discovery_fakes import COLOURS, Square  # noqa: E402

CLIPS = ("shapes.mp4", "crossing.mp4", "bounce.mp4")
SIZE = (120, 160)  # (height, width)
FRAMES = 10
NAMES = ("seq0", "seq1", "seq2")

SCRIPTS: dict[str, tuple[Square, ...]] = {
    "seq0": (Square("red", range(0, FRAMES), 10, 20, size=20, dx=3),
             Square("blue", range(0, FRAMES), 120, 70, size=18, dx=-4)),
    "seq1": (Square("green", range(0, FRAMES), 30, 30, size=24, dx=2),
             Square("yellow", range(3, FRAMES), 100, 80, size=16, dx=1)),
    "seq2": (Square("magenta", range(0, FRAMES), 20, 60, size=22, dx=2),
             Square("cyan", range(0, 7), 110, 10, size=14, dx=-1)),
}
# the box layouts' single target: seq2's leaves after frame 6 (absent on 7..9)
BOX_TARGET = {"seq0": 0, "seq1": 0, "seq2": 1}
LASOT_CLASS = "shape"
TAG_ATTRIBUTES = {"seq0": ("MB", "DEF"), "seq1": (), "seq2": ("FOV",)}
LASOT_FLAGS = {"seq0": (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), "seq1": (0,) * 14,
               "seq2": (0,) * 11 + (1, 0, 0)}


@dataclass
class MadeSequence:
    name: str
    num_frames: int
    size: tuple[int, int]
    obj_ids: tuple[int, ...]
    annotated: Optional[tuple[int, ...]] = None  # None: all frames
    labels: dict[int, np.ndarray] = field(default_factory=dict)  # davis: annotated frame -> label map
    first_frames: dict[int, int] = field(default_factory=dict)  # davis: object id -> first annotated frame
    boxes: Optional[np.ndarray] = None  # box layouts: [T, 1, 4] xyxy, NaN where absent / not annotated
    points: Optional[np.ndarray] = None  # tapvid: [T, N, 2] pixels
    occluded: Optional[np.ndarray] = None  # tapvid: [T, N]
    attributes: tuple[str, ...] = ()
    frames: Optional[np.ndarray] = None  # [T, H, W, 3] RGB as painted


@dataclass
class Made:
    root: Path  # what read_dataset gets
    layout: str
    sequences: list[MadeSequence]

    def sequence(self, name: str) -> MadeSequence:
        return next(seq for seq in self.sequences if seq.name == name)


# --------------------------------------------------------------------------- frames and their truth


def clip_frames(clip: str, count: int = FRAMES, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The first `count` frames of an example clip, RGB, resized to `size` (height, width)."""
    capture = cv2.VideoCapture(str(REPO / "examples" / clip))
    frames = []
    try:
        while len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                raise RuntimeError(f"examples/{clip} has fewer than {count} frames")
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return np.stack(frames)


def painted_frames(name: str) -> np.ndarray:
    frames = clip_frames(CLIPS[NAMES.index(name)]).copy()
    for index, frame in enumerate(frames):
        for square in SCRIPTS[name]:
            for x1, y1, x2, y2 in square.boxes(index):
                frame[y1:y2, x1:x2] = COLOURS[square.colour]
    return frames


def label_map(name: str, frame: int) -> np.ndarray:
    """Object i + 1 where square i is on `frame` (the squares of a script never overlap)."""
    labels = np.zeros(SIZE, np.int32)
    for index, square in enumerate(SCRIPTS[name]):
        for x1, y1, x2, y2 in square.boxes(frame):
            labels[y1:y2, x1:x2] = index + 1
    return labels


def target_boxes(name: str) -> np.ndarray:
    """[T, 1, 4] xyxy of the box layouts' target, NaN where it is absent."""
    square = SCRIPTS[name][BOX_TARGET[name]]
    boxes = np.full((FRAMES, 1, 4), np.nan)
    for frame in range(FRAMES):
        for box in square.boxes(frame):
            boxes[frame, 0] = box
    return boxes


def _xywh_lines(boxes: np.ndarray, keep_last: bool = False) -> list[str]:
    """x,y,w,h lines; where the target is absent 0,0,0,0, or with `keep_last` the last box seen (so that only the
    absence flags say it is absent)."""
    lines: list[str] = []
    for x1, y1, x2, y2 in boxes[:, 0]:
        if np.isnan(x1):
            lines.append(lines[-1] if keep_last and lines else "0,0,0,0")
        else:
            lines.append(f"{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g}")
    return lines


def _write_jpegs(folder: Path, frames: np.ndarray, first: int = 0, digits: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index + first:0{digits}d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def save_indexed_png(path: Path, labels: np.ndarray) -> None:
    from sam2_plus.media.export import davis_palette

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    image.save(path)


# --------------------------------------------------------------------------- davis / MOSE / SA-V


def make_davis(base: Path, style: str = "davis") -> Made:
    """`style`: "davis" (480p folders, ImageSets/2017/val.txt, every frame annotated), "mose" (no 480p, no list)
    or "sav" (JPEGImages_24fps, per-object PNGs every 4th frame, sav_val.txt)."""
    root = base / f"{style}_dataset"
    frames_root, truth_root = {"davis": ("JPEGImages/480p", "Annotations/480p"), "mose": ("JPEGImages", "Annotations"),
                               "sav": ("JPEGImages_24fps", "Annotations_6fps")}[style]
    annotated = tuple(range(0, FRAMES, 4)) if style == "sav" else tuple(range(FRAMES))
    made = []
    for name in NAMES:
        frames = painted_frames(name)
        _write_jpegs(root / frames_root / name, frames)
        labels = {frame: label_map(name, frame) for frame in annotated}
        for frame, label in labels.items():
            if style == "sav":
                for index in range(len(SCRIPTS[name])):
                    grey = (label == index + 1).astype(np.uint8) * 255
                    path = root / truth_root / name / f"{index:03d}" / f"{frame:05d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(grey, mode="L").save(path)
            else:
                save_indexed_png(root / truth_root / name / f"{frame:05d}.png", label)
        first = {}
        for frame in annotated:
            for value in np.unique(labels[frame]):
                if value:
                    first.setdefault(int(value), frame)
        made.append(MadeSequence(name, FRAMES, SIZE, tuple(sorted(first)),
                                 None if len(annotated) == FRAMES else annotated, labels, first, frames=frames))
    listing = {"davis": root / "ImageSets" / "2017" / "val.txt", "sav": root / "sav_val.txt"}.get(style)
    if listing is not None:
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(NAMES) + "\n")
    return Made(root, "davis", made)


# --------------------------------------------------------------------------- LaSOT


def make_lasot(base: Path) -> Made:
    """LaSOT: <class>/<class>-<n>/img/00000001.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt,
    testing_set.txt, and the toolkit's att/<seq>.txt. seq2's target is fully occluded when absent, and seq0's is
    flagged out of view on frame 5 (its box is given, the flag makes it absent)."""
    root = base / "lasot_dataset"
    made = []
    for number, name in enumerate(NAMES, 1):
        seq_name = f"{LASOT_CLASS}-{number}"
        folder = root / LASOT_CLASS / seq_name
        frames = painted_frames(name)
        _write_jpegs(folder / "img", frames, first=1, digits=8)
        boxes = target_boxes(name)
        (folder / "groundtruth.txt").write_text("\n".join(_xywh_lines(boxes)) + "\n")
        occlusion = np.isnan(boxes[:, 0, 0]).astype(int)
        out_of_view = np.zeros(FRAMES, int)
        if name == "seq0":
            out_of_view[5] = 1
        (folder / "full_occlusion.txt").write_text(",".join(map(str, occlusion)))
        (folder / "out_of_view.txt").write_text(",".join(map(str, out_of_view)))
        (folder / "nlp.txt").write_text(f"the {SCRIPTS[name][BOX_TARGET[name]].colour} square\n")
        expected = boxes.copy()
        expected[out_of_view.astype(bool)] = np.nan
        (root / "att").mkdir(parents=True, exist_ok=True)
        (root / "att" / f"{seq_name}.txt").write_text(",".join(map(str, LASOT_FLAGS[name])) + "\n")
        from sam2_plus.evaluate.datasets import LASOT_ATTRIBUTES

        attributes = tuple(a for a, flag in zip(LASOT_ATTRIBUTES, LASOT_FLAGS[name]) if flag)
        made.append(MadeSequence(seq_name, FRAMES, SIZE, (1,), boxes=expected, attributes=attributes, frames=frames))
    (root / "testing_set.txt").write_text("\n".join(seq.name for seq in made) + "\n")
    return Made(root, "lasot", made)


# --------------------------------------------------------------------------- GOT-10k


def make_got10k(base: Path, split: str = "val") -> Made:
    """GOT-10k: <split>/list.txt, <split>/<seq>/00000001.jpg, groundtruth.txt (first line only for "test"),
    absence.label and cover.label (val only); an absent target's line repeats its last box (only the labels say
    it is absent). The root returned is GOT-10k's root (the reader finds the split)."""
    root = base / f"got10k_{split}"
    folder_root = root / split
    made = []
    for number, name in enumerate(NAMES, 1):
        seq_name = f"GOT-10k_{split.capitalize()}_{number:06d}"
        folder = folder_root / seq_name
        frames = painted_frames(name)
        _write_jpegs(folder, frames, first=1, digits=8)
        boxes = target_boxes(name)
        lines = _xywh_lines(boxes, keep_last=True)
        absent = np.isnan(boxes[:, 0, 0])
        if split == "test":
            (folder / "groundtruth.txt").write_text(lines[0] + "\n")
            expected = np.full_like(boxes, np.nan)
            expected[0] = boxes[0]
            made.append(MadeSequence(seq_name, FRAMES, SIZE, (1,), annotated=(0,), boxes=expected, frames=frames))
            continue
        (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        (folder / "absence.label").write_text("\n".join(str(int(a)) for a in absent) + "\n")
        (folder / "cover.label").write_text("\n".join("0" if a else "8" for a in absent) + "\n")
        made.append(MadeSequence(seq_name, FRAMES, SIZE, (1,), boxes=boxes, frames=frames))
    (folder_root / "list.txt").write_text("\n".join(seq.name for seq in made) + "\n")
    return Made(root, "got10k", made)


# --------------------------------------------------------------------------- Tracking-Any-Granularity (boxes)


def make_tag(base: Path) -> Made:
    """TAG box layout: valid/JPEGImages/<seq>/00000.jpg, valid/Boxes/<seq>.txt, valid/Visibles/<seq>.txt,
    valid/Attributes/<seq>.txt (this project's assumption) and ImageSets/valid.txt beside valid/; an invisible
    target's line repeats its last box (only Visibles says it is absent)."""
    root = base / "tag_dataset" / "valid"
    made = []
    for number, name in enumerate(NAMES):
        seq_name = f"{number:05d}"
        frames = painted_frames(name)
        _write_jpegs(root / "JPEGImages" / seq_name, frames)
        boxes = target_boxes(name)
        absent = np.isnan(boxes[:, 0, 0])
        (root / "Boxes").mkdir(parents=True, exist_ok=True)
        (root / "Boxes" / f"{seq_name}.txt").write_text("\n".join(_xywh_lines(boxes, keep_last=True)) + "\n")
        (root / "Visibles").mkdir(parents=True, exist_ok=True)
        (root / "Visibles" / f"{seq_name}.txt").write_text("\n".join(str(int(not a)) for a in absent) + "\n")
        if TAG_ATTRIBUTES[name]:
            (root / "Attributes").mkdir(parents=True, exist_ok=True)
            (root / "Attributes" / f"{seq_name}.txt").write_text(",".join(TAG_ATTRIBUTES[name]) + "\n")
        made.append(MadeSequence(seq_name, FRAMES, SIZE, (1,), boxes=boxes, attributes=TAG_ATTRIBUTES[name],
                                 frames=frames))
    (root.parent / "ImageSets").mkdir(parents=True, exist_ok=True)
    (root.parent / "ImageSets" / "valid.txt").write_text("\n".join(seq.name for seq in made) + "\n")
    return Made(root, "tag", made)


# --------------------------------------------------------------------------- TAP-Vid


def tapvid_video(name: str) -> tuple[dict, MadeSequence]:
    """A TAP-Vid entry for a sequence: a track at each square's centre (occluded where the square is absent) and
    one more track, occluded on every frame, that the reader leaves out."""
    frames = painted_frames(name)
    height, width = SIZE
    script = SCRIPTS[name]
    normalized = np.zeros((len(script) + 1, FRAMES, 2))
    occluded = np.ones((len(script) + 1, FRAMES), bool)
    for index, square in enumerate(script):
        for frame in range(FRAMES):
            for x1, y1, x2, y2 in square.boxes(frame):
                normalized[index, frame] = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height)
                occluded[index, frame] = False
    normalized[-1] = 0.5
    entry = {"video": frames, "points": normalized.astype(np.float32), "occluded": occluded}
    kept = list(range(len(script)))
    pixels = normalized.astype(np.float32).astype(np.float64)[kept] * np.array([width, height], dtype=np.float64)
    made = MadeSequence(name, FRAMES, SIZE, tuple(i + 1 for i in kept), points=pixels.transpose(1, 0, 2),
                        occluded=occluded[kept].T.copy(), frames=frames)
    return entry, made


def make_tapvid(base: Path, kind: str = "pkl") -> Made:
    """`kind` "pkl": one tapvid_davis.pkl holding every video (the root is that file's folder); "npz": one
    <seq>.npz per video. The second sequence's frames are stored as JPEG bytes in the pickle (as tapvid_davis.pkl
    may hold them), so its expected frames are what that JPEG decodes to."""
    root = base / f"tapvid_{kind}"
    root.mkdir(parents=True, exist_ok=True)
    entries, made = {}, []
    for name in NAMES:
        entry, seq = tapvid_video(name)
        if kind == "pkl" and name == "seq1":
            encoded = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in entry["video"]]
            entry["video"] = encoded
            seq.frames = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR),
                                                cv2.COLOR_BGR2RGB) for b in encoded])
        if kind == "npz":
            np.savez(root / f"{name}.npz", **entry)
        entries[name] = entry
        made.append(seq)
    if kind == "pkl":
        with open(root / "tapvid_davis.pkl", "wb") as file:
            pickle.dump(entries, file)
    return Made(root, "tapvid", made)


def make_dataset(base: Path, layout: str) -> Made:
    """The tiny dataset of `layout` (its default variant) under `base`."""
    makers = {"davis": make_davis, "lasot": make_lasot, "got10k": make_got10k, "tag": make_tag, "tapvid": make_tapvid}
    return makers[layout](Path(base))


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/eval_datasets.py OUT_FOLDER", file=sys.stderr)
        return 2
    out = Path(argv[0])
    for layout in ("davis", "lasot", "got10k", "tag", "tapvid"):
        made = make_dataset(out, layout)
        print(json.dumps({"layout": layout, "root": str(made.root), "sequences": [s.name for s in made.sequences]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
