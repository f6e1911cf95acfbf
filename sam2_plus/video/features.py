"""Frames to image features for the predictor: each session's `FeatureCache` keeps the features of the frame
visited last (repeated prompts on a frame reuse them), and a `FrameEncoder` (one per predictor) fills it,
preparing the next frames' model inputs on a helper thread while the model works (`prefetch`)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..media.decode import normalize_for_model, resize_for_model
from ..modeling.sam2_model import FrameFeatures, SAM2Model


@dataclass
class FeatureCache:
    """One session's image features of the most recently visited frame, and its frames being prepared."""

    frames: Any  # indexable: frames[i] -> HxWx3 uint8 RGB
    frame_idx: Optional[int] = None
    backbone: Optional[dict] = None  # the image encoder's output, shared by all tasks
    by_task: dict[str, FrameFeatures] = field(default_factory=dict)
    # the frame visited before it, (index, backbone): on a GPU a frame's result is handed out once the next frame
    # is tracked, and prompts or discovery on it then still find its features
    previous: Optional[tuple[int, dict]] = None
    # frame index -> Future of its model input, prepared on a helper thread while the model works
    prefetched: dict[int, Future] = field(default_factory=dict)

    def adopt(self, frame_idx: int, backbone: dict) -> None:
        """Take a frame's image-encoder output computed elsewhere (the same model on the same frame), so that
        prompts on that frame skip the image encoder."""
        self.visit(int(frame_idx), backbone)

    def visit(self, frame_idx: int, backbone: dict) -> None:
        """Make `frame_idx` the current frame (with its encoder output); the current one becomes the previous."""
        if self.frame_idx is not None and self.frame_idx != frame_idx:
            self.previous = (self.frame_idx, self.backbone)
        self.frame_idx, self.backbone, self.by_task = frame_idx, backbone, {}

    def known_backbone(self, frame_idx: int) -> Optional[dict]:
        """The encoder output of the current or the previous frame, else None."""
        if self.frame_idx == frame_idx:
            return self.backbone
        if self.previous is not None and self.previous[0] == frame_idx:
            return self.previous[1]
        return None


class FrameEncoder:
    """Runs a model's image encoder on the frames of sessions (their `FeatureCache`)."""

    def __init__(self, model: SAM2Model) -> None:
        self.model = model
        self._prefetcher: Optional[ThreadPoolExecutor] = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    def features(self, cache: FeatureCache, frame_idx: int, task: str) -> FrameFeatures:
        """A frame's decoder-ready features for one task."""
        if cache.frame_idx != frame_idx:
            backbone = self.backbone(cache, frame_idx)
            if cache.frame_idx != frame_idx:  # it was the previous frame's
                cache.visit(frame_idx, backbone)
        feats = cache.by_task.get(task)
        if feats is None:
            feats = self.model.frame_features(cache.backbone, task)
            cache.by_task[task] = feats
        return feats

    def backbone(self, cache: FeatureCache, frame_idx: int) -> dict:
        """A frame's image-encoder output: the cache's when it holds the frame, else computed (and then held as the
        current frame's)."""
        known = cache.known_backbone(frame_idx)
        if known is None:
            known = self.model.encode_image(self.model_input(cache, frame_idx))
            cache.visit(frame_idx, known)
        return known

    def model_input(self, cache: FeatureCache, frame_idx: int) -> torch.Tensor:
        """[1, 3, S, S] normalised image (bicubic resize like PIL, ImageNet mean/std) on the model's device."""
        prefetched = cache.prefetched.pop(frame_idx, None)
        image = self.host_input(cache, frame_idx) if prefetched is None else prefetched.result()
        # from pinned memory (on CUDA) the upload runs asynchronously: the host goes on preparing work
        return normalize_for_model(image.to(self.device, non_blocking=self.device.type == "cuda"))

    def host_input(self, cache: FeatureCache, frame_idx: int) -> torch.Tensor:
        """Decode and resize a frame on the host (uint8 [1, 3, S, S]); pinned when it goes to a GPU, which then
        normalises it (a quarter of the bytes of float32 to upload, and the arithmetic off the host)."""
        image = resize_for_model(cache.frames[frame_idx], self.model.image_size).unsqueeze(0)
        return image.pin_memory() if self.device.type == "cuda" else image

    def prefetch(self, cache: FeatureCache, frame_idx: int, keep: int = 2) -> None:
        """Start preparing a frame's model input on a helper thread (see `VideoPredictor._pipelined`). At most
        `keep` frames wait; older ones (frames that needed no input, e.g. all objects prompted there) go."""
        if frame_idx in cache.prefetched:
            return
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2plus-prefetch")
        cache.prefetched[frame_idx] = self._prefetcher.submit(self.host_input, cache, frame_idx)
        while len(cache.prefetched) > keep:
            cache.prefetched.pop(next(iter(cache.prefetched)))
