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

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..media import export
from ..media.decode import FrameSource
from ..image.predictor import compose_points
from ..modeling.sam2_model import NO_OBJ_SCORE
from ..postprocess import fill_holes_in_mask_scores
from ..prompts import FramePrompt, ObjectPrompts
from ..image.predictor import ImagePredictor
from ..jobs import TrackRequest
from ..provider import ModelProvider, shared_models
from ..service import to_frame_record
from ..video.results import VideoFrame, send_result
from ..video.tracker import FrameOutput
from .candidates import MaskCandidates
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
    candidates: Optional[MaskCandidates] = None  # a click or box prompt's (three for one click)


def preview_prompt(request: TrackRequest, models: Optional[ModelProvider] = None) -> export.FrameRecord:
    """The result of a checked request of one object with one prompt (`AppSession.preview_request`) on `models`
    (default: the process's shared ModelCache)."""
    return preview_with_features(request, models=models).record


def preview_with_features(request: TrackRequest, cached: Optional[CachedFeatures] = None,
                          models: Optional[ModelProvider] = None) -> PreviewOutput:
    """`preview_prompt` that starts from `cached` image features when they are the prompted frame's (same
    video file, frame, model and weights) and returns the frame's features (module doc for the two routes)."""
    if len(request.objects) != 1 or len(request.objects[0].prompts) != 1:
        raise AppInputError("a preview takes exactly one object with one prompt")
    obj = request.objects[0]
    prompt = obj.prompts[0]
    predictor = (models or shared_models()).video_predictor(request.model, request.device, request.weights,
                                                             request.motion_aware)
    if obj.task == "mask" and prompt.mask is None and getattr(predictor, "image_preview", True):
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
    size = image.shape[:2]
    started = time.perf_counter()
    adopted = cached is not None and cached.key == key
    with _tracking_precision(predictor):  # bfloat16 where the tracker runs in it (CUDA): the same numbers
        if adopted:
            images.set_features(to_device(cached.backbone, images.device), size)
        else:
            images.set_image(image)
        low_res, ious, score = _decode(images, prompt, size, getattr(predictor, "fill_hole_area", 0))
    records = [_as_record(prompt.frame, obj.obj_id, low_res[i:i + 1], score, size, images.image_size)
               for i in range(len(ious))]
    seconds = time.perf_counter() - started
    chosen = int(np.argmax(ious))
    candidates = MaskCandidates(np.stack([r.masks[0] for r in records]), ious,
                                np.stack([r.points[0] for r in records]), chosen)
    kept = cached if adopted else CachedFeatures(key, to_device(images.backbone, "cpu"))
    return PreviewOutput(records[chosen], kept, seconds, not adopted, candidates)


def image_predictor_for(predictor: Any) -> Any:
    """A fresh image predictor over a tracking predictor's network (it holds one image's state: one per call),
    resizing frames as the video loader does (bicubic), so that its features are the tracking run's. A stand-in
    tracking predictor brings its own (`image_predictor()`)."""
    own = getattr(predictor, "image_predictor", None)
    if own is not None:
        return own()
    return ImagePredictor(predictor.model, resample="bicubic")


def _tracking_precision(predictor: Any):
    """The tracking predictor's autocast (its stepper's), so that the image predictor computes as its prompt step
    does; nothing for a stand-in without one."""
    stepper = getattr(predictor, "stepper", None)
    return stepper.autocast() if stepper is not None else contextlib.nullcontext()


def _decode(images: Any, prompt: FramePrompt, size: tuple[int, int],
            fill_hole_area: int) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Every candidate of the clicks and/or box as the tracking run's prompt step has them: multimask output by
    SAM 2's rule (`SAM2Model.use_multimask`), the masks gated by the object score (`SAM2Model.settle`'s gate)
    and small holes filled (the video predictor's `fill_hole_area`). -> low-res logits [M, 1, h, w], predicted
    IoUs [M], the object-score logit [1, 1]."""
    device = images.device
    coords = labels = boxes = None
    if prompt.points is not None:
        coords = images.to_model_coords(torch.as_tensor(prompt.points, dtype=torch.float32)[None], size).to(device)
        labels = torch.as_tensor(prompt.labels, dtype=torch.int32)[None].to(device)
    if prompt.box is not None:
        corners = torch.as_tensor(prompt.box, dtype=torch.float32).reshape(1, 2, 2)
        boxes = images.to_model_coords(corners, size).reshape(1, 4).to(device)
    model = images.model
    multimask = model.use_multimask("mask", True, compose_points(coords, labels, boxes))
    out = images.decode(coords, labels, boxes, None, multimask)
    logits, score = out.unclamped_logits[0][:, None].float(), out.object_scores.float().reshape(1, 1)
    if model.tracker_cfg.pred_obj_scores and not bool(score.item() > 0):
        logits = torch.full_like(logits, NO_OBJ_SCORE)  # absent: a hard choice, as the tracker gates it
    filled = fill_holes_in_mask_scores(logits, fill_hole_area)
    return filled.cpu(), out.ious[0].float().cpu().numpy(), score.cpu()


def _as_record(frame_idx: int, obj_id: int, low_res: torch.Tensor, score: torch.Tensor, size: tuple[int, int],
               image_size: int) -> export.FrameRecord:
    """One candidate's low-res logits [1, 1, h, w] as the tracking run's result on its frame (`send_result`:
    the video's size, the mask's peak as its point)."""
    output = FrameOutput(pred_masks=low_res, obj_ptr=torch.zeros(1, 0), object_score_logits=score)
    frame = VideoFrame(size[0], size[1], [obj_id], ["mask"])
    return to_frame_record(send_result(frame_idx, frame, [output], image_size, torch.device("cpu"), False).receive())
