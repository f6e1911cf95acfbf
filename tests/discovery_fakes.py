"""Stand-ins for discovery tests: a synthetic clip of coloured squares with a script of where each is, a tracker
that follows colours, and finders that find colours.

- `write_clip(folder, script, size)`: PNG frames (lossless, so colours stay exact) of `Square`s on grey.
- `ColourTracker`: the TrackingPredictor protocol without a network: an object is the colour under its prompt;
  its mask on a frame is every pixel of that colour. With `sticky_loss`, an object absent on a tracked frame stays
  absent until prompted again (as a real tracker can fail to pick up an object that came back).
- `ColourFinder`: stand-in automatic masks: every connected region of one colour, score by colour.
- `ColourDetector`: a stand-in text detector: phrases are colour names ("red"), boxes of that colour's regions.
- `ScriptedFinder`: the masks of a script, by frame index (for clips whose content is not synthetic).
- `BoxImagePredictor`: boxes to box-shaped masks (TextFinder's image predictor without a network).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from sam2_plus.discovery.found import Detection, Found
from sam2_plus.video.results import FrameResult

BACKGROUND = (128, 128, 128)
COLOURS = {"red": (230, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 230), "yellow": (230, 230, 20),
           "magenta": (230, 20, 230), "cyan": (20, 230, 230)}


@dataclass(frozen=True)
class Square:
    colour: str
    frames: range  # the frames it is on
    x: int  # left edge on its first frame
    y: int
    size: int = 16
    dx: int = 1  # pixels it moves right per frame
    split_at: Optional[int] = None  # from this frame on it is two halves drifting apart

    def boxes(self, frame: int) -> list[tuple[int, int, int, int]]:
        if frame not in self.frames:
            return []
        x = self.x + self.dx * (frame - self.frames.start)
        if self.split_at is None or frame < self.split_at:
            return [(x, self.y, x + self.size, self.y + self.size)]
        gap = 2 * (frame - self.split_at + 1)
        half = self.size // 2
        return [(x - gap, self.y, x - gap + half, self.y + self.size),
                (x + half + gap, self.y, x + self.size + gap, self.y + self.size)]


def draw(script: Sequence[Square], frame: int, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    for square in script:
        for x1, y1, x2, y2 in square.boxes(frame):
            image[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = COLOURS[square.colour]
    return image


def write_clip(folder: Path, script: Sequence[Square], frames: int, size: tuple[int, int] = (96, 128)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in range(frames):
        cv2.imwrite(str(folder / f"{frame:05d}.png"), cv2.cvtColor(draw(script, frame, size), cv2.COLOR_RGB2BGR))
    return folder


def colour_mask(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(image == np.array(colour, np.uint8), axis=-1)


def colour_of(image: np.ndarray, mask: np.ndarray) -> Optional[tuple[int, int, int]]:
    """The most common non-background colour under a mask."""
    pixels = image[mask]
    pixels = pixels[~np.all(pixels == np.array(BACKGROUND, np.uint8), axis=-1)]
    if len(pixels) == 0:
        return None
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    return tuple(int(v) for v in values[int(np.argmax(counts))])


class ColourTracker:
    device = torch.device("cpu")

    def __init__(self, sticky_loss: bool = False):
        self.sticky_loss = sticky_loss
        self.encoded = 0  # frames "encoded" (as a real tracker runs its image encoder per tracked frame)
        self.backward_frames: list[int] = []  # the frames tracked in reverse, in order

    def init_state(self, frames):
        return {"frames": frames, "objects": {}, "lost": set()}

    def add_prompt(self, state, obj_id, task, prompt):
        image = np.asarray(state["frames"][prompt.frame])
        if prompt.mask is not None:
            region = prompt.mask
        elif prompt.box is not None:
            x1, y1, x2, y2 = (int(round(float(v))) for v in prompt.box)
            region = np.zeros(image.shape[:2], bool)
            region[y1:y2, x1:x2] = True
        else:
            x, y = (int(v) for v in prompt.points[0])
            region = np.zeros(image.shape[:2], bool)
            region[y, x] = True
        state["objects"][obj_id] = (task, colour_of(image, region))
        state["lost"].discard(obj_id)
        return self._result(state, prompt.frame)

    def propagate_in_video(self, state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False):
        count = len(state["frames"]) if max_frame_num_to_track is None else max_frame_num_to_track
        if reverse:
            order = range(start_frame_idx, max(start_frame_idx - count, 0) - 1, -1)
        else:
            order = range(start_frame_idx, min(start_frame_idx + count, len(state["frames"]) - 1) + 1)
        for frame_idx in order:
            self.encoded += 1
            if reverse and frame_idx != start_frame_idx:
                self.backward_frames.append(frame_idx)
            yield self._result(state, frame_idx, track=True)

    def _result(self, state, frame_idx, track=False):
        image = np.asarray(state["frames"][frame_idx])
        ids, masks, tasks = [], [], []
        for obj_id, (task, colour) in state["objects"].items():
            mask = colour_mask(image, colour) if obj_id not in state["lost"] else np.zeros(image.shape[:2], bool)
            if track and self.sticky_loss and not mask.any():
                state["lost"].add(obj_id)
            ids.append(obj_id)
            masks.append(mask)
            tasks.append(task)
        stacked = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), bool)
        logits = torch.from_numpy(np.where(stacked, 5.0, -5.0).astype(np.float32))
        scores = torch.tensor([3.0 if m.any() else -3.0 for m in masks])
        return FrameResult(frame_idx, ids, logits, scores, None, None, tasks)


def colour_regions(image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(colour name, mask) of every connected region of one colour, in COLOURS order then top-left first."""
    regions = []
    for name, colour in COLOURS.items():
        count, labels = cv2.connectedComponents(colour_mask(image, colour).astype(np.uint8), connectivity=4)
        regions.extend((name, labels == k) for k in range(1, count))
    return regions


class ColourFinder:
    """Stand-in automatic masks; score: 0.9 minus 0.01 per colour in COLOURS order (a fixed order)."""

    def __init__(self):
        self.calls: list[Optional[int]] = []
        self.backbones: list[Optional[dict]] = []

    def find(self, image, backbone=None, frame_idx=None):
        self.calls.append(frame_idx)
        self.backbones.append(backbone)
        order = list(COLOURS)
        return [Found(mask, 0.9 - 0.01 * order.index(name)) for name, mask in colour_regions(np.asarray(image))]


class ColourDetector:
    """Stand-in detector: a phrase names a colour; each region of it is a box, score 0.8."""

    def __init__(self):
        self.calls = 0

    def detect(self, image, phrases, threshold):
        self.calls += 1
        found = []
        for name, mask in colour_regions(np.asarray(image)):
            if name in phrases and 0.8 >= threshold:
                ys, xs = np.nonzero(mask)
                found.append(Detection((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                                       0.8, name))
        return found


class BoxImagePredictor:
    """The image predictor's set_image / set_features / predict(box=[B, 4]) without a network: box masks."""

    def set_image(self, image):
        self.size = np.asarray(image).shape[:2]

    def set_features(self, backbone, orig_hw):
        self.size = tuple(orig_hw)

    def predict(self, box=None, multimask_output=False, **_):
        boxes = np.asarray(box, np.float32).reshape(-1, 4)
        masks = np.zeros((len(boxes), 1, *self.size), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            masks[i, 0, int(y1):int(y2), int(x1):int(x2)] = 1.0
        return masks, np.ones((len(boxes), 1), np.float32), np.zeros((len(boxes), 1, 256, 256), np.float32)


class ScriptedFinder:
    """Finds the masks given for a frame index (`script`: frame -> list of (mask, score, label))."""

    def __init__(self, script):
        self.script = script
        self.calls: list[Optional[int]] = []

    def find(self, image, backbone=None, frame_idx=None):
        self.calls.append(frame_idx)
        return [Found(np.asarray(mask, bool), score, label) for mask, score, label in self.script.get(frame_idx, [])]
