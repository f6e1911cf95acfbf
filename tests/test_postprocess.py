"""Tests for sam2_plus.postprocess (connected components and mask clean-up).

The reference results come from scipy.ndimage.label with a full 3x3
structuring element (8-connectivity), which is independent of both the OpenCV
CPU path and the CUDA kernel.
"""

import numpy as np
import threading
import time

import pytest
import torch

ndi = pytest.importorskip("scipy.ndimage")

from conftest import needs_cuda  # noqa: E402
from sam2_plus import postprocess as pp  # noqa: E402
from sam2_plus.postprocess import (  # noqa: E402
    connected_components,
    fill_holes_in_mask_scores,
    remove_small_regions,
)

EIGHT = np.ones((3, 3), dtype=int)


def reference_components(image: np.ndarray):
    """(labels, per-pixel areas) of one 2-D binary image, 8-connected."""
    labels, count = ndi.label(image.astype(bool), structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    return labels, sizes[labels], count


def assert_matches_reference(mask: torch.Tensor, labels: torch.Tensor, areas: torch.Tensor):
    assert labels.shape == mask.shape and areas.shape == mask.shape
    assert labels.dtype == torch.int32 and areas.dtype == torch.int32
    masks_np = mask.reshape(-1, *mask.shape[-2:]).cpu().numpy().astype(bool)
    labels_np = labels.reshape(-1, *mask.shape[-2:]).cpu().numpy()
    areas_np = areas.reshape(-1, *mask.shape[-2:]).cpu().numpy()
    for image, lab, area in zip(masks_np, labels_np, areas_np):
        ref_labels, ref_areas, count = reference_components(image)
        np.testing.assert_array_equal(area, ref_areas)
        np.testing.assert_array_equal(lab > 0, image)
        # Same partition: the mapping ours <-> reference is a bijection.
        fg = image
        ours = lab[fg]
        theirs = ref_labels[fg]
        pairs = set(zip(ours.tolist(), theirs.tolist()))
        assert len(pairs) == len(set(ours.tolist())) == count


def reference_fill_holes(scores: np.ndarray, max_area: int, fill_value: float = 0.1):
    out = scores.copy()
    flat = out.reshape(-1, *scores.shape[-2:])
    for plane in flat:
        _, areas, _ = reference_components(plane <= 0)
        hole = (plane <= 0) & (areas <= max_area)
        plane[hole] = fill_value
    return out


# ---------------------------------------------------------------------------
# connected_components
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_masks_match_scipy(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 1 + seed % 3
    h, w = 5 + 7 * seed, 40 - 5 * seed
    density = 0.3 + 0.08 * seed
    mask = torch.rand(n, 1, h, w, generator=gen) < density
    labels, areas = connected_components(mask)
    assert_matches_reference(mask, labels, areas)


def test_uint8_input_and_256_resolution():
    gen = torch.Generator().manual_seed(123)
    mask = (torch.rand(3, 1, 256, 256, generator=gen) < 0.45).to(torch.uint8)
    labels, areas = connected_components(mask)
    assert_matches_reference(mask, labels, areas)


def test_diagonal_pixels_are_connected():
    mask = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    for i in range(5):
        mask[0, 0, i, i] = True  # main diagonal
    mask[0, 0, 0, 4] = True  # anti-diagonal corner touching (1, 3)
    mask[0, 0, 1, 3] = True
    labels, areas = connected_components(mask)
    fg = mask[0, 0]
    assert torch.unique(labels[0, 0][fg]).numel() == 1
    assert (areas[0, 0][fg] == 7).all()
    assert (areas[0, 0][~fg] == 0).all() and (labels[0, 0][~fg] == 0).all()


def test_separate_components_and_edge_cases():
    mask = torch.zeros(4, 1, 6, 7, dtype=torch.bool)
    mask[0, 0, 0:2, 0:2] = True  # 4 pixels
    mask[0, 0, 4:6, 4:7] = True  # 6 pixels, not touching the first
    mask[1] = True  # all foreground
    # mask[2] stays all background
    mask[3, 0, 3, :] = True  # one full row
    labels, areas = connected_components(mask)
    assert_matches_reference(mask, labels, areas)
    assert set(areas[0, 0].unique().tolist()) == {0, 4, 6}
    assert labels[0, 0, 0, 0] != labels[0, 0, 5, 6]
    assert (areas[1] == 42).all()
    assert (areas[2] == 0).all() and (labels[2] == 0).all()
    assert (areas[3, 0, 3] == 7).all()


def test_thin_shapes():
    for shape in [(1, 1, 1, 17), (2, 1, 19, 1), (1, 1, 1, 1)]:
        mask = torch.rand(shape, generator=torch.Generator().manual_seed(5)) < 0.6
        assert_matches_reference(mask, *connected_components(mask))


def test_rejects_wrong_rank():
    with pytest.raises(ValueError):
        connected_components(torch.zeros(4, 4, dtype=torch.bool))


def test_cuda_failure_falls_back_to_cpu(monkeypatch):
    def broken_kernel(mask):
        raise RuntimeError("simulated kernel failure")

    monkeypatch.setattr(pp, "_use_cuda_extension", lambda mask: True)
    monkeypatch.setattr(pp, "_connected_components_cuda", broken_kernel)
    monkeypatch.setattr(pp, "_warned_runtime_failure", False)
    mask = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(9)) < 0.5
    with pytest.warns(RuntimeWarning, match="simulated kernel failure"):
        labels, areas = connected_components(mask)
    assert_matches_reference(mask, labels, areas)


def test_cpu_machine_never_builds_extension():
    if torch.cuda.is_available():
        pytest.skip("only meaningful on machines without CUDA")
    assert pp.cuda_extension_available() is False
    assert pp._use_cuda_extension(torch.zeros(1, 1, 2, 2)) is False


@pytest.fixture
def fresh_build(monkeypatch):
    """A process that has not tried the build yet, on a machine that claims CUDA; `load` must not run."""
    from torch.utils import cpp_extension

    monkeypatch.setattr(pp, "_extension", pp._ExtensionBuild())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(pp.DISABLE_ENV_VAR, raising=False)

    def no_compile(**_):
        raise AssertionError("the extension must not be compiled")

    monkeypatch.setattr(cpp_extension, "load", no_compile)
    return cpp_extension


@pytest.mark.parametrize("missing", ["nvcc", "ninja", "c++"])
def test_missing_tool_chain_falls_back_at_once_with_one_log_line(fresh_build, monkeypatch, caplog, tmp_path, missing):
    cuda_home = tmp_path / "cuda"
    (cuda_home / "bin").mkdir(parents=True)
    if missing != "nvcc":
        (cuda_home / "bin" / "nvcc").write_text("#!/bin/sh\n")
        (cuda_home / "bin" / "nvcc").chmod(0o755)
    monkeypatch.setattr(fresh_build, "CUDA_HOME", str(cuda_home))
    real_which = pp.shutil.which
    monkeypatch.setattr(pp.shutil, "which", lambda name: None if name == missing else real_which(name) or name)
    monkeypatch.setenv("CXX", "c++")
    caplog.set_level("INFO", logger=pp.__name__)
    started = time.perf_counter()
    assert pp.cuda_extension_available() is False  # waits for nothing: there is nothing to build
    assert pp._load_cuda_extension() is None
    assert time.perf_counter() - started < 1.0
    lines = [r.getMessage() for r in caplog.records if r.name == pp.__name__]
    assert len(lines) == 1 and missing in lines[0] and "OpenCV" in lines[0], lines


def test_no_cuda_toolkit_at_all_is_one_log_line(fresh_build, monkeypatch, caplog):
    monkeypatch.setattr(fresh_build, "CUDA_HOME", None)
    caplog.set_level("INFO", logger=pp.__name__)
    for _ in range(3):
        assert pp._load_cuda_extension() is None
    assert [r.getMessage() for r in caplog.records if r.name == pp.__name__] == [
        "CUDA connected components: cannot compile the kernel: nvcc (the CUDA toolkit; set CUDA_HOME) missing; "
        "mask post-processing uses OpenCV on the CPU"]


def test_a_build_in_progress_never_stalls_a_call(fresh_build, monkeypatch):
    monkeypatch.setattr(pp, "missing_build_tools", lambda: [])
    release, built = threading.Event(), object()

    def slow_compile(**_):
        release.wait(10)
        return built

    monkeypatch.setattr(fresh_build, "load", slow_compile)
    started = time.perf_counter()
    assert pp._load_cuda_extension() is None  # compiling: the CPU path serves this call
    assert time.perf_counter() - started < 1.0
    release.set()
    assert pp._load_cuda_extension(wait=True) is built
    assert pp._load_cuda_extension() is built


def test_a_failed_build_is_logged_once_and_not_retried(fresh_build, monkeypatch, caplog):
    monkeypatch.setattr(pp, "missing_build_tools", lambda: [])
    calls = []

    def failing_compile(**_):
        calls.append(1)
        raise RuntimeError("Error building extension\nnvcc fatal: unsupported gpu architecture")

    monkeypatch.setattr(fresh_build, "load", failing_compile)
    caplog.set_level("INFO", logger=pp.__name__)
    assert pp.cuda_extension_available() is False
    assert pp.cuda_extension_available() is False
    assert len(calls) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == pp.__name__]
    assert len(lines) == 1 and "unsupported gpu architecture" in lines[0]


@needs_cuda
def test_cuda_matches_cpu():
    missing = pp.missing_build_tools()
    if missing:
        pytest.skip(f"the CUDA kernel cannot be compiled here: {', '.join(missing)} missing")
    assert pp.cuda_extension_available(), "the tool chain is present but the kernel did not compile (see the log)"
    gen = torch.Generator().manual_seed(77)
    masks = [
        torch.rand(4, 1, 256, 256, generator=gen) < 0.5,
        torch.rand(2, 1, 63, 129, generator=gen) < 0.3,
        torch.ones(1, 1, 256, 256, dtype=torch.bool),
        torch.zeros(1, 1, 31, 17, dtype=torch.bool),
    ]
    spiral = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    spiral[0, 0, ::4, :] = True
    spiral[0, 0, :, ::8] = True
    masks.append(spiral)
    for mask in masks:
        cpu_labels, cpu_areas = pp._connected_components_cpu(mask.to(torch.uint8))
        gpu_labels, gpu_areas = pp._connected_components_cuda(
            mask.to(torch.uint8).cuda().contiguous()
        )
        torch.cuda.synchronize()
        assert gpu_labels.is_cuda and gpu_areas.is_cuda
        assert gpu_labels.dtype == torch.int32 and gpu_areas.dtype == torch.int32
        torch.testing.assert_close(gpu_areas.cpu(), cpu_areas, rtol=0, atol=0)
        assert_matches_reference(mask, gpu_labels.cpu(), gpu_areas.cpu())
        # Public entry point with a CUDA tensor goes through the extension.
        labels, areas = connected_components(mask.cuda())
        assert labels.is_cuda
        torch.testing.assert_close(areas.cpu(), cpu_areas, rtol=0, atol=0)
    scores = torch.randn(3, 1, 256, 256, generator=gen)
    torch.testing.assert_close(
        fill_holes_in_mask_scores(scores.cuda(), 8).cpu(),
        fill_holes_in_mask_scores(scores, 8),
    )


# ---------------------------------------------------------------------------
# fill_holes_in_mask_scores
# ---------------------------------------------------------------------------


def _object_with_square_hole(hole: int, size: int = 16) -> torch.Tensor:
    scores = torch.full((1, 1, size, size), -5.0)
    scores[0, 0, 2:12, 2:12] = 4.0  # 10x10 foreground block
    scores[0, 0, 4 : 4 + hole, 4 : 4 + hole] = -3.0  # hole x hole hole
    return scores


def test_3x3_hole_filled_only_when_max_area_allows():
    scores = _object_with_square_hole(3)
    filled = fill_holes_in_mask_scores(scores, max_area=9)
    hole = torch.zeros_like(scores, dtype=torch.bool)
    hole[0, 0, 4:7, 4:7] = True
    assert (filled[hole] == torch.tensor(0.1)).all()
    assert torch.equal(filled[~hole], scores[~hole])  # includes the outer background

    not_filled = fill_holes_in_mask_scores(scores, max_area=8)
    assert torch.equal(not_filled, scores)


def test_outer_background_only_filled_when_small():
    scores = _object_with_square_hole(2)
    # Outer background has 256 - 100 = 156 pixels: never filled here.
    out = fill_holes_in_mask_scores(scores, max_area=100)
    assert torch.equal(out[0, 0, 0], scores[0, 0, 0])
    assert (out[0, 0, 4:6, 4:6] == torch.tensor(0.1)).all()

    # Tiny image whose whole background is small: it is filled as well.
    tiny = torch.full((1, 1, 3, 3), 2.0)
    tiny[0, 0, 0, 0] = -1.0
    tiny[0, 0, 2, 2] = 0.0  # score exactly 0 is background too
    out = fill_holes_in_mask_scores(tiny, max_area=1)
    assert out[0, 0, 0, 0] == pytest.approx(0.1)
    assert out[0, 0, 2, 2] == pytest.approx(0.1)
    assert (out[tiny > 0] == 2.0).all()


def test_diagonally_touching_holes_form_one_hole():
    scores = torch.full((1, 1, 10, 10), 3.0)
    scores[0, 0, 2:4, 2:4] = -1.0
    scores[0, 0, 4:6, 4:6] = -1.0  # touches the first only at a corner
    assert torch.equal(fill_holes_in_mask_scores(scores, max_area=7), scores)
    out = fill_holes_in_mask_scores(scores, max_area=8)
    assert (out[scores < 0] == torch.tensor(0.1)).all()


def test_fill_holes_random_batch_matches_reference():
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(5, 1, 48, 40, generator=gen)
    scores[1] += 0.8  # mostly foreground -> many holes
    out = fill_holes_in_mask_scores(scores, max_area=8)
    expected = reference_fill_holes(scores.numpy(), 8)
    np.testing.assert_array_equal(out.numpy(), expected)
    # Batched result equals per-mask processing.
    for i in range(scores.shape[0]):
        torch.testing.assert_close(
            fill_holes_in_mask_scores(scores[i : i + 1], max_area=8), out[i : i + 1],
            rtol=0, atol=0,
        )


def test_fill_holes_keeps_dtype_shape_and_custom_value():
    scores = _object_with_square_hole(2).to(torch.bfloat16)
    out = fill_holes_in_mask_scores(scores, max_area=4, fill_value=0.5)
    assert out.dtype == torch.bfloat16 and out.shape == scores.shape
    assert (out[0, 0, 4:6, 4:6] == 0.5).all()
    # 3-D input [N, H, W] is accepted as well.
    out3 = fill_holes_in_mask_scores(scores[:, 0].float(), max_area=4)
    assert out3.shape == (1, 16, 16)
    # Non-positive max_area is a no-op.
    assert fill_holes_in_mask_scores(scores, max_area=0) is scores


# ---------------------------------------------------------------------------
# remove_small_regions
# ---------------------------------------------------------------------------


def test_remove_small_regions_holes_and_sprinkles():
    scores = torch.full((1, 1, 20, 20), -4.0)
    scores[0, 0, 2:12, 2:12] = 5.0  # object (100 px)
    scores[0, 0, 5:7, 5:7] = -2.0  # hole of 4 px
    scores[0, 0, 15:17, 15:16] = 1.0  # sprinkle of 2 px
    scores[0, 0, 15:18, 2:6] = 1.5  # larger blob of 12 px
    out = remove_small_regions(scores, max_hole_area=4, max_sprinkle_area=2)

    hole = torch.zeros_like(scores, dtype=torch.bool)
    hole[0, 0, 5:7, 5:7] = True
    sprinkle = torch.zeros_like(scores, dtype=torch.bool)
    sprinkle[0, 0, 15:17, 15:16] = True
    assert (out[hole] == 10.0).all()
    assert (out[sprinkle] == -10.0).all()
    untouched = ~(hole | sprinkle)
    assert torch.equal(out[untouched], scores[untouched])

    # Limits just below the region sizes change nothing.
    assert torch.equal(remove_small_regions(scores, 3, 1), scores)
    # Each step can be disabled separately.
    only_holes = remove_small_regions(scores, 4, 0)
    assert (only_holes[hole] == 10.0).all() and torch.equal(only_holes[sprinkle], scores[sprinkle])
    only_sprinkles = remove_small_regions(scores, 0, 2)
    assert (only_sprinkles[sprinkle] == -10.0).all() and torch.equal(
        only_sprinkles[hole], scores[hole]
    )


def test_remove_small_regions_threshold_and_batch():
    gen = torch.Generator().manual_seed(11)
    scores = torch.randn(2, 3, 32, 32, generator=gen)  # [B, C, H, W]
    threshold = 0.3
    out = remove_small_regions(scores, max_hole_area=6, max_sprinkle_area=5, threshold=threshold)
    assert out.shape == scores.shape
    expected = scores.numpy().copy()
    for b in range(2):
        for c in range(3):
            plane = scores[b, c].numpy()
            _, hole_areas, _ = reference_components(plane <= threshold)
            _, fg_areas, _ = reference_components(plane > threshold)
            holes = (plane <= threshold) & (hole_areas <= 6)
            sprinkles = (plane > threshold) & (fg_areas <= 5)
            expected[b, c][holes] = threshold + 10.0
            expected[b, c][sprinkles] = threshold - 10.0
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-6)
