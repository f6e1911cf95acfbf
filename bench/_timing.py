"""Timing helpers shared by the benches; imports nothing of sam2_plus, so a reference worker can use them."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch

COMPONENTS = {
    "encoder": ("image_encoder",),
    "memory_attention": ("memory_attention", "memory_attention_mask", "memory_attention_box",
                         "memory_attention_point"),
    "decoder": ("sam_mask_decoder", "sam_unified_decoder", "sam_prompt_encoder"),
    "memory_encoder": ("memory_encoder", "memory_encoder_mask", "memory_encoder_box", "memory_encoder_point"),
}


class ComponentTimer:
    """Wall time spent inside the top-level forward of each component."""

    def __init__(self, model: torch.nn.Module):
        self.totals = defaultdict(float)
        self._start = {}
        for group, names in COMPONENTS.items():
            for name in names:
                module = getattr(model, name, None)
                if module is not None:
                    module.register_forward_pre_hook(self._pre(group))
                    module.register_forward_hook(self._post(group))

    def _pre(self, group):
        def hook(*_):
            self._sync()
            self._start[group] = time.perf_counter()
        return hook

    def _post(self, group):
        def hook(*_):
            self._sync()
            self.totals[group] += time.perf_counter() - self._start.pop(group)
        return hook

    @staticmethod
    def _sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def reset(self):
        self.totals.clear()


def synthetic_video(num_frames: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    return [np.roll(base, shift=4 * i, axis=1) for i in range(num_frames)]


def object_boxes(num_objects: int, height: int, width: int) -> list[list[int]]:
    """One box per object, side by side across the middle of the frame (x0, y0, x1, y1)."""
    out = []
    for obj in range(num_objects):
        x0 = (obj + 1) * width // (num_objects + 2)
        out.append([x0, height // 4, x0 + width // (num_objects + 2), 3 * height // 4])
    return out
