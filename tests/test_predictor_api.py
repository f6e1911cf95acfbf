"""Behaviour of the predictor API: prompts, errors, multi-object sessions, corrections, and the places
where SAM 2's reference predictor breaks (reverse tracking without object pointers, remove_object,
clear_non_cond_mem_around_input)."""

import numpy as np
import pytest
import torch

from conftest import needs_cuda
from micro_model import MICRO
from sam2_plus import PromptError, UnknownObjectError, build_video_predictor

H, W, T = 48, 64, 5


def _video(num_frames=T):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    return [np.roll(base, shift=2 * i, axis=1) for i in range(num_frames)]


@pytest.fixture(scope="module")
def pred():
    return build_video_predictor(MICRO, checkpoint="seeded:0", device="cpu", postprocessing=False)


@pytest.fixture(scope="module")
def plus():
    # untrained weights: only argument checking is exercised, which runs before any forward pass
    return build_video_predictor(MICRO, checkpoint=None, device="cpu", task="point", postprocessing=False)


def test_result_shapes_and_types(pred):
    s = pred.init_state(_video())
    out = pred.add_new_points_or_box(s, 0, 1, points=[[10, 20]], labels=[1])
    assert out.frame_idx == 0 and out.obj_ids == [1]
    assert out.mask_logits.shape == (1, H, W) and out.mask_logits.dtype == torch.float32
    assert out.object_scores.shape == (1,)
    assert out.boxes.shape == (1, 4) and out.points.shape == (1, 2)
    assert out.masks.dtype == torch.bool


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points=[[W + 5, 10]], labels=[1]), "outside"),
        (dict(points=[[-1, 10]], labels=[1]), "outside"),
        (dict(points=[[1, 2], [3, 4]], labels=[1]), "2 points but 1 labels"),
        (dict(points=[[1, 2]], labels=[7]), "labels must be 1"),
        (dict(points=[[1, 2, 3]], labels=[1]), "shape"),
        (dict(box=[0, 0, W + 10, 5]), "outside"),
        (dict(box=[0, 0, 5]), "4 numbers"),
        (dict(points=[[float("nan"), 1]], labels=[1]), "finite"),
        (dict(), "points or a box"),
    ],
)
def test_bad_prompts_raise_clear_errors(pred, kwargs, message):
    s = pred.init_state(_video(2))
    with pytest.raises(PromptError, match=message):
        pred.add_new_points_or_box(s, 0, 1, **kwargs)
    assert s.obj_ids == []  # a rejected first prompt leaves no empty object behind


def test_bad_frame_and_object_ids(pred):
    s = pred.init_state(_video(2))
    with pytest.raises(PromptError, match="outside the video"):
        pred.add_new_points_or_box(s, 5, 1, points=[[1, 1]], labels=[1])
    with pytest.raises(PromptError, match="integer"):
        pred.add_new_points_or_box(s, 0, "one", points=[[1, 1]], labels=[1])
    with pytest.raises(UnknownObjectError, match="unknown object id 3"):
        pred.remove_object(s, 3)
    with pytest.raises(UnknownObjectError, match="unknown object id 3"):
        pred.clear_all_prompts_in_frame(s, 0, 3)
    with pytest.raises(RuntimeError, match="no object has a prompt"):
        next(pred.propagate_in_video(s))


def test_bad_masks(pred):
    s = pred.init_state(_video(2))
    with pytest.raises(PromptError, match="empty"):
        pred.add_new_mask(s, 0, 1, np.zeros((H, W), bool))
    with pytest.raises(PromptError, match="differs from the video"):
        pred.add_new_mask(s, 0, 1, np.ones((H + 1, W), bool))
    with pytest.raises(PromptError, match="2-D"):
        pred.add_new_mask(s, 0, 1, np.ones((2, H, W), bool))


def test_tasks_the_model_or_task_cannot_take(pred, plus):
    with pytest.raises(ValueError, match="no task 'box'"):
        build_video_predictor("sam2.1-tiny", task="box")
    with pytest.raises(ValueError, match="unknown model"):
        build_video_predictor("sam3")
    s = plus.init_state(_video(2))
    with pytest.raises(PromptError, match="exactly one positive point"):
        plus.add_new_points_or_box(s, 0, 1, points=[[1, 1], [2, 2]], labels=[1, 1])
    with pytest.raises(PromptError, match="not a box"):
        plus.add_new_points_or_box(s, 0, 1, box=[1, 1, 5, 5])
    with pytest.raises(PromptError, match="not a mask"):
        plus.add_new_mask(s, 0, 1, np.ones((H, W), bool))
    with pytest.raises(PromptError, match="needs a box"):
        plus.add_new_points_or_box(s, 0, 2, points=[[1, 1]], labels=[1], task="box")
    assert s.obj_ids == []


def test_reverse_tracking_from_after_the_only_prompt(pred):
    # The frame right after the prompt, tracked in reverse, sees the prompt's spatial memory but no
    # object pointer (only pointers "in the past" count): the reference crashes there in float32.
    s = pred.init_state(_video())
    pred.add_new_points_or_box(s, 2, 1, points=[[30, 20]], labels=[1])
    frames = [r.frame_idx for r in pred.propagate_in_video(s, start_frame_idx=4, reverse=True)]
    assert frames == [4, 3, 2, 1, 0]
    last = pred.add_new_points_or_box(s, 0, 1, points=[[5, 5]], labels=[1])
    assert torch.isfinite(last.mask_logits).all()


def test_multi_object_remove_and_late_objects(pred):
    s = pred.init_state(_video())
    pred.add_new_points_or_box(s, 0, 1, points=[[10, 10]], labels=[1])
    pred.add_new_points_or_box(s, 0, 2, box=[30, 10, 60, 40])
    first = list(pred.propagate_in_video(s, max_frame_num_to_track=2))
    assert [r.frame_idx for r in first] == [0, 1, 2] and all(r.obj_ids == [1, 2] for r in first)
    # an object added after tracking started, on a middle frame, tracked both ways
    pred.add_new_points_or_box(s, 3, 7, points=[[40, 30]], labels=[1])
    fwd = list(pred.propagate_in_video(s, start_frame_idx=3))
    rev = list(pred.propagate_in_video(s, start_frame_idx=3, reverse=True))
    assert [r.frame_idx for r in fwd] == [3, 4] and [r.frame_idx for r in rev] == [3, 2, 1, 0]
    assert fwd[0].obj_ids == [1, 2, 7]
    remaining, updated = pred.remove_object(s, 2)
    assert remaining == [1, 7] and [u.frame_idx for u in updated] == [0]
    assert updated[0].obj_ids == [1, 7]
    after = list(pred.propagate_in_video(s, start_frame_idx=3, max_frame_num_to_track=1))
    assert all(r.obj_ids == [1, 7] and r.mask_logits.shape[0] == 2 for r in after)
    pred.reset_state(s)
    assert s.obj_ids == []


def test_correction_click_is_kept_as_conditioning_frame():
    pred = build_video_predictor(MICRO, checkpoint="seeded:0", device="cpu", postprocessing=False,
                                 add_all_frames_to_correct_as_cond=True)
    s = pred.init_state(_video(4))
    pred.add_new_points_or_box(s, 0, 1, points=[[10, 10]], labels=[1])
    list(pred.propagate_in_video(s))
    corrected = pred.add_new_points_or_box(s, 2, 1, points=[[50, 40]], labels=[0])
    rerun = {r.frame_idx: r for r in pred.propagate_in_video(s)}
    assert 2 in s.objects[1].cond_outputs
    torch.testing.assert_close(rerun[2].mask_logits, corrected.mask_logits)


def test_correction_without_cond_option_is_overwritten_like_sam2(pred):
    s = pred.init_state(_video(4))
    pred.add_new_points_or_box(s, 0, 1, points=[[10, 10]], labels=[1])
    before = {r.frame_idx: r.mask_logits for r in pred.propagate_in_video(s)}
    corrected = pred.add_new_points_or_box(s, 2, 1, points=[[50, 40]], labels=[0])
    assert not torch.equal(corrected.mask_logits, before[2])
    rerun = {r.frame_idx: r.mask_logits for r in pred.propagate_in_video(s)}
    torch.testing.assert_close(rerun[2], before[2])


def test_clear_non_cond_mem_around_input():
    pred = build_video_predictor(MICRO, checkpoint="seeded:0", device="cpu", postprocessing=False,
                                 clear_non_cond_mem_around_input=True)
    s = pred.init_state(_video(4))
    pred.add_new_points_or_box(s, 0, 1, points=[[10, 10]], labels=[1])
    list(pred.propagate_in_video(s))
    assert sorted(s.objects[1].non_cond_outputs) == [1, 2, 3]
    pred.add_new_points_or_box(s, 3, 1, points=[[20, 20]], labels=[1])
    results = list(pred.propagate_in_video(s, start_frame_idx=3, max_frame_num_to_track=0))
    # the correction on frame 3 dropped the tracked memories within num_maskmem frames of it
    assert [r.frame_idx for r in results] == [3]
    assert sorted(s.objects[1].non_cond_outputs) == [3]


def test_clear_all_prompts_in_frame(pred):
    s = pred.init_state(_video(3))
    pred.add_new_points_or_box(s, 0, 1, points=[[10, 10]], labels=[1])
    pred.add_new_points_or_box(s, 1, 1, points=[[12, 10]], labels=[1])
    list(pred.propagate_in_video(s))
    assert sorted(s.objects[1].cond_outputs) == [0, 1]
    out = pred.clear_all_prompts_in_frame(s, 1, 1)
    assert out.obj_ids == [1]
    assert sorted(s.objects[1].cond_outputs) == [0] and 1 in s.objects[1].non_cond_outputs


@needs_cuda
def test_cuda_runs_under_bf16_autocast_and_returns_float32():
    pred = build_video_predictor("sam2.1-tiny", checkpoint="seeded:0", device="cuda", postprocessing=False)
    s = pred.init_state(_video(3))
    out = pred.add_new_points_or_box(s, 0, 1, points=[[10, 20]], labels=[1])
    results = list(pred.propagate_in_video(s))
    assert out.mask_logits.dtype == torch.float32 and all(r.mask_logits.dtype == torch.float32 for r in results)
    assert s.objects[1].non_cond_outputs[1].maskmem_features.dtype == torch.bfloat16


def test_box_corners_in_any_order_give_the_same_prompt(pred):
    s = pred.init_state(_video(1))
    coords = []
    for box in ([10, 12, 60, 40], [60, 40, 10, 12], [10, 40, 60, 12]):
        pred.add_new_points_or_box(s, 0, 1, box=box)
        coords.append(s.tracked_object(1).point_inputs[0].coords.clone())
    assert torch.equal(coords[0], coords[1]) and torch.equal(coords[0], coords[2])
    x1, y1, x2, y2 = coords[0].flatten().tolist()
    assert x1 < x2 and y1 < y2
