"""The automatic generator's array steps (sam2_plus/image/mask_ops.py) against SAM 2's own utilities on
constructed data. SAM 2's package is a test-only oracle here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from sam2_kernel import labelled_like_sam2_kernel
from sam2_plus.image import mask_ops
from sam2_plus.postprocess import remove_small_regions

amg = pytest.importorskip("sam2.utils.amg")


def _blob_masks(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Masks made of a few random rectangles each, some empty, some touching the borders."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, height, width), dtype=bool)
    for mask in masks[1:]:  # the first stays empty
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            mask[y0:y0 + rng.integers(1, height), x0:x0 + rng.integers(1, width)] = True
    masks[-1] = True
    return torch.from_numpy(masks)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 32, 33, 64])
def test_point_grid_equals_sam2(n):
    assert np.array_equal(mask_ops.point_grid(n), amg.build_point_grid(n))


@pytest.mark.parametrize("n, layers, downscale", [(32, 0, 1), (32, 2, 2), (17, 3, 2), (8, 1, 3)])
def test_layer_grids_equal_sam2(n, layers, downscale):
    ours = mask_ops.layer_point_grids(n, layers, downscale)
    theirs = amg.build_all_layer_point_grids(n, layers, downscale)
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("hw", [(720, 1280), (1280, 720), (333, 501), (64, 64), (1, 9)])
@pytest.mark.parametrize("layers, overlap", [(0, 512 / 1500), (1, 512 / 1500), (2, 0.25), (3, 0.0)])
def test_crop_boxes_equal_sam2(hw, layers, overlap):
    boxes, layer_of = mask_ops.crop_boxes(hw, layers, overlap)
    their_boxes, their_layers = amg.generate_crop_boxes(hw, layers, overlap)
    assert [list(b) for b in boxes] == their_boxes and layer_of == their_layers
    assert len(boxes) == sum(4**i for i in range(layers + 1))


@pytest.mark.parametrize("threshold, offset", [(0.0, 1.0), (0.5, 0.25), (-1.0, 2.0)])
def test_stability_scores_equal_sam2(threshold, offset):
    logits = torch.randn(12, 90, 130, generator=torch.Generator().manual_seed(3)) * 4
    logits[0] = -10  # nothing above either cut-off: 0 / 0
    ours = mask_ops.stability_scores(logits, threshold, offset)
    theirs = amg.calculate_stability_score(logits, threshold, offset)
    assert ours.dtype == theirs.dtype == torch.float32
    assert torch.equal(ours[1:], theirs[1:]) and ours[0].isnan() and theirs[0].isnan()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_boxes_equal_sam2(seed):
    masks = _blob_masks(20, 47, 83, seed)
    ours = mask_ops.mask_boxes(masks)
    theirs = amg.batched_mask_to_box(masks)
    assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    assert ours[0].tolist() == [0, 0, 0, 0] and ours[-1].tolist() == [0, 0, 82, 46]


def test_crop_edge_filter_and_shifts_equal_sam2():
    rng = np.random.default_rng(5)
    image_hw = (720, 1280)
    boxes, _ = mask_ops.crop_boxes(image_hw, 2, 512 / 1500)
    for crop in boxes:
        w, h = crop[2] - crop[0], crop[3] - crop[1]
        xy0 = rng.integers(0, [w, h], size=(200, 2))
        xy1 = np.minimum(xy0 + rng.integers(0, 60, size=(200, 2)), [w - 1, h - 1])
        b = torch.from_numpy(np.concatenate([xy0, xy1], 1)).long()
        full = [0, 0, image_hw[1], image_hw[0]]
        assert torch.equal(mask_ops.near_crop_edge(b, crop, image_hw), amg.is_box_near_crop_edge(b, list(crop), full))
        assert torch.equal(mask_ops.shift_boxes(b, crop), amg.uncrop_boxes_xyxy(b, list(crop)))
        points = torch.from_numpy(rng.uniform(0, 100, size=(10, 2))).float()
        assert torch.equal(mask_ops.shift_points(points, crop), amg.uncrop_points(points, list(crop)))
    # both kinds of verdict occur
    crop = boxes[-1]
    edge = torch.tensor([[0, 5, 30, 30], [100, 100, 120, 120]])
    assert mask_ops.near_crop_edge(edge, crop, image_hw).tolist() == [True, False]


@pytest.mark.parametrize("seed", [0, 1])
def test_output_encodings_equal_sam2(seed):
    masks = _blob_masks(9, 37, 53, seed)
    rles = amg.mask_to_rle_pytorch(masks)
    as_numpy = masks.numpy()
    assert mask_ops.encode_masks(as_numpy, "uncompressed_rle") == rles
    assert mask_ops.encode_masks(as_numpy, "coco_rle") == [amg.coco_encode_rle(r) for r in rles]
    binary = mask_ops.encode_masks(as_numpy, "binary_mask")
    assert all(np.array_equal(m, amg.rle_to_mask(r)) for m, r in zip(binary, rles))
    assert [int(m.sum()) for m in binary] == [amg.area_from_rle(r) for r in rles]


def test_small_region_removal_equals_sam2_image_transforms(monkeypatch):
    """SAM 2's image predictor (built with max_hole_area = max_sprinkle_area = the generator's
    min_mask_region_area) fills holes and removes islands on the 256x256 logits before upscaling; its CUDA
    kernel is replaced by scipy's labelling here, since a CPU install skips the step with a warning."""
    misc = pytest.importorskip("sam2.utils.misc")
    transforms = pytest.importorskip("sam2.utils.transforms")
    monkeypatch.setattr(misc, "get_connected_components", labelled_like_sam2_kernel)
    noise = torch.randn(6, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    logits = ndimage.uniform_filter(noise.numpy(), size=(1, 1, 3, 3)) * 20
    logits = torch.from_numpy(logits)
    for area in (3, 25, 200):
        sam2_transforms = transforms.SAM2Transforms(1024, 0.0, max_hole_area=area, max_sprinkle_area=area)
        theirs = sam2_transforms.postprocess_masks(logits, (100, 150))
        cleaned = remove_small_regions(logits, area, area, 0.0)
        assert not torch.equal(cleaned, logits)
        ours = torch.nn.functional.interpolate(cleaned, (100, 150), mode="bilinear", align_corners=False)
        assert torch.equal(ours, theirs)
