"""The immediate preview: one object's prompt on one frame through the predictor."""

from __future__ import annotations

from ..media import export
from ..media.decode import FrameSource
from ..service import TrackRequest, get_predictor, to_frame_record
from .errors import AppInputError
from .jobs import VIEW_CACHE_BYTES

PREVIEW_GPU_SECONDS = 30  # one image encoder pass and one decoder call; ZeroGPU's start dominates


def preview_prompt(request: TrackRequest) -> export.FrameRecord:
    """The result of a checked request of one object with one prompt (`AppSession.preview_request`): a fresh
    predictor session on the video holding only that prompt, as the tracking run computes that conditioning
    frame."""
    if len(request.objects) != 1 or len(request.objects[0].prompts) != 1:
        raise AppInputError("a preview takes exactly one object with one prompt")
    obj = request.objects[0]
    predictor = get_predictor(request.model, request.device, request.weights, request.motion_aware)
    with FrameSource(request.video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        state = predictor.init_state(frames)
        result = predictor.add_prompt(state, obj.obj_id, obj.task, obj.prompts[0])
    return to_frame_record(result)
