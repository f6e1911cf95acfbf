"""One prompt type and one table of what each task takes (sam2_plus/prompt_rules.py), consulted by the prompts
JSON's parser, the predictor's API and the app's editor: the three accept exactly the prompts the table does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sam2_plus.app import editing
from sam2_plus.app.editing import ObjectState
from sam2_plus.app.errors import AppInputError
from sam2_plus.config import TASKS
from sam2_plus.media.decode import VideoInfo
from sam2_plus.media.rle import encode_rle
from sam2_plus.prompt_rules import PROMPT_KINDS, TASK_RULES, FramePrompt, fitted, misfit
from sam2_plus.prompts import PromptError, parse_prompts
from sam2_plus.video.prompt_inputs import check_clicks, check_mask_task

H, W = 40, 60
VIDEO = VideoInfo("video", 3, 10.0, W, H, 0.3)
MASK = np.zeros((H, W), bool)
MASK[5:15, 10:30] = True
# prompts by what they hold: clicks (as (x, y, label)), a box, a mask
PROMPTS = {
    "one positive click": dict(clicks=[(10, 10, 1)]),
    "one negative click": dict(clicks=[(10, 10, 0)]),
    "two clicks": dict(clicks=[(10, 10, 1), (20, 20, 0)]),
    "a box": dict(box=[5, 5, 30, 25]),
    "clicks and a box": dict(clicks=[(10, 10, 1)], box=[5, 5, 30, 25]),
    "a mask": dict(mask=MASK),
}
ACCEPTED = {  # the table, as a reader states it
    "mask": set(PROMPTS),
    "box": {"a box"},
    "point": {"one positive click"},
}


def prompt_of(held: dict) -> FramePrompt:
    clicks = held.get("clicks")
    return FramePrompt.of(0, None if clicks is None else [c[:2] for c in clicks],
                          None if clicks is None else [c[2] for c in clicks], held.get("box"), held.get("mask"))


def json_accepts(task: str, prompt: FramePrompt) -> bool:
    try:
        parse_prompts({"objects": [{"id": 1, "task": task, "prompts": [prompt.to_json()]}]}, VIDEO)
    except PromptError:
        return False
    return True


def api_accepts(task: str, prompt: FramePrompt) -> bool:
    try:
        if prompt.mask is not None:
            check_mask_task(task)
        else:
            check_clicks(0, prompt.points, prompt.labels, prompt.box, task, W, H)
    except PromptError:
        return False
    return True


def editor_accepts(task: str, prompt: FramePrompt) -> bool:
    """Whether the editor, given the prompt's parts one by one, ends with exactly that prompt."""
    obj = ObjectState(1, "o", task=task)
    try:
        if prompt.mask is not None:
            editing.set_mask(obj, 0, prompt.mask)
        if prompt.box is not None:
            editing.set_box(obj, 0, tuple(prompt.box.tolist()))
        for (x, y), label in prompt.clicks():
            editing.add_click(obj, 0, x, y, positive=label == 1)
    except AppInputError:
        return False
    return obj.prompts[0].to_json() == prompt.to_json()


def test_the_table_covers_every_task_and_kind():
    assert tuple(TASK_RULES) == TASKS and PROMPT_KINDS == ("clicks", "box", "mask")
    assert {task: {name for name, held in PROMPTS.items()
                   if misfit(task, prompt_of(held).kinds, prompt_of(held).labels) is None} for task in TASKS} == ACCEPTED


@pytest.mark.parametrize(("task", "name"), list(itertools.product(TASKS, PROMPTS)))
def test_the_json_the_api_and_the_editor_accept_what_the_table_does(task, name):
    prompt, expected = prompt_of(PROMPTS[name]), name in ACCEPTED[task]
    assert json_accepts(task, prompt) is expected
    # the API converts a mask for the box task (its bounding box is the box); the editor refuses a painted mask
    assert api_accepts(task, prompt) is (expected or (name == "a mask" and TASK_RULES[task].mask_as_box))
    assert editor_accepts(task, prompt) is expected


def test_a_mask_never_goes_with_another_kind():
    assert misfit("mask", {"mask", "box"}).what == "combined"
    assert misfit("mask", {"clicks", "box"}) is None


@pytest.mark.parametrize(("task", "name"), list(itertools.product(TASKS, PROMPTS)))
def test_a_change_of_task_keeps_what_fits(task, name):
    prompt = prompt_of(PROMPTS[name])
    kept = fitted(prompt, task)
    if name in ACCEPTED[task]:
        assert kept is prompt
    elif kept is not None:
        assert misfit(task, kept.kinds, kept.labels) is None
    expected = {("box", "clicks and a box"): [5, 5, 30, 25], ("box", "a mask"): [10, 5, 30, 15]}
    if (task, name) in expected:
        assert kept.box.tolist() == expected[(task, name)]
    if task == "point" and name in ("two clicks", "clicks and a box"):
        assert kept.clicks() == [((10, 10), 1)]
    if task == "point" and name in ("one negative click", "a box", "a mask"):
        assert kept is None


def test_a_prompt_reads_back_from_its_json():
    prompt = prompt_of(PROMPTS["clicks and a box"])
    assert prompt.to_json() == {"frame": 0, "points": [[10.0, 10.0]], "labels": [1], "box": [5.0, 5.0, 30.0, 25.0]}
    assert prompt_of(PROMPTS["a mask"]).to_json() == {"frame": 0, "mask": encode_rle(MASK)}
    assert FramePrompt(2).is_empty() and FramePrompt(2).to_json() == {"frame": 2}
