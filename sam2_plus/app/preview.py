"""The immediate preview: one object's prompt on one frame through the predictor."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..media import export
from ..media.decode import FrameSource, probe
from ..prompts import parse_prompts
from ..service import check_model, get_predictor, to_frame_record
from .errors import AppInputError
from .jobs import VIEW_CACHE_BYTES
from .options import parse_options

PREVIEW_GPU_SECONDS = 30  # one image encoder pass and one decoder call; ZeroGPU's start dominates


def preview_prompt(video: str | os.PathLike, prompts_json: str,
                   options_json: str | Mapping | None) -> export.FrameRecord:
    """The result of one object's prompt on one frame: a fresh predictor session on the video holding only
    that prompt, as the tracking run computes that conditioning frame. Raises INPUT_ERRORS/AppInputError."""
    options = parse_options(options_json)
    info = probe(video)
    objects = parse_prompts(prompts_json, info)
    if len(objects) != 1 or len(objects[0].prompts) != 1:
        raise AppInputError("a preview takes exactly one object with one prompt")
    obj, prompt = objects[0], objects[0].prompts[0]
    check_model(options.model, {obj.obj_id: obj.task})
    predictor = get_predictor(options.model, motion_aware=options.motion_aware)
    with FrameSource(video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        state = predictor.init_state(frames)
        if prompt.mask is not None:
            result = predictor.add_new_mask(state, prompt.frame, obj.obj_id, prompt.mask, task=obj.task)
        else:
            result = predictor.add_new_points_or_box(state, prompt.frame, obj.obj_id, points=prompt.points,
                                                     labels=prompt.labels, box=prompt.box, task=obj.task)
    return to_frame_record(result)
