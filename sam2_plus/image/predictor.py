"""SAM 2's image predictor over this project's network: `set_image` encodes an image once, `predict` turns
clicks, a box and / or a low-res mask into candidate masks with their predicted IoU, as numpy arrays.

Under the numpy API sits a torch-level step in the model's input space (`ImagePredictor.decode`,
`to_model_coords`, `upscale`), which the automatic mask generator batches over; and under that
`decode_image_prompt`, the prompt step that the video engine's tracker runs on a frame too (before its own
presence gating, choice and memory).

SAM 2++ has three tasks; an image predictor decodes with one of them, its `task` ("mask", the default, or
"box": the box head's boxes come with the masks in `ImageDecode.boxes_norm`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from ..media.decode import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from ..modeling.sam2_model import Decoded, PointPrompt, SAM2Model
from ..network import build_model
from ..postprocess import remove_small_regions
from .inputs import check_image, check_image_list, prompt_tensors

LOW_RES_LOGIT_LIMIT = 32.0  # low-res logits handed back are clamped to +-32, as SAM 2's
RESAMPLING = ("bilinear", "bicubic")
IMAGE_TASKS = ("mask", "box")


@dataclass
class ImageDecode:
    """Every candidate mask of a batch of prompts on one image (M = 3 with multimask output, else 1)."""

    low_res_logits: torch.Tensor  # [B, M, 256, 256], clamped to +-LOW_RES_LOGIT_LIMIT
    ious: torch.Tensor  # [B, M] predicted IoUs
    object_scores: torch.Tensor  # [B, 1] object-score logits (nothing is gated by them here)
    unclamped_logits: torch.Tensor  # [B, M, 256, 256]: what SAM 2 upscales to the image's size
    boxes_norm: Optional[torch.Tensor] = None  # [B, M, 4] normalised xyxy (SAM 2++'s box task)


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


class ImagePredictor:
    """SAM 2's `SAM2ImagePredictor` API over a `SAM2Model` (which it may share with video predictors).

    resample: "bilinear" resizes images to the model's input as SAM 2's image predictor does; "bicubic" as
    its video loader does (what this project's video predictor sees on a frame)."""

    def __init__(self, model: SAM2Model, task: str = "mask", mask_threshold: float = 0.0, max_hole_area: int = 0,
                 max_sprinkle_area: int = 0, resample: str = "bilinear") -> None:
        if resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {list(RESAMPLING)}, got {resample!r}")
        self.model = model
        self.task = task
        self.mask_threshold = float(mask_threshold)
        self.max_hole_area = int(max_hole_area)
        self.max_sprinkle_area = int(max_sprinkle_area)
        self.resample = resample
        self.reset_predictor()

    # ------------------------------------------------------------------ state
    @property
    def task(self) -> str:
        """The task decoded with; it may change between predictions (the image stays encoded)."""
        return self._task

    @task.setter
    def task(self, task: str) -> None:
        self.model.check_task(task)
        if task not in IMAGE_TASKS:
            raise ValueError(f"the image predictor decodes the tasks {list(IMAGE_TASKS)}, not {task!r}: the point "
                             "task's output on a prompted frame is the click's Gaussian heatmap, not a decoded mask")
        self._task = task

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def is_image_set(self) -> bool:
        return self._backbone is not None

    @property
    def is_batch(self) -> bool:
        return self._is_batch

    @property
    def orig_hw(self) -> Optional[list[tuple[int, int]]]:
        """(height, width) of each image set, in order; None before an image is set."""
        return None if self._orig_hw is None else list(self._orig_hw)

    def reset_predictor(self) -> None:
        """Forget the image(s) and their features."""
        self._backbone: Optional[dict] = None
        self._by_task: dict[str, tuple[torch.Tensor, Optional[list[torch.Tensor]]]] = {}
        self._orig_hw: Optional[list[tuple[int, int]]] = None
        self._is_batch = False

    # ------------------------------------------------------------------ images
    @torch.inference_mode()
    def set_image(self, image) -> None:
        """Encode one HxWx3 uint8 RGB image (or a PIL image) for `predict`."""
        image = check_image(image)
        self.reset_predictor()
        self._encode([image])

    @torch.inference_mode()
    def set_image_batch(self, images: Sequence[np.ndarray]) -> None:
        """Encode a list of HxWx3 uint8 RGB images together for `predict_batch`."""
        images = check_image_list(images)
        self.reset_predictor()
        self._encode(images)
        self._is_batch = True

    def _encode(self, images: list[np.ndarray]) -> None:
        batch = torch.stack([self._model_input(image) for image in images]).to(self.device)
        self._backbone = self.model.encode_image(batch)
        self._orig_hw = [(int(image.shape[0]), int(image.shape[1])) for image in images]

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

    def _require_image(self) -> None:
        if self._backbone is None:
            raise RuntimeError("no image is set: call set_image(...) (or set_image_batch) before predicting")

    # ------------------------------------------------------------------ torch level
    def to_model_coords(self, coords: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Pixel coordinates [..., 2] (x, y) of an image of size orig_hw -> the model's input pixels."""
        height, width = orig_hw
        scaled = coords.float().clone()
        scaled[..., 0] = scaled[..., 0] / width
        scaled[..., 1] = scaled[..., 1] / height
        return scaled * self.image_size

    def upscale(self, low_res_logits: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Low-res logits [B, M, h, w] -> logits [B, M, H, W] at the image's size (small holes and sprinkles
        removed first when the predictor was asked to)."""
        logits = low_res_logits.float()
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            logits = remove_small_regions(logits, self.max_hole_area, self.max_sprinkle_area, self.mask_threshold)
        return F.interpolate(logits, tuple(orig_hw), mode="bilinear", align_corners=False)

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

    # ------------------------------------------------------------------ numpy API
    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output: bool = True,
                return_logits: bool = False, normalize_coords: bool = True):
        """Masks of the image set: `(masks [M, H, W], iou_predictions [M], low_res_logits [M, 256, 256])`, or with
        a batch of B prompts (boxes [B, 4], clicks [B, N, 2]) each with a leading B. Clicks are (x, y) pixels
        with labels 1 (positive) / 0 (negative); box [x0, y0, x1, y1]; mask_input the low-res logits of an
        earlier call [1, 256, 256]. normalize_coords False: coordinates are already relative (0 to 1)."""
        self._require_image()
        return self._predict(point_coords, point_labels, box, mask_input, multimask_output, return_logits,
                             normalize_coords, img_idx=-1)

    def predict_batch(self, point_coords_batch=None, point_labels_batch=None, box_batch=None, mask_input_batch=None,
                      multimask_output: bool = True, return_logits: bool = False, normalize_coords: bool = True):
        """`predict` for each image of `set_image_batch`: lists (one entry per image, None for none) in, lists of
        masks, IoU predictions and low-res logits out."""
        self._require_image()
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with set_image_batch(...); use predict after set_image")
        count = len(self._orig_hw)
        given = {"point_coords_batch": point_coords_batch, "point_labels_batch": point_labels_batch,
                 "box_batch": box_batch, "mask_input_batch": mask_input_batch}
        for name, value in given.items():
            if value is not None and len(value) != count:
                raise ValueError(f"{name} has {len(value)} entries for {count} images")
        outputs = [
            self._predict(*(None if v is None else v[i] for v in given.values()), multimask_output, return_logits,
                          normalize_coords, img_idx=i)
            for i in range(count)
        ]
        return tuple(list(column) for column in zip(*outputs))

    @torch.inference_mode()
    def _predict(self, point_coords, point_labels, box, mask_input, multimask_output: bool, return_logits: bool,
                 normalize_coords: bool, img_idx: int):
        orig_hw = self._orig_hw[img_idx]
        limits = (float(orig_hw[1]), float(orig_hw[0])) if normalize_coords else (1.0, 1.0)
        prompts = prompt_tensors(point_coords, point_labels, box, mask_input, limits=limits, device=self.device,
                                 mask_size=tuple(self.model.sam_prompt_encoder.mask_input_size))

        def model_coords(xy: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            if xy is None:
                return None
            return self.to_model_coords(xy, orig_hw) if normalize_coords else xy * self.image_size

        boxes = model_coords(None if prompts.boxes is None else prompts.boxes.reshape(-1, 2, 2))
        out = self.decode(model_coords(prompts.coords), prompts.labels, None if boxes is None else boxes.reshape(-1, 4),
                          prompts.mask_input, multimask_output, img_idx)
        masks = self.upscale(out.unclamped_logits, orig_hw)
        if not return_logits:
            masks = (masks > self.mask_threshold).float()
        return tuple(x.squeeze(0).float().cpu().numpy() for x in (masks, out.ious, out.low_res_logits))


def build_image_predictor(model="sam2++", checkpoint=None, device="cpu", task: str = "mask",
                          postprocessing: bool = True, **options) -> ImagePredictor:
    """An image predictor for a model name ("sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large",
    "sam2++") with `checkpoint` as `build_video_predictor` takes it (None: untrained, "hub", a path,
    "seeded[:SEED]", "env"), or over an already built `SAM2Model` (shared with video predictors; checkpoint
    and device must then be left out). task: "mask" or "box" (SAM 2++). options: mask_threshold,
    max_hole_area, max_sprinkle_area, resample ("bilinear" as SAM 2's image predictor, "bicubic" as its
    video loader)."""
    if isinstance(model, SAM2Model):
        if checkpoint is not None:
            raise ValueError("a built network already has its weights: pass checkpoint only with a model name")
        net = model
    else:
        net = build_model(model, checkpoint, device, postprocessing)
    return ImagePredictor(net, task=task, **options)
