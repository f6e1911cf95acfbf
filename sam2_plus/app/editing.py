"""One object's prompts as the UI edits them: clicks, a box or a mask per frame (`prompt_rules.FramePrompt`, the
prompt type of the prompts JSON and the API), under the table of what each task takes (`prompt_rules.TASK_RULES`),
and what a change of granularity keeps (`prompt_rules.fitted`). A candidate mask of an object's clicks picked as
its prompt on a frame (`pick_candidate`) is that frame's mask prompt; the clicks it came from stay in `picks`, so
that a further click, a box or undo goes on from them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

from ..media.render import Color, color_for_id
from ..prompt_rules import TASK_RULES, FramePrompt, fitted, misfit
from ..prompts import TASKS, PromptLimits
from .errors import AppInputError

# Tools of the prompt editor.
POSITIVE, NEGATIVE, BOX, BRUSH, MASK_FILE = ("Positive click", "Negative click", "Box (two clicks)", "Brush mask",
                                             "Mask PNG")
TOOLS = (POSITIVE, NEGATIVE, BOX, BRUSH, MASK_FILE)


@dataclass(frozen=True)
class Pick:
    """A candidate mask picked on a frame: which of the clicks' candidates, and the clicks' own prompt."""

    index: int
    clicks: FramePrompt


@dataclass
class ObjectState:
    obj_id: int
    name: str
    task: str = "mask"
    prompts: dict[int, FramePrompt] = field(default_factory=dict)  # frame -> its prompt (none empty)
    picks: dict[int, Pick] = field(default_factory=dict)  # frame -> the candidate its mask prompt was picked as
    label: str = ""  # found by Find or a tracking job: the phrase it was found by ("" for everything)
    score: Optional[float] = None  # ... and its score (the detector's, or the predicted IoU); None: not found

    @property
    def color(self) -> Color:
        return color_for_id(self.obj_id)

    def frames(self) -> list[int]:
        return sorted(frame for frame, prompt in self.prompts.items() if not prompt.is_empty())

    def to_json(self) -> dict[str, Any]:
        frames = self.frames()
        if not frames:
            raise AppInputError(f"object {self.obj_id} ({self.name}) has no prompt yet: give it a click, a box or a "
                                "mask on some frame, or remove it")
        return {"id": self.obj_id, "task": self.task, "prompts": [self.prompts[f].to_json() for f in frames]}

    def prompt_kind(self, frame: int) -> str:
        """"clicks", "box", "clicks+box" or "mask" of the prompt on `frame` (a picked candidate: its clicks')."""
        pick = self.picks.get(frame)
        kinds = (pick.clicks if pick is not None else self.prompts[frame]).kinds
        if "mask" in kinds:
            return "mask"
        return "clicks+box" if kinds == {"clicks", "box"} else min(kinds)

    def unpick(self, frame: int) -> Optional[FramePrompt]:
        """Drop the pick on `frame`, its clicks the frame's prompt again; the prompt on `frame` (None: none)."""
        pick = self.picks.pop(frame, None)
        if pick is not None:
            self.prompts[frame] = pick.clicks
        return self.prompts.get(frame)

    def found_note(self) -> str:
        """'found: person, score 0.91' for an object found by Find or a tracking job; '' otherwise."""
        if self.score is None:
            return ""
        return f"found: {self.label + ', ' if self.label else ''}score {self.score:.2f}"

    def where(self) -> str:
        frames = self.frames()
        if not frames:
            return "no prompt yet"
        plural = "s" if len(frames) > 1 else ""
        return f"prompt{plural} on frame{plural} " + ", ".join(map(str, frames))


def add_click(obj: ObjectState, frame: int, x: float, y: float, positive: bool) -> str:
    """Add a click to an object's prompt on a frame; returns a note for people ("" when none)."""
    rule = TASK_RULES[obj.task]
    if "clicks" not in rule.takes:
        raise AppInputError(f"{obj.name} has the {obj.task} granularity: draw a box with the '{BOX}' tool")
    if rule.points is not None:  # a fixed number of positive clicks: the click replaces the last
        if not positive:
            raise AppInputError(f"{obj.name} has the {obj.task} granularity: it takes one positive click per frame")
        prompt = obj.prompts.get(frame, FramePrompt(frame))
        clicks = [point for point, _ in prompt.clicks()][:rule.points - 1] + [(x, y)]
        obj.prompts[frame] = FramePrompt.of(frame, clicks)
        return f"the {obj.task} granularity takes one point per frame: the click replaces the previous one"
    note = "the picked candidate gave way to the clicks: the click refines them" if frame in obj.picks else ""
    prompt = obj.unpick(frame) or FramePrompt(frame)
    if prompt.mask is not None:
        prompt = FramePrompt(frame)
        note = "clicks cannot be combined with a mask on the same frame: the mask was replaced"
    clicks = prompt.clicks()
    if len(clicks) >= PromptLimits().max_points_per_prompt:
        raise AppInputError(f"{obj.name} already has {len(clicks)} clicks on frame {frame}, the most allowed")
    clicks.append(((x, y), 1 if positive else 0))
    obj.prompts[frame] = FramePrompt.of(frame, [p for p, _ in clicks], [label for _, label in clicks], prompt.box)
    return note


def set_box(obj: ObjectState, frame: int, box: tuple[float, float, float, float]) -> str:
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    if x1 == x2 or y1 == y2:
        raise AppInputError("the two corners of a box must differ in both x and y")
    rule = TASK_RULES[obj.task]
    if "box" not in rule.takes:
        raise AppInputError(f"{obj.name} has the {obj.task} granularity: give it one positive click")
    prompt = obj.unpick(frame) or FramePrompt(frame)
    note = ""
    if prompt.mask is not None:
        prompt = FramePrompt(frame)
        note = "a box cannot be combined with a mask on the same frame: the mask was replaced"
    if "clicks" not in rule.takes:
        prompt = FramePrompt(frame)
    obj.prompts[frame] = replace(prompt, box=np.array([x1, y1, x2, y2], np.float32))
    return note


def set_mask(obj: ObjectState, frame: int, mask: np.ndarray) -> str:
    """A painted or uploaded mask as the object's prompt on `frame`: only a granularity that takes a mask takes
    one (a box or point object refuses it rather than silently making a box or a point of it)."""
    if misfit(obj.task, {"mask"}) is not None:
        instead = (f"draw a box with the '{BOX}' tool" if "box" in TASK_RULES[obj.task].takes
                   else f"give it one positive click with the '{POSITIVE}' tool")
        raise AppInputError(f"{obj.name} has the {obj.task} granularity, which takes no mask: {instead}, or set its "
                            "granularity to mask to prompt it with a painted or uploaded mask")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise AppInputError("the mask is empty: paint over the object (or upload a PNG with nonzero object pixels)")
    obj.picks.pop(frame, None)
    obj.prompts[frame] = FramePrompt(frame, mask=mask)
    return ""


def pick_candidate(obj: ObjectState, frame: int, index: int, mask: Optional[np.ndarray]) -> str:
    """One of the candidate masks of the object's clicks on `frame` as its prompt there: a mask prompt, which
    Track takes like any mask, with the clicks kept in `picks` (a further click goes on from them; undo drops the
    pick). `mask` None: the candidate the clicks give by themselves (the highest predicted IoU), so the clicks
    alone."""
    pick = obj.picks.get(frame)
    clicks = pick.clicks if pick is not None else obj.prompts.get(frame)
    if obj.task != "mask" or clicks is None or clicks.kinds != {"clicks"}:
        raise AppInputError(f"{obj.name} has no click prompt on frame {frame} to pick a candidate of")
    if mask is None:
        obj.unpick(frame)
        return f"{obj.name}: back to the clicks' own mask"
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise AppInputError(f"candidate {index + 1} is empty: pick another one, or click again")
    obj.picks[frame] = Pick(int(index), clicks)
    obj.prompts[frame] = FramePrompt(frame, mask=mask)
    return f"{obj.name}: candidate {index + 1} is the prompt on frame {frame} (as a mask prompt)"


def convert_task(obj: ObjectState, task: str) -> str:
    """Give an object another granularity, keeping of each prompt what fits it (`prompt_rules.fitted`); returns a
    note."""
    if task not in TASKS:
        raise AppInputError(f"unknown granularity {task!r}; choose one of {', '.join(TASKS)}")
    dropped: list[int] = []
    for frame in list(obj.picks):
        obj.unpick(frame)  # a pick belongs to the mask granularity's clicks
    for frame, prompt in list(obj.prompts.items()):
        converted = fitted(prompt, task)
        if converted is None:
            dropped.append(frame)
            del obj.prompts[frame]
        else:
            obj.prompts[frame] = converted
    obj.task = task
    if not dropped:
        return ""
    return f"prompts that the {task} granularity cannot take were removed (frames {', '.join(map(str, dropped))})"


def undo(obj: ObjectState, frame: int) -> None:
    """Remove the picked candidate of a frame (back to its clicks), else its last click, else its box, else its
    mask."""
    prompt = obj.prompts.get(frame)
    if prompt is None or prompt.is_empty():
        raise AppInputError(f"{obj.name} has no prompt on frame {frame}")
    if frame in obj.picks:
        obj.unpick(frame)
        return
    clicks = prompt.clicks()[:-1]
    if prompt.points is not None:
        prompt = FramePrompt.of(frame, [p for p, _ in clicks], [label for _, label in clicks], prompt.box)
    elif prompt.box is not None:
        prompt = replace(prompt, box=None)
    else:
        prompt = FramePrompt(frame)
    if prompt.is_empty():
        del obj.prompts[frame]
    else:
        obj.prompts[frame] = prompt
