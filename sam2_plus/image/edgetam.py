"""SAM 2's image-predictor API over EdgeTAM: the tracker's own transformers `EdgeTamVideoModel` (one network per
model key, sam2_plus/edgetam_network.py) encodes an image with its image processor and vision encoder, and its
prompt encoder and mask decoder turn clicks, a box and / or a low-res mask into every candidate mask, as
transformers' `EdgeTamModel` does on one image (no memory: the no-memory embedding is added).

    images = EdgeTamImagePredictor(build_model("edgetam", "hub"))
    images.set_image(rgb)
    masks, ious, low_res = images.predict(point_coords=[[x, y]], point_labels=[1])

The mask task only (EdgeTAM has no box head)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..edgetam_network import OnEdgeTamNetwork, processor_for
from .api import LOW_RES_LOGIT_LIMIT, ImageDecode, ImagePredictorAPI

EDGETAM_TASKS = ("mask",)


class EdgeTamImagePredictor(OnEdgeTamNetwork, ImagePredictorAPI):
    """`ImagePredictor`'s API (numpy and torch level) over an `EdgeTamVideoModel`, which it may share with
    `EdgeTamPredictor`."""

    def __init__(self, model: torch.nn.Module, task: str = "mask", mask_threshold: float = 0.0,
                 max_hole_area: int = 0, max_sprinkle_area: int = 0) -> None:
        self.model = model
        self.task = task
        self.image_processor = processor_for(model).image_processor
        self._set_postprocessing(mask_threshold, max_hole_area, max_sprinkle_area)
        self.reset_predictor()

    def _check_task(self, task: str) -> None:
        if task not in EDGETAM_TASKS:
            raise ValueError(f"EdgeTAM decodes the task {EDGETAM_TASKS[0]!r} only, not {task!r}")

    @property
    def mask_input_size(self) -> tuple[int, int]:
        return tuple(self.model.prompt_encoder.mask_input_size)

    def _forget_features(self) -> None:
        self._embeddings: Optional[list[torch.Tensor]] = None

    def _encode(self, images: list[np.ndarray]) -> None:
        writable = [np.array(image, copy=True) for image in images]  # the processor wants its own (PIL's are read-only)
        pixels = self.image_processor(images=writable, return_tensors="pt").pixel_values.to(self.device)
        self._embeddings = self.model.get_image_embeddings(pixels)

    @torch.inference_mode()
    def get_image_embedding(self) -> torch.Tensor:
        """The image embedding [N, C, 64, 64] of the image(s) set (with the no-memory embedding)."""
        self._require_image()
        return self._embeddings[-1]

    def to_model_coords(self, coords: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Pixel coordinates [..., 2] (x, y) of an image of size orig_hw -> the model's input pixels, scaled as
        transformers' Sam2Processor scales them."""
        height, width = orig_hw
        scaled = coords.float().clone()
        scaled[..., 0] = scaled[..., 0] * (self.image_size / width)
        scaled[..., 1] = scaled[..., 1] * (self.image_size / height)
        return scaled

    @torch.inference_mode()
    def decode(self, coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
               boxes: Optional[torch.Tensor] = None, mask_input: Optional[torch.Tensor] = None,
               multimask_output: bool = True, img_idx: int = -1) -> ImageDecode:
        """Prompts already in model pixels on image `img_idx`: coords [B, N, 2] with labels [B, N], boxes
        [B, 4], mask_input [B, 1, h, w] logits (any may be None) -> every candidate. Each prompt of the batch is
        one image row of transformers' decoder (its point batch holds one prompt)."""
        self._require_image()
        index = range(self._embeddings[-1].shape[0])[img_idx]  # raises IndexError for an image that is not set
        given = [x for x in (coords, boxes, mask_input) if x is not None]
        count = given[0].shape[0] if given else 1
        image = [level[index:index + 1].expand(count, -1, -1, -1) for level in self._embeddings]
        points, point_labels = self._sparse_points(coords, labels, boxes, count)
        sparse, dense = self.model.prompt_encoder(
            input_points=points, input_labels=point_labels,
            input_boxes=None if boxes is None else boxes.float().to(self.device)[:, None],
            input_masks=None if mask_input is None else mask_input.float().to(self.device))
        positions = self.model.get_image_wide_positional_embeddings().repeat(count, 1, 1, 1)
        masks, ious, _, object_scores = self.model.mask_decoder(
            image_embeddings=image[-1], image_positional_embeddings=positions, sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense, multimask_output=multimask_output, high_resolution_features=image[:-1])
        logits = masks[:, 0].float()
        return ImageDecode(low_res_logits=logits.clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT),
                           ious=ious[:, 0].float(), object_scores=object_scores[:, 0].float(),
                           unclamped_logits=logits)

    def _sparse_points(self, coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
                       boxes: Optional[torch.Tensor], count: int) -> tuple[Optional[torch.Tensor], ...]:
        """Clicks as transformers' decoder takes them ([B, 1, N, 2], labels [B, 1, N]); without clicks or a box,
        one not-a-point (label -1), as `EdgeTamModel.forward` pads a prompt of a mask alone."""
        if coords is not None:
            return coords.float().to(self.device)[:, None], labels.to(self.device)[:, None]
        if boxes is not None:
            return None, None
        return (torch.zeros(count, 1, 1, 2, device=self.device),
                -torch.ones(count, 1, 1, dtype=torch.int32, device=self.device))
