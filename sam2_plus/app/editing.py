"""One object's prompts as the UI edits them: clicks, a box or a mask per frame, following the rules of the
prompts JSON (`sam2_plus/prompts.py`), and what a change of granularity keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..media.render import Color, color_for_id
from ..media.rle import encode_rle
from ..prompts import TASKS, PromptLimits
from .errors import AppInputError

# Tools of the prompt editor.
POSITIVE, NEGATIVE, BOX, BRUSH, MASK_FILE = ("Positive click", "Negative click", "Box (two clicks)", "Brush mask",
                                             "Mask PNG")
TOOLS = (POSITIVE, NEGATIVE, BOX, BRUSH, MASK_FILE)


@dataclass
class PromptDraft:
    """One object's prompt on one frame, as edited: clicks and/or a box, or a mask."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # 1 positive, 0 negative
    box: Optional[tuple[float, float, float, float]] = None  # x1, y1, x2, y2
    mask: Optional[np.ndarray] = None  # HxW bool
    # the clicks' candidate mask picked as this frame's prompt (`mask`, which Track takes); the clicks stay
    candidate: Optional[int] = None

    def is_empty(self) -> bool:
        return not self.points and self.box is None and self.mask is None

    @property
    def kind(self) -> str:
        """"clicks", "box", "clicks+box" or "mask" (a picked candidate counts as its clicks)."""
        if self.mask is not None and self.candidate is None:
            return "mask"
        if self.box is not None:
            return "clicks+box" if self.points else "box"
        return "clicks"

    def to_json(self, frame: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"frame": frame}
        if self.mask is not None:
            entry["mask"] = encode_rle(self.mask)
            return entry
        if self.points:
            entry["points"] = [[float(x), float(y)] for x, y in self.points]
            entry["labels"] = list(self.labels)
        if self.box is not None:
            entry["box"] = [float(v) for v in self.box]
        return entry


@dataclass
class ObjectState:
    obj_id: int
    name: str
    task: str = "mask"
    prompts: dict[int, PromptDraft] = field(default_factory=dict)  # frame -> prompt

    @property
    def color(self) -> Color:
        return color_for_id(self.obj_id)

    def frames(self) -> list[int]:
        return sorted(frame for frame, draft in self.prompts.items() if not draft.is_empty())

    def to_json(self) -> dict[str, Any]:
        frames = self.frames()
        if not frames:
            raise AppInputError(f"object {self.obj_id} ({self.name}) has no prompt yet: give it a click, a box or a "
                                "mask on some frame, or remove it")
        return {"id": self.obj_id, "task": self.task, "prompts": [self.prompts[f].to_json(f) for f in frames]}

    def where(self) -> str:
        frames = self.frames()
        if not frames:
            return "no prompt yet"
        plural = "s" if len(frames) > 1 else ""
        return f"prompt{plural} on frame{plural} " + ", ".join(map(str, frames))


def add_click(obj: ObjectState, frame: int, x: float, y: float, positive: bool) -> str:
    """Add a click to an object's prompt on a frame; returns a note for people ("" when none)."""
    draft = obj.prompts.setdefault(frame, PromptDraft())
    if obj.task == "box":
        raise AppInputError(f"{obj.name} has the box granularity: draw a box with the '{BOX}' tool")
    if obj.task == "point":
        if not positive:
            raise AppInputError(f"{obj.name} has the point granularity: it takes one positive click per frame")
        draft.points, draft.labels = [(x, y)], [1]
        return "the point granularity takes one point per frame: the click replaces the previous one"
    note = ""
    if draft.candidate is not None:
        note = "the picked candidate gave way to the clicks: the click refines them"
    elif draft.mask is not None:
        note = "clicks cannot be combined with a mask on the same frame: the mask was replaced"
    draft.mask, draft.candidate = None, None
    if len(draft.points) >= PromptLimits().max_points_per_prompt:
        raise AppInputError(f"{obj.name} already has {len(draft.points)} clicks on frame {frame}, the most allowed")
    draft.points.append((x, y))
    draft.labels.append(1 if positive else 0)
    return note


def set_box(obj: ObjectState, frame: int, box: tuple[float, float, float, float]) -> str:
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    if x1 == x2 or y1 == y2:
        raise AppInputError("the two corners of a box must differ in both x and y")
    if obj.task == "point":
        raise AppInputError(f"{obj.name} has the point granularity: give it one positive click")
    draft = obj.prompts.setdefault(frame, PromptDraft())
    note = ""
    if draft.mask is not None:
        draft.mask, draft.candidate = None, None
        note = "a box cannot be combined with a mask on the same frame: the mask was replaced"
    if obj.task == "box":
        draft.points, draft.labels = [], []
    draft.box = (x1, y1, x2, y2)
    return note


def set_mask(obj: ObjectState, frame: int, mask: np.ndarray) -> str:
    """A painted or uploaded mask as the object's prompt on `frame`: only the mask granularity takes one (a
    box or point object refuses it rather than silently making a box or a point of it)."""
    if obj.task != "mask":
        instead = (f"draw a box with the '{BOX}' tool" if obj.task == "box"
                   else f"give it one positive click with the '{POSITIVE}' tool")
        raise AppInputError(f"{obj.name} has the {obj.task} granularity, which takes no mask: {instead}, or set its "
                            "granularity to mask to prompt it with a painted or uploaded mask")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise AppInputError("the mask is empty: paint over the object (or upload a PNG with nonzero object pixels)")
    obj.prompts[frame] = PromptDraft(mask=mask)
    return ""


def pick_candidate(obj: ObjectState, frame: int, index: int, mask: Optional[np.ndarray]) -> str:
    """One of the candidate masks of the object's clicks on `frame` as its prompt there: a mask prompt, which
    Track takes like any mask, with the clicks kept (a further click goes on from them; undo drops the pick).
    `mask` None: the candidate the clicks give by themselves (the highest predicted IoU), so the clicks alone."""
    draft = obj.prompts.get(frame)
    if draft is None or not draft.points or draft.box is not None or obj.task != "mask":
        raise AppInputError(f"{obj.name} has no click prompt on frame {frame} to pick a candidate of")
    if mask is None:
        draft.mask, draft.candidate = None, None
        return f"{obj.name}: back to the clicks' own mask"
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise AppInputError(f"candidate {index + 1} is empty: pick another one, or click again")
    draft.mask, draft.candidate = mask, int(index)
    return f"{obj.name}: candidate {index + 1} is the prompt on frame {frame} (as a mask prompt)"


def convert_task(obj: ObjectState, task: str) -> str:
    """Give an object another granularity, keeping the prompts that fit it; returns a note."""
    if task not in TASKS:
        raise AppInputError(f"unknown granularity {task!r}; choose one of {', '.join(TASKS)}")
    dropped: list[int] = []
    if task != "mask":
        for frame, draft in list(obj.prompts.items()):
            converted = _convert_draft(draft, task)
            if converted is None:
                dropped.append(frame)
                del obj.prompts[frame]
            else:
                obj.prompts[frame] = converted
    obj.task = task
    if not dropped:
        return ""
    return f"prompts that the {task} granularity cannot take were removed (frames {', '.join(map(str, dropped))})"


def _convert_draft(draft: PromptDraft, task: str) -> Optional[PromptDraft]:
    if task == "box":
        box = draft.box if draft.box is not None else (mask_bbox(draft.mask) if draft.mask is not None else None)
        return None if box is None else PromptDraft(box=box)
    positives = [p for p, label in zip(draft.points, draft.labels) if label == 1]
    return PromptDraft(points=positives[:1], labels=[1]) if positives else None


def undo(obj: ObjectState, frame: int) -> None:
    """Remove the last click of a frame, else its box, else its mask."""
    draft = obj.prompts.get(frame)
    if draft is None or draft.is_empty():
        raise AppInputError(f"{obj.name} has no prompt on frame {frame}")
    if draft.candidate is not None:  # the pick first: back to the clicks' own mask
        draft.mask, draft.candidate = None, None
    elif draft.points:
        draft.points.pop()
        draft.labels.pop()
    elif draft.box is not None:
        draft.box = None
    else:
        draft.mask = None
    if draft.is_empty():
        del obj.prompts[frame]


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
