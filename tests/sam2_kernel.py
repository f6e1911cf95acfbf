"""A CPU stand-in for SAM 2's CUDA connected-components kernel (`sam2.utils.misc.get_connected_components`,
absent from a CPU install of `sam2`, which then skips small-region removal with a warning), so that the oracle
runs that step in tests/test_mask_ops.py and tests/test_automatic_masks.py."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def labelled_like_sam2_kernel(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """8-connected labels of [N, 1, H, W] and each foreground pixel's component area."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    areas = np.zeros(mask.shape, dtype=np.int32)
    for i, image in enumerate(mask[:, 0].numpy().astype(bool)):
        lab, _ = ndimage.label(image, structure=np.ones((3, 3)))
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        labels[i, 0], areas[i, 0] = lab, sizes[lab]
    return torch.from_numpy(labels), torch.from_numpy(areas)
