"""The immediate preview: one object's prompt on one frame, reusing the frame's image features from an earlier
preview when they are given (`feature_store`).

A mask object's clicks and/or box are an image-predictor call on the frame's features (no tracking session):
its candidate masks with their predicted IoU come back too (`MaskCandidates`), and the preview is the one the
tracking run's conditioning frame takes (SAM 2's rules: multimask output for one click, the highest predicted
IoU, the mask gated by the object score, small holes filled as the video predictor fills them). A mask prompt,
and a box or point object (whose result is SAM 2++'s box head's box or heatmap peak), go through the video
predictor's prompt step on the same cached features, as the tracking run computes that frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..media import export
from ..media.decode import FrameSource
from ..postprocess import fill_holes_in_mask_scores
from ..prompts import FramePrompt, ObjectPrompts
from ..service import TrackRequest, to_frame_record
from ..video.results import VideoFrame, send_result
from ..video.tracker import FrameOutput
from .candidates import MaskCandidates
from .errors import AppInputError
from .feature_store import CachedFeatures, features_key, to_device
from .jobs import VIEW_CACHE_BYTES
from .predictors import image_predictor_for, tracking_predictor

PREVIEW_GPU_SECONDS = 30  # one image encoder pass and one decoder call; ZeroGPU's start dominates


@dataclass(frozen=True)
class PreviewOutput:
    record: export.FrameRecord
    features: Optional[CachedFeatures]  # the frame's image features (on the host), for the next preview there
    model_seconds: float = 0.0  # the model's time for this preview (the network was built before)
    encoded: bool = True  # whether that time includes the image encoder (False: it started from cached features)
    candidates: Optional[MaskCandidates] = None  # a click prompt's candidates, when the model gives several


def preview_prompt(request: TrackRequest) -> export.FrameRecord:
    """The result of a checked request of one object with one prompt (`AppSession.preview_request`)."""
    return preview_with_features(request).record


def preview_with_features(request: TrackRequest, cached: Optional[CachedFeatures] = None) -> PreviewOutput:
    """`preview_prompt` that starts from `cached` image features when they are the prompted frame's (same
    video file, frame, model and weights) and returns the frame's features (module doc for the two routes)."""
    if len(request.objects) != 1 or len(request.objects[0].prompts) != 1:
        raise AppInputError("a preview takes exactly one object with one prompt")
    obj = request.objects[0]
    prompt = obj.prompts[0]
    predictor = tracking_predictor(request.model, request.device, request.weights, request.motion_aware)
    if obj.task == "mask" and prompt.mask is None:
        return _image_preview(request, predictor, obj, prompt, cached)
    return _prompt_step_preview(request, predictor, obj, prompt, cached)


def _prompt_step_preview(request: TrackRequest, predictor: Any, obj: ObjectPrompts, prompt: FramePrompt,
                         cached: Optional[CachedFeatures]) -> PreviewOutput:
    """A fresh predictor session on the video holding only that prompt, as the tracking run computes that
    conditioning frame."""
    key = features_key(request, prompt.frame)
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


def _image_preview(request: TrackRequest, predictor: Any, obj: ObjectPrompts, prompt: FramePrompt,
                   cached: Optional[CachedFeatures]) -> PreviewOutput:
    """The image predictor on the frame (its features from `cached` when they are this frame's): every
    candidate, and the preview as the conditioning frame takes it."""
    key = features_key(request, prompt.frame)
    images = image_predictor_for(predictor)
    with FrameSource(request.video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        image = np.asarray(frames[prompt.frame])
    started = time.perf_counter()
    adopted = cached is not None and cached.key == key
    if adopted:
        images.set_backbone(to_device(cached.backbone, images.device), image.shape[:2])
    else:
        images.set_image(image)
    decoded = _decode(images, predictor, prompt)
    results = [_as_record(prompt.frame, obj.obj_id, decoded, i, image.shape[:2], images) for i in
               range(len(decoded.ious))]
    seconds = time.perf_counter() - started
    chosen = int(np.argmax(decoded.ious))
    candidates = None
    if len(results) > 1:
        candidates = MaskCandidates(np.stack([r.masks[0] for r in results]), decoded.ious.astype(np.float32),
                                    chosen)
    kept = cached if adopted else CachedFeatures(key, to_device(images.backbone, "cpu"))
    return PreviewOutput(results[chosen], kept, seconds, not adopted, candidates)


@dataclass(frozen=True)
class _Decoded:
    low_res: torch.Tensor  # [M, 1, s, s] logits, holes filled as the video predictor fills them
    ious: np.ndarray  # [M]
    object_score: torch.Tensor  # [1, 1] logit


def _decode(images: Any, predictor: Any, prompt: FramePrompt) -> _Decoded:
    """Every candidate of the clicks and/or box, with multimask output where the tracking run's conditioning
    frame has it (SAM 2's rule, `SAM2Model.use_multimask`), gated by the object score like the tracking run."""
    points = None if prompt.points is None else np.asarray(prompt.points, np.float32)
    labels = None if prompt.labels is None else np.asarray(prompt.labels, np.int32)
    multimask = images.multimask_for("mask", points, prompt.box)
    _, ious, low_res = images.predict(point_coords=points, point_labels=labels, box=prompt.box,
                                      multimask_output=multimask, return_logits=True, normalize_coords=True)
    score = torch.as_tensor(images.object_score_logits(), dtype=torch.float32).reshape(1, 1)
    logits = torch.as_tensor(np.asarray(low_res), dtype=torch.float32)[:, None]
    if score.item() <= 0:  # absent: the mask gives way, as the decoder gates it in tracking
        logits = torch.full_like(logits, -1024.0)
    filled = fill_holes_in_mask_scores(logits, getattr(predictor, "fill_hole_area", 0))
    return _Decoded(filled, np.asarray(ious, np.float32).reshape(-1), score)


def _as_record(frame_idx: int, obj_id: int, decoded: _Decoded, index: int, size: tuple[int, int],
               images: Any) -> export.FrameRecord:
    """Candidate `index` as the tracking run's result on its frame (`send_result`: the video's size, the
    mask's peak as its point)."""
    output = FrameOutput(pred_masks=decoded.low_res[index:index + 1], obj_ptr=torch.zeros(1, 0),
                         object_score_logits=decoded.object_score)
    frame = VideoFrame(size[0], size[1], [obj_id], ["mask"])
    result = send_result(frame_idx, frame, [output], images.image_size, torch.device("cpu"), False).receive()
    return to_frame_record(result)
