"""SAM 2's numpy image-predictor API (`set_image`, `predict`, ...), shared by the image predictors over SAM 2's
network (predictor.py) and over EdgeTAM's (edgetam.py): inputs checked once here (inputs.py), prompts handed to
the subclass's torch-level `decode` in model pixels, its low-res logits upscaled to the image's size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..postprocess import remove_small_regions
from .inputs import check_image, check_image_list, prompt_tensors

LOW_RES_LOGIT_LIMIT = 32.0  # low-res logits handed back are clamped to +-32, as SAM 2's


@dataclass
class ImageDecode:
    """Every candidate mask of a batch of prompts on one image (M = 3 with multimask output, else 1)."""

    low_res_logits: torch.Tensor  # [B, M, 256, 256], clamped to +-LOW_RES_LOGIT_LIMIT
    ious: torch.Tensor  # [B, M] predicted IoUs
    object_scores: torch.Tensor  # [B, 1] object-score logits (nothing is gated by them here)
    unclamped_logits: torch.Tensor  # [B, M, 256, 256]: what SAM 2 upscales to the image's size
    boxes_norm: Optional[torch.Tensor] = None  # [B, M, 4] normalised xyxy (SAM 2++'s box task)


class ImagePredictorAPI:
    """The numpy API over a subclass's `_encode(images)`, `_forget_features()`, `to_model_coords`, `decode`,
    `device`, `image_size`, `mask_input_size` and `_check_task(task)`; the subclass sets the post-processing
    (`_set_postprocessing`)."""

    mask_threshold: float
    max_hole_area: int
    max_sprinkle_area: int

    def _set_postprocessing(self, mask_threshold: float, max_hole_area: int, max_sprinkle_area: int) -> None:
        """SAM 2's mask threshold and the small holes and sprinkles removed from the masks handed out."""
        self.mask_threshold = float(mask_threshold)
        self.max_hole_area = int(max_hole_area)
        self.max_sprinkle_area = int(max_sprinkle_area)

    # ------------------------------------------------------------------ state
    @property
    def task(self) -> str:
        """The task decoded with; it may change between predictions (the image stays encoded)."""
        return self._task

    @task.setter
    def task(self, task: str) -> None:
        self._check_task(task)
        self._task = task

    def _check_task(self, task: str) -> None:
        """ValueError when the network cannot decode `task` on an image."""
        raise NotImplementedError

    @property
    def is_image_set(self) -> bool:
        return self._orig_hw is not None

    @property
    def is_batch(self) -> bool:
        return self._is_batch

    @property
    def orig_hw(self) -> Optional[list[tuple[int, int]]]:
        """(height, width) of each image set, in order; None before an image is set."""
        return None if self._orig_hw is None else list(self._orig_hw)

    def reset_predictor(self) -> None:
        """Forget the image(s) and their features."""
        self._forget_features()
        self._orig_hw: Optional[list[tuple[int, int]]] = None
        self._is_batch = False

    def _require_image(self) -> None:
        if self._orig_hw is None:
            raise RuntimeError("no image is set: call set_image(...) (or set_image_batch) before predicting")

    # ------------------------------------------------------------------ images
    @torch.inference_mode()
    def set_image(self, image) -> None:
        """Encode one HxWx3 uint8 RGB image (or a PIL image) for `predict`."""
        image = check_image(image)
        self.reset_predictor()
        self._encode([image])
        self._orig_hw = [(int(image.shape[0]), int(image.shape[1]))]

    @torch.inference_mode()
    def set_image_batch(self, images: Sequence[np.ndarray]) -> None:
        """Encode a list of HxWx3 uint8 RGB images together for `predict_batch`."""
        images = check_image_list(images)
        self.reset_predictor()
        self._encode(images)
        self._orig_hw = [(int(image.shape[0]), int(image.shape[1])) for image in images]
        self._is_batch = True

    # ------------------------------------------------------------------ torch level
    def upscale(self, low_res_logits: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Low-res logits [B, M, h, w] -> logits [B, M, H, W] at the image's size (small holes and sprinkles
        removed first when the predictor was asked to)."""
        logits = low_res_logits.float()
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            logits = remove_small_regions(logits, self.max_hole_area, self.max_sprinkle_area, self.mask_threshold)
        return F.interpolate(logits, tuple(orig_hw), mode="bilinear", align_corners=False)

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
                                 mask_size=tuple(self.mask_input_size))

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
