"""Segment a still image from prompts: the prompts JSON of the video path, the image being a one-frame video.

    image = read_image("photo.jpg")
    result = segment_image(image, prompts_json, SegmentOptions(), predictor)   # an image predictor
    result.objects[0].candidates        # a lone click: three candidate masks with their predicted IoU
    result = result.choose(1, 2)        # keep another candidate of object 1 (no model call)

Each object has one prompt, on frame 0: clicks, a box, clicks and a box, or a mask, as its task allows
(sam2_plus/prompts.py). Clicks and boxes go through the image predictor's decoder with the object's task; a
lone click (and nothing else) asks for its three candidates (`SegmentOptions.multimask`), any other prompt for
one. The chosen candidate is the highest predicted IoU unless the options choose another. A mask prompt is the
object's mask as it is (a mask prompt on a video frame is that frame's output too), with no predicted IoU; so is
a point-task object's click (SAM 2++'s point task outputs its click on the prompted frame), with an empty mask.

Outputs are derived as the video path derives them (sam2_plus/video/results.py): the mask is logits > 0 at
the image's resolution, upscaled as SAM 2's image predictor does; the point is where the chosen candidate's
logits peak; the box is the box head's for a box-task object, else the mask's bounding box (x2, y2 exclusive;
none when the mask is empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional, Protocol

import numpy as np
import torch

from ..media.export import FrameRecord, mask_to_box
from ..prompts import FramePrompt, ObjectPrompts, PromptError, parse_prompts
from ..service import check_model
from .inputs import SegmentOptions, StillImage

MASK_THRESHOLD = 0.0  # logits above it are the object (SAM 2's mask_threshold)


class Decoded(Protocol):
    ious: torch.Tensor  # [1, M]
    unclamped_logits: torch.Tensor  # [1, M, h, w]
    boxes_norm: Optional[torch.Tensor]  # [1, M, 4] normalised xyxy (the box task's head), or None


class ImagePredictorLike(Protocol):
    """What segment_image needs of an image predictor: sam2_plus.image.predictor.ImagePredictor's torch level,
    which gives every candidate's logits and, for the box task, the box head's boxes in one decoder call. Its
    `task` selects the decoder; its features are kept per task, so one encoding serves every task."""

    task: str

    def set_image(self, image: np.ndarray) -> None: ...

    def to_model_coords(self, coords: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor: ...

    def decode(self, coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
               boxes: Optional[torch.Tensor] = None, mask_input: Optional[torch.Tensor] = None,
               multimask_output: bool = True) -> Decoded: ...

    def upscale(self, low_res_logits: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class Candidate:
    """One mask the decoder proposes for a prompt."""

    mask: np.ndarray  # HxW bool
    iou: Optional[float]  # the decoder's predicted IoU (None for a mask or point-task prompt: taken as it is)
    point: tuple[float, float]  # (x, y) where its logits peak (the point task: its click)
    head_box: Optional[tuple[float, float, float, float]] = None  # the box task: the box head's xyxy pixels

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True, eq=False)
class ObjectSegmentation:
    obj_id: int
    task: str  # "mask", "box" or "point" (prompts.py)
    prompt_kind: str  # "clicks", "box", "clicks+box" or "mask"
    candidates: tuple[Candidate, ...]  # three for a lone click with multimask, else one
    chosen: int  # index into candidates

    @property
    def result(self) -> Candidate:
        return self.candidates[self.chosen]

    @property
    def mask(self) -> np.ndarray:
        return self.result.mask

    @property
    def iou(self) -> Optional[float]:
        return self.result.iou

    @property
    def point(self) -> tuple[float, float]:
        return self.result.point

    @property
    def area(self) -> int:
        return self.result.area

    @property
    def box(self) -> Optional[tuple[float, float, float, float]]:
        """xyxy in pixels: the box head's for the box task, else the mask's (x2, y2 exclusive; None when empty)."""
        if self.result.head_box is not None:
            return self.result.head_box
        box = mask_to_box(self.mask)
        return None if box is None else tuple(float(v) for v in box)

    @property
    def visible(self) -> bool:
        """Whether it has a result: a mask object a pixel, a box object a box; a point object always has its point."""
        return self.task == "point" or self.box is not None


@dataclass(frozen=True, eq=False)
class ImageSegmentation:
    image: StillImage
    model: str
    objects: tuple[ObjectSegmentation, ...]

    @property
    def tasks(self) -> dict[int, str]:
        return {obj.obj_id: obj.task for obj in self.objects}

    def object(self, obj_id: int) -> ObjectSegmentation:
        for obj in self.objects:
            if obj.obj_id == obj_id:
                return obj
        raise KeyError(f"no object {obj_id}; the objects are {', '.join(str(o.obj_id) for o in self.objects)}")

    def choose(self, obj_id: int, index: int) -> "ImageSegmentation":
        """The same result with candidate `index` kept for object `obj_id` (PromptError when it has no such
        candidate)."""
        obj = self.object(obj_id)
        _check_choice(obj_id, index, len(obj.candidates))
        objects = tuple(replace(o, chosen=index) if o.obj_id == obj_id else o for o in self.objects)
        return replace(self, objects=objects)

    def record(self) -> FrameRecord:
        """The chosen masks as a frame's record, for the writers shared with the video path (COCO, cut-outs);
        its scores are the predicted IoUs (NaN for a mask prompt)."""
        height, width = self.image.height, self.image.width
        masks = (np.stack([obj.mask for obj in self.objects]) if self.objects
                 else np.zeros((0, height, width), bool))
        nan = (np.nan,) * 4
        return FrameRecord(
            frame_idx=0, obj_ids=[obj.obj_id for obj in self.objects], masks=masks,
            boxes=np.array([obj.result.head_box or nan for obj in self.objects], np.float32).reshape(-1, 4),
            points=np.array([obj.point for obj in self.objects], np.float32).reshape(-1, 2),
            scores=np.array([np.nan if obj.iou is None else obj.iou for obj in self.objects], np.float32),
            visible=np.array([obj.visible for obj in self.objects], bool))


def segment_image(image: StillImage, prompts: str | bytes | Mapping[str, Any] | Sequence[ObjectPrompts],
                  options: SegmentOptions, predictor: ImagePredictorLike) -> ImageSegmentation:
    """Every object of `prompts` (the prompts JSON, or prompts parsed against `image.info`) segmented on
    `image`. Raises PromptError for prompts the image or the model cannot take (a frame other than 0, a click
    outside the image, a task the model lacks, a choice of a candidate that does not exist)."""
    objects = parse_image_prompts(prompts, image)
    model = check_model(options.model, {obj.obj_id: obj.task for obj in objects})
    check_choices(options, objects)
    if any(_decoded(obj) for obj in objects):
        predictor.set_image(image.pixels)
    segmented = tuple(_segment_object(obj, image, options, predictor) for obj in objects)
    return ImageSegmentation(image, model, segmented)


def parse_image_prompts(prompts: str | bytes | Mapping[str, Any] | Sequence[ObjectPrompts],
                        image: StillImage) -> tuple[ObjectPrompts, ...]:
    """The prompts checked against the image as a one-frame video (PromptError)."""
    if isinstance(prompts, (str, bytes, bytearray, Mapping)):
        return tuple(parse_prompts(prompts, image.info))
    objects = tuple(prompts)
    for obj in objects:
        for prompt in obj.prompts:
            if prompt.frame != 0:
                raise PromptError(f"object {obj.obj_id}: frame {prompt.frame} is out of range; an image has one "
                                  "frame: use frame 0")
    return objects


def check_choices(options: SegmentOptions, objects: Sequence[ObjectPrompts]) -> None:
    """Every chosen candidate names an object of the prompts with that many candidates."""
    by_id = {obj.obj_id: obj for obj in objects}
    for obj_id, index in options.choices:
        if obj_id not in by_id:
            raise PromptError(f"options.choices names object {obj_id}, which the prompts do not have "
                              f"(their objects: {', '.join(map(str, by_id))})")
        _check_choice(obj_id, index, 3 if _multimask(by_id[obj_id].prompts[0], options) else 1)


def _check_choice(obj_id: int, index: int, count: int) -> None:
    if not 0 <= index < count:
        raise PromptError(f"object {obj_id} has {count} candidate{'s' if count > 1 else ''} "
                          f"(0..{count - 1}); candidate {index} does not exist"
                          + ("" if count > 1 else ": only a lone click gives three"))


def _multimask(prompt: FramePrompt, options: SegmentOptions) -> bool:
    """Three candidates for a lone click, which is ambiguous (a part, the whole, ...)."""
    return options.multimask and prompt.box is None and prompt.points is not None and len(prompt.points) == 1


def _decoded(obj: ObjectPrompts) -> bool:
    """Whether the object's prompt goes through the decoder: clicks and boxes do; a mask is its own result, and
    a point-task click is its result on its prompted frame (the video path's output there is that click)."""
    return obj.prompts[0].mask is None and obj.task != "point"


def _segment_object(obj: ObjectPrompts, image: StillImage, options: SegmentOptions,
                    predictor: ImagePredictorLike) -> ObjectSegmentation:
    prompt = obj.prompts[0]
    if prompt.mask is not None:
        candidates = (Candidate(prompt.mask, None, _peak(prompt.mask)),)
    elif obj.task == "point":
        x, y = (float(v) for v in prompt.points[0])
        candidates = (Candidate(np.zeros((image.height, image.width), bool), None, (x, y)),)
    else:
        candidates = _candidates(predictor, obj.task, prompt, image, _multimask(prompt, options))
    chosen = options.choice_for(obj.obj_id)
    if chosen is None:
        chosen = int(np.argmax([c.iou for c in candidates])) if len(candidates) > 1 else 0
    return ObjectSegmentation(obj.obj_id, obj.task, prompt_kind(prompt), candidates, chosen)


@torch.inference_mode()
def _candidates(predictor: ImagePredictorLike, task: str, prompt: FramePrompt, image: StillImage,
                multimask: bool) -> tuple[Candidate, ...]:
    """One decoder call with the object's task (the predictor's task is set for it and put back)."""
    hw = (image.height, image.width)
    coords = labels = boxes = None
    if prompt.points is not None:
        coords = predictor.to_model_coords(torch.from_numpy(prompt.points)[None], hw)
        labels = torch.from_numpy(prompt.labels)[None]
    if prompt.box is not None:
        boxes = predictor.to_model_coords(torch.from_numpy(prompt.box).reshape(1, 2, 2), hw).reshape(1, 4)
    previous, predictor.task = predictor.task, task
    try:
        decoded = predictor.decode(coords, labels, boxes, None, multimask)
    finally:
        predictor.task = previous
    logits = predictor.upscale(decoded.unclamped_logits, hw)[0].float().cpu().numpy()
    ious = decoded.ious[0].float().cpu().numpy()
    head = None if decoded.boxes_norm is None or task != "box" else decoded.boxes_norm[0].float().cpu().numpy()
    scale = np.array([image.width, image.height, image.width, image.height], np.float32)
    return tuple(Candidate(logits[i] > MASK_THRESHOLD, float(ious[i]), _peak(logits[i]),
                           None if head is None else tuple(float(v) for v in head[i] * scale))
                 for i in range(logits.shape[0]))


def _peak(values: np.ndarray) -> tuple[float, float]:
    """(x, y) of the first maximum (row-major), as the video path's point."""
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    return float(x), float(y)


def prompt_kind(prompt: FramePrompt) -> str:
    if prompt.mask is not None:
        return "mask"
    if prompt.box is not None:
        return "clicks+box" if prompt.points is not None else "box"
    return "clicks"
