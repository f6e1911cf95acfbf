"""The immediate preview: one object's prompt on one frame through the predictor, reusing the frame's image
features from an earlier preview when they are given (`feature_store`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from ..media import export
from ..media.decode import FrameSource
from ..jobs import TrackRequest
from ..provider import ModelProvider, shared_models
from ..service import to_frame_record
from .errors import AppInputError
from .feature_store import CachedFeatures, features_key, to_device
from .jobs import VIEW_CACHE_BYTES

PREVIEW_GPU_SECONDS = 30  # one image encoder pass and one decoder call; ZeroGPU's start dominates


@dataclass(frozen=True)
class PreviewOutput:
    record: export.FrameRecord
    features: Optional[CachedFeatures]  # the frame's image features (on the host), for the next preview there
    model_seconds: float = 0.0  # the model's time for this preview (the network was built before)
    encoded: bool = True  # whether that time includes the image encoder (False: it started from cached features)


def preview_prompt(request: TrackRequest, models: Optional[ModelProvider] = None) -> export.FrameRecord:
    """The result of a checked request of one object with one prompt (`AppSession.preview_request`) on `models`
    (default: the process's shared ModelCache)."""
    return preview_with_features(request, models=models).record


def preview_with_features(request: TrackRequest, cached: Optional[CachedFeatures] = None,
                          models: Optional[ModelProvider] = None) -> PreviewOutput:
    """`preview_prompt` that starts from `cached` image features when they are the prompted frame's (same
    video file, frame, model and weights) and returns the frame's features: a fresh predictor session on the
    video holding only that prompt, as the tracking run computes that conditioning frame."""
    if len(request.objects) != 1 or len(request.objects[0].prompts) != 1:
        raise AppInputError("a preview takes exactly one object with one prompt")
    obj = request.objects[0]
    prompt = obj.prompts[0]
    key = features_key(request, prompt.frame)
    predictor = (models or shared_models()).video_predictor(request.model, request.device, request.weights,
                                                             request.motion_aware)
    with FrameSource(request.video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        started = time.perf_counter()
        state = predictor.init_state(frames)
        features = getattr(state, "features", None)  # stand-in predictors have none
        adopted = features is not None and cached is not None and cached.key == key
        if adopted:
            features.adopt(prompt.frame, to_device(cached.backbone, predictor.device))
        result = predictor.add_prompt(state, obj.obj_id, obj.task, prompt)
        record = to_frame_record(result)  # waits for the device's work
        seconds = time.perf_counter() - started
    kept = None
    if features is not None and features.frame_idx == prompt.frame and features.backbone is not None:
        kept = cached if adopted else CachedFeatures(key, to_device(features.backbone, "cpu"))
    return PreviewOutput(record, kept, seconds, not adopted)
