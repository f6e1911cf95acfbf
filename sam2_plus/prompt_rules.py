"""The one prompt type (`FramePrompt`: one object's clicks, box or mask on one frame) and the one table of what
each task takes (`TASK_RULES`). The prompts JSON's parser (prompts.py), the predictor's API
(video/prompt_inputs.py) and the app's editor (app/editing.py) all ask `misfit` whether a prompt fits its task,
and each says why not in its own words; a change of task keeps what fits (`fitted`).

    "mask":  any prompt: clicks and/or a box, or a mask
    "box":   exactly a box (a mask given to it stands for its bounding box where a prompt is converted)
    "point": exactly one positive click

A prompt holds clicks (points with labels, 1 positive / 0 negative), a box, both, or a mask alone (a mask
is never combined with another kind). `PROMPT_KINDS` leaves room for more kinds (text). The model's own input,
`modeling.sam2_model.PointPrompt`, is a prompt encoded for the network (model coordinates, a box as two corner
points: `video.prompt_inputs.point_prompt`), not a second prompt type.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .media.rle import encode_rle

PROMPT_KINDS = ("clicks", "box", "mask")
ALONE = frozenset({"mask"})  # kinds a prompt holds only on their own


@dataclass(frozen=True, eq=False)
class FramePrompt:
    """One object's prompt on one frame, in pixels of the video (x right, y down)."""

    frame: int
    points: Optional[np.ndarray] = None  # [K, 2] float32 (x, y)
    labels: Optional[np.ndarray] = None  # [K] int32, 1 positive / 0 negative; set whenever points are
    box: Optional[np.ndarray] = None  # [4] float32 x1, y1, x2, y2 with x1 < x2 and y1 < y2
    mask: Optional[np.ndarray] = None  # [H, W] bool

    @classmethod
    def of(cls, frame: int, points=None, labels=None, box=None, mask=None) -> "FramePrompt":
        """A prompt from plain values (lists, tuples, arrays); no clicks is None, labels default to positive."""
        pts = None if points is None or len(points) == 0 else np.asarray(points, np.float32).reshape(-1, 2)
        lbl = None if pts is None else (np.ones(len(pts), np.int32) if labels is None
                                        else np.asarray(labels, np.int32).reshape(-1))
        return cls(int(frame), pts, lbl, None if box is None else np.asarray(box, np.float32).reshape(4),
                   None if mask is None else np.asarray(mask, bool))

    @property
    def kinds(self) -> frozenset[str]:
        held = (("clicks", self.points is not None and len(self.points) > 0), ("box", self.box is not None),
                ("mask", self.mask is not None))
        return frozenset(kind for kind, present in held if present)

    def is_empty(self) -> bool:
        return not self.kinds

    def clicks(self) -> list[tuple[tuple[float, float], int]]:
        """The clicks as ((x, y), label) pairs."""
        if self.points is None:
            return []
        return [((float(x), float(y)), int(label)) for (x, y), label in zip(self.points, self.labels)]

    def to_json(self) -> dict[str, Any]:
        """The prompt as one entry of the prompts JSON (a mask as compressed COCO RLE)."""
        entry: dict[str, Any] = {"frame": self.frame}
        if self.points is not None and len(self.points):
            entry["points"] = self.points.tolist()
            entry["labels"] = (self.labels.tolist() if self.labels is not None else [1] * len(self.points))
        if self.box is not None:
            entry["box"] = self.box.tolist()
        if self.mask is not None:
            entry["mask"] = encode_rle(self.mask)
        return entry


@dataclass(frozen=True)
class TaskRule:
    """What a prompt of one task holds."""

    takes: frozenset[str]  # the kinds it may hold
    needs: frozenset[str] = frozenset()  # the kinds it must hold
    points: Optional[int] = None  # exactly this many clicks, all positive
    mask_as_box: bool = False  # a mask converted to the task stands for its bounding box


TASK_RULES: dict[str, TaskRule] = {
    "mask": TaskRule(takes=frozenset(PROMPT_KINDS)),
    "box": TaskRule(takes=frozenset({"box"}), needs=frozenset({"box"}), mask_as_box=True),
    "point": TaskRule(takes=frozenset({"clicks"}), needs=frozenset({"clicks"}), points=1),
}


@dataclass(frozen=True)
class Misfit:
    """Why a prompt does not fit its task. `what`: "combined" (a mask with another kind), "extra" (it holds
    `kind`, which the task does not take), "missing" (it lacks `kind`), "points" (`count` clicks where the task
    takes `TASK_RULES[task].points`) or "negative" (a negative click where the task takes positive ones only)."""

    task: str
    what: str
    kind: str = ""
    count: int = 0


def misfit(task: str, kinds: Collection[str], labels: Optional[np.ndarray] = None) -> Optional[Misfit]:
    """Why a prompt holding `kinds` (with click `labels`, when known) does not fit `task`; None when it fits.
    `task` must be one of TASKS."""
    kinds = frozenset(kinds)
    rule = TASK_RULES[task]
    alone = kinds & ALONE
    if alone and len(kinds) > 1:
        return Misfit(task, "combined", min(alone))
    extra, missing = sorted(kinds - rule.takes), sorted(rule.needs - kinds)
    if extra:
        return Misfit(task, "extra", extra[0])
    if missing:
        return Misfit(task, "missing", missing[0])
    if rule.points is not None and labels is not None:
        if len(labels) != rule.points:
            return Misfit(task, "points", "clicks", len(labels))
        if not np.all(np.asarray(labels) == 1):
            return Misfit(task, "negative", "clicks")
    return None


def fitted(prompt: FramePrompt, task: str) -> Optional[FramePrompt]:
    """What `prompt` becomes under `task` (a change of task): itself when it fits; else the part the task
    takes (a box: its box, or its mask's bounding box; a point: its first positive click); None when no part
    fits."""
    if misfit(task, prompt.kinds, prompt.labels) is None:
        return prompt
    rule = TASK_RULES[task]
    if "box" in rule.takes:
        box = prompt.box if prompt.box is not None else (
            mask_bbox(prompt.mask) if prompt.mask is not None and rule.mask_as_box else None)
        return None if box is None else FramePrompt.of(prompt.frame, box=box)
    positives = [point for point, label in prompt.clicks() if label == 1]
    if "clicks" in rule.takes and positives:
        return FramePrompt.of(prompt.frame, positives[:(rule.points or len(positives))])
    return None


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The bounding box x1, y1, x2, y2 (pixel edges) of a non-empty HxW mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
