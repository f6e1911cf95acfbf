"""SAM 2's image predictor over this project's network: `set_image` encodes an image once, `predict` turns
clicks, a box and / or a low-res mask into candidate masks with their predicted IoU, as numpy arrays.

Under the numpy API sits a torch-level step in the model's input space (`ImagePredictor.decode`,
`to_model_coords`, `upscale`), which the automatic mask generator batches over; and under that
`decode_image_prompt`, the prompt step that the video engine's tracker runs on a frame too (before its own
presence gating, choice and memory).

SAM 2++ has three tasks; an image predictor decodes with one of them, its `task` ("mask", the default, or
"box": the box head's boxes come with the masks in `ImageDecode.boxes_norm`)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torchvision.transforms import functional as TF

from ..media.decode import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from ..modeling.sam2_model import Decoded, PointPrompt, SAM2Model
from ..network import build_model
from .api import LOW_RES_LOGIT_LIMIT, ImageDecode, ImagePredictorAPI

RESAMPLING = ("bilinear", "bicubic")
IMAGE_TASKS = ("mask", "box")


def compose_points(coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
                   boxes: Optional[torch.Tensor]) -> Optional[PointPrompt]:
    """One sparse prompt: a box [B, 4] becomes two corner points (labels 2 and 3) ahead of the clicks."""
    points = None if coords is None else PointPrompt(coords.float(), labels.to(torch.int32))
    if boxes is None:
        return points
    corners = PointPrompt(boxes.float().reshape(-1, 2, 2),
                          torch.tensor([[2, 3]], dtype=torch.int32, device=boxes.device).repeat(boxes.shape[0], 1))
    return corners if points is None else corners.concat(points)


def decode_image_prompt(model: SAM2Model, task: str, image_embed: torch.Tensor,
                        high_res: Optional[list[torch.Tensor]], coords: Optional[torch.Tensor] = None,
                        labels: Optional[torch.Tensor] = None, boxes: Optional[torch.Tensor] = None,
                        mask_input: Optional[torch.Tensor] = None, multimask_output: bool = True,
                        pad_without_points: bool = False) -> Decoded:
    """Prompts in model pixels on an image's decoder-ready features -> every candidate, nothing gated.

    image_embed [1 or B, C, 64, 64] (the top level with the no-memory embedding, or a video frame's level
    conditioned on its object's memory); the tracker pads a prompt without clicks with one padding point
    (`pad_without_points`), SAM 2's image predictor does not."""
    points = compose_points(coords, labels, boxes)
    return model.decode_candidates(task, image_embed, high_res, points, mask_input, multimask_output,
                                   pad_without_points=pad_without_points)


class ImagePredictor(ImagePredictorAPI):
    """SAM 2's `SAM2ImagePredictor` API over a `SAM2Model` (which it may share with video predictors).

    resample: "bilinear" resizes images to the model's input as SAM 2's image predictor does; "bicubic" as
    its video loader does (what this project's video predictor sees on a frame)."""

    def __init__(self, model: SAM2Model, task: str = "mask", mask_threshold: float = 0.0, max_hole_area: int = 0,
                 max_sprinkle_area: int = 0, resample: str = "bilinear") -> None:
        if resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {list(RESAMPLING)}, got {resample!r}")
        self.model = model
        self.task = task
        self._set_postprocessing(mask_threshold, max_hole_area, max_sprinkle_area)
        self.resample = resample
        self.reset_predictor()

    # ------------------------------------------------------------------ state
    def _check_task(self, task: str) -> None:
        self.model.check_task(task)
        if task not in IMAGE_TASKS:
            raise ValueError(f"the image predictor decodes the tasks {list(IMAGE_TASKS)}, not {task!r}: the point "
                             "task's output on a prompted frame is the click's Gaussian heatmap, not a decoded mask")

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def mask_input_size(self) -> tuple[int, int]:
        return tuple(self.model.sam_prompt_encoder.mask_input_size)

    def _forget_features(self) -> None:
        self._backbone: Optional[dict] = None
        self._by_task: dict[str, tuple[torch.Tensor, Optional[list[torch.Tensor]]]] = {}

    # ------------------------------------------------------------------ images
    def _encode(self, images: list[np.ndarray]) -> None:
        batch = torch.stack([self._model_input(image) for image in images]).to(self.device)
        self._backbone = self.model.encode_image(batch)

    def set_features(self, backbone: dict, orig_hw: tuple[int, int]) -> None:
        """Take one image's encoder output computed before (`backbone`: the same network on the same image, resized
        as `resample` says), so that predictions skip the image encoder (the app keeps a frame's between clicks)."""
        self.reset_predictor()
        self._backbone, self._orig_hw = backbone, [(int(orig_hw[0]), int(orig_hw[1]))]

    @property
    def backbone(self) -> Optional[dict]:
        """The image encoder's output for the image(s) set (`set_features` takes it back)."""
        return self._backbone

    def _model_input(self, image: np.ndarray) -> torch.Tensor:
        """[3, S, S] float32, ImageNet-normalised."""
        size = self.image_size
        if self.resample == "bicubic":
            return to_model_input(image, size)
        scaled = TF.to_tensor(image)
        resized = TF.resize(scaled, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        return TF.normalize(resized, list(IMAGENET_MEAN), list(IMAGENET_STD))

    def _features(self, task: str) -> tuple[torch.Tensor, Optional[list[torch.Tensor]]]:
        """The decoder's image embedding [N, C, 64, 64] (no memory: SAM 2's no-memory embedding) and
        high-resolution maps of the images set, for one task."""
        self._require_image()
        cached = self._by_task.get(task)
        if cached is None:
            feats = self.model.frame_features(self._backbone, task)
            embed = self.model.condition_on_memory(task, feats, None, num_frames=1)
            high_res = feats.high_res_maps() if len(feats.vision_feats) > 1 else None
            cached = self._by_task[task] = (embed, high_res)
        return cached

    @property
    def features(self) -> dict:
        """{"image_embed": [N, C, 64, 64], "high_res_feats": [[N, C, 256, 256], [N, C, 128, 128]]}, as SAM 2's."""
        with torch.inference_mode():
            embed, high_res = self._features(self.task)
        return {"image_embed": embed, "high_res_feats": high_res or []}

    @torch.inference_mode()
    def get_image_embedding(self) -> torch.Tensor:
        """The image embedding [N, C, 64, 64] of the image(s) set."""
        return self._features(self.task)[0]

    # ------------------------------------------------------------------ torch level
    def to_model_coords(self, coords: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Pixel coordinates [..., 2] (x, y) of an image of size orig_hw -> the model's input pixels."""
        height, width = orig_hw
        scaled = coords.float().clone()
        scaled[..., 0] = scaled[..., 0] / width
        scaled[..., 1] = scaled[..., 1] / height
        return scaled * self.image_size

    @torch.inference_mode()
    def decode(self, coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
               boxes: Optional[torch.Tensor] = None, mask_input: Optional[torch.Tensor] = None,
               multimask_output: bool = True, img_idx: int = -1) -> ImageDecode:
        """Prompts already in model pixels on image `img_idx`: coords [B, N, 2] with labels [B, N], boxes
        [B, 4], mask_input [B, 1, 256, 256] logits (any may be None) -> every candidate."""
        embed, high_res = self._features(self.task)
        index = range(embed.shape[0])[img_idx]  # raises IndexError for an image that is not set
        one = slice(index, index + 1)
        decoded = decode_image_prompt(
            self.model, self.task, embed[one], None if high_res is None else [x[one] for x in high_res],
            None if coords is None else coords.to(self.device), None if labels is None else labels.to(self.device),
            None if boxes is None else boxes.to(self.device),
            None if mask_input is None else mask_input.to(self.device), multimask_output)
        logits = decoded.low_res_masks.float()
        return ImageDecode(
            low_res_logits=logits.clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT),
            ious=decoded.ious.float(),
            object_scores=decoded.object_score_logits.float(),
            unclamped_logits=logits,
            boxes_norm=decoded.boxes_norm,
        )


def build_image_predictor(model="sam2++", checkpoint=None, device="cpu", task: str = "mask",
                          postprocessing: bool = True, **options) -> ImagePredictorAPI:
    """An image predictor for a model name ("sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large",
    "sam2++", "edgetam") with `checkpoint` as `build_video_predictor` takes it (None: untrained, "hub", a path,
    "seeded[:SEED]", "env"), or over an already built network (shared with video predictors; checkpoint
    and device must then be left out). task: "mask" or "box" (SAM 2++). options: mask_threshold,
    max_hole_area, max_sprinkle_area, resample (SAM 2's networks: "bilinear" as SAM 2's image predictor,
    "bicubic" as its video loader)."""
    if isinstance(model, str):
        return image_predictor_over(build_model(model, checkpoint, device, postprocessing), task, **options)
    if checkpoint is not None:
        raise ValueError("a built network already has its weights: pass checkpoint only with a model name")
    return image_predictor_over(model, task, **options)


def image_predictor_over(net, task: str = "mask", **options) -> ImagePredictorAPI:
    """A new image predictor over a built network: `ImagePredictor` over SAM 2's, `EdgeTamImagePredictor` over
    transformers' EdgeTAM (which resizes as transformers' image processor does: no `resample`)."""
    if isinstance(net, SAM2Model):
        return ImagePredictor(net, task=task, **options)
    from .edgetam import EdgeTamImagePredictor

    if "resample" in options:
        raise ValueError("resample is for SAM 2's networks: EdgeTAM's image predictor resizes as transformers' "
                         "image processor does")
    return EdgeTamImagePredictor(net, task=task, **options)
