"""Objects tracked together in one batch give what tracking them one at a time gives.

Objects of one task whose memories have the same layout (the same prompted frames and memory slots)
run through the memory attention, the decoder and the memory encoder as one batch; the frame they
share attends to itself once. These tests compare batched and one-at-a-time tracking on whole
sessions and on the pieces (memory stacking, result splitting, the memory attention's broadcast)."""

import numpy as np
import pytest
import torch

from micro_model import MICRO

from sam2_plus import build_video_predictor
from sam2_plus.modeling.attention import chunked_attention
from sam2_plus.modeling.sam2_model import MemoryContext, MemoryEntry
from sam2_plus.video.motion import MotionConfig
from sam2_plus.video.stepper import FrameStepper
from sam2_plus.video.tracker import memory_layout, stack_memories

H, W = 48, 64


def _video(n):
    rng = np.random.default_rng(2)
    base = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    return [np.roll(base, shift=2 * i, axis=1) for i in range(n)]


def _prompt(pred, session):
    # objects 1 and 2 share their memory layout; object 3, prompted on another frame, has its own
    pred.add_new_points_or_box(session, 0, 1, box=[4, 4, 30, 30])
    pred.add_new_points_or_box(session, 0, 2, points=[[50, 30]], labels=[1])
    pred.add_new_points_or_box(session, 1, 3, box=[30, 10, 60, 40])


def _run(pred, num_frames, monkeypatch):
    batch_sizes = []
    original = FrameStepper.track_batch

    def recording_batch(self, session, members, frame_idx, reverse):
        batch_sizes.append((frame_idx, len(members)))
        return original(self, session, members, frame_idx, reverse)

    monkeypatch.setattr(FrameStepper, "track_batch", recording_batch)
    session = pred.init_state(_video(num_frames))
    _prompt(pred, session)
    results = list(pred.propagate_in_video(session))
    monkeypatch.undo()
    return results, batch_sizes, session


@pytest.mark.parametrize("motion_aware", [False, True])
def test_batched_objects_match_one_at_a_time(monkeypatch, motion_aware):
    kwargs = dict(checkpoint="seeded:0", device="cpu", postprocessing=False, motion_aware=motion_aware)
    if motion_aware:  # the Kalman filter takes part from the second frame of a pass on
        kwargs["motion"] = MotionConfig(stable_frames_threshold=1)
    pred_b = build_video_predictor(MICRO, max_batch_objects=16, **kwargs)
    batched, sizes_b, session_b = _run(pred_b, 4, monkeypatch)
    alone, sizes_a, session_a = _run(build_video_predictor(MICRO, max_batch_objects=1, **kwargs), 4,
                                     monkeypatch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:  # the noise of the float sums' order: one at a time again, on another number of threads
        noise, _, session_n = _run(build_video_predictor(MICRO, max_batch_objects=1, **kwargs), 4,
                                   monkeypatch)
    finally:
        torch.set_num_threads(threads)
    # frame 0: object 3 alone (1 and 2 are prompted there); frame 1: objects 1 and 2 in one batch (3 is
    # prompted there); frames 2, 3: {1, 2} and {3}
    assert sizes_b == [(0, 1), (1, 2), (2, 2), (2, 1), (3, 2), (3, 1)]
    assert sizes_a == [(0, 1), (1, 1), (1, 1), (2, 1), (2, 1), (2, 1), (3, 1), (3, 1), (3, 1)]
    # From the same memories, a batch differs from single objects by float rounding only. Memories are stored in
    # bfloat16, where such a difference now and then rounds to the next value, so later frames may drift apart,
    # less than runs on different numbers of threads do (measured on SAM 2.1 tiny, frame 3: 0.035 against 0.25 on
    # logits of magnitude 13; on the micro model: at most 2e-6, the threads' noise 7e-7, on logits up to 4).
    for b, a, n in zip(batched, alone, noise, strict=True):
        assert (b.frame_idx, b.obj_ids) == (a.frame_idx, a.obj_ids) == (n.frame_idx, n.obj_ids)
        first_batched = b.frame_idx == 1
        for key, floor in (("mask_logits", 1e-4), ("object_scores", 1e-5)):
            bound = floor if first_batched else max(floor, float((getattr(n, key) - getattr(a, key)).abs().max()))
            torch.testing.assert_close(getattr(b, key), getattr(a, key), rtol=0, atol=bound)
        assert (b.masks != a.masks).float().mean() < 1e-3
        if b.boxes is not None:
            torch.testing.assert_close(b.boxes, a.boxes, rtol=0, atol=1.0)
    for obj in (1, 2):
        out_b, out_a, out_n = (s.tracked_object(obj).non_cond_outputs[1] for s in (session_b, session_a, session_n))
        side = pred_b.model.image_size // 16
        assert out_b.maskmem_features.shape == (1, pred_b.model.mem_dim, side, side)
        torch.testing.assert_close(out_b.obj_ptr, out_a.obj_ptr, rtol=0, atol=1e-5)
        rounded_apart = (out_n.maskmem_features != out_a.maskmem_features).float().mean()  # bfloat16 roundings
        assert (out_b.maskmem_features != out_a.maskmem_features).float().mean() <= max(1e-3, rounded_apart)
    kf_scored = 0
    for obj in (1, 2, 3) if motion_aware else ():
        quality_b, quality_a, quality_n = (s.rules.motion(obj).quality for s in (session_b, session_a, session_n))
        assert set(quality_b) == set(quality_a) >= set(session_b.tracked_object(obj).non_cond_outputs)
        for t, q_b in quality_b.items():
            q_a = quality_a[t]
            noise = abs(quality_n[t].iou - q_a.iou) if t in quality_n else 0.0
            assert abs(q_b.iou - q_a.iou) <= max(1e-3, noise) and (q_b.kf_score is None) == (q_a.kf_score is None)
            kf_scored += q_b.kf_score is not None
            if q_b.kf_score is not None:
                assert abs(q_b.kf_score - q_a.kf_score) < 1e-3
    assert kf_scored > 0 if motion_aware else not hasattr(session_b.rules, "motion")


def test_max_batch_objects_default_and_check():
    assert build_video_predictor("sam2.1-tiny", checkpoint=None, device="cpu").max_batch_objects == 1
    with pytest.raises(ValueError, match="max_batch_objects"):
        build_video_predictor("sam2.1-tiny", checkpoint=None, device="cpu", max_batch_objects=0)


def _entry(seed):
    g = torch.Generator().manual_seed(seed)
    return MemoryEntry(torch.randn(1, 4, 2, 2, generator=g).bfloat16(), torch.randn(1, 4, 2, 2, generator=g),
                       torch.randn(1, 8, generator=g))


def test_stack_memories_puts_object_k_in_row_k():
    one = MemoryContext([(0, _entry(1)), (6, _entry(2))], [(0, _entry(3).obj_ptr), (1, _entry(4).obj_ptr)])
    two = MemoryContext([(0, _entry(5)), (6, _entry(6))], [(0, _entry(7).obj_ptr), (1, _entry(8).obj_ptr)])
    assert memory_layout(one) == memory_layout(two) == ((0, 6), (0, 1))
    stacked = stack_memories([one, two])
    assert memory_layout(stacked) == memory_layout(one)
    for k, ctx in enumerate((one, two)):
        for (_, s), (_, e) in zip(stacked.spatial, ctx.spatial):
            assert torch.equal(s.maskmem_features[k:k + 1], e.maskmem_features)
            assert torch.equal(s.maskmem_pos_enc[k:k + 1], e.maskmem_pos_enc)
            assert torch.equal(s.obj_ptr[k:k + 1], e.obj_ptr)
        for (_, s), (_, e) in zip(stacked.pointers, ctx.pointers):
            assert torch.equal(s[k:k + 1], e)
    assert stack_memories([one]) is one
    other = MemoryContext([(0, _entry(1))], [(0, _entry(3).obj_ptr)])
    with pytest.raises(ValueError, match="same layout"):
        stack_memories([one, other])


def test_memory_attention_broadcasts_one_frame_over_objects():
    """One frame (batch 1) against three objects' memories equals the frame repeated, and each object alone."""
    pred = build_video_predictor("sam2.1-tiny", checkpoint="seeded:0", device="cpu", postprocessing=False)
    attn = pred.model.memory_attention
    g = torch.Generator().manual_seed(0)
    curr, curr_pos = torch.randn(64, 1, 256, generator=g), torch.randn(64, 1, 256, generator=g)
    memory, memory_pos = torch.randn(2 * 64 + 8, 3, 64, generator=g), torch.randn(2 * 64 + 8, 3, 64, generator=g)
    with torch.inference_mode():
        shared = attn([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=8)
        repeated = attn([curr.expand(-1, 3, -1)], memory, [curr_pos.expand(-1, 3, -1)], memory_pos,
                        num_obj_ptr_tokens=8)
        for k in range(3):
            alone = attn([curr], memory[:, k:k + 1], [curr_pos], memory_pos[:, k:k + 1], num_obj_ptr_tokens=8)
            torch.testing.assert_close(shared[:, k:k + 1], alone, rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="batch"):
            attn([curr.expand(-1, 2, -1)], memory, [curr_pos.expand(-1, 2, -1)], memory_pos)
    torch.testing.assert_close(shared, repeated, rtol=1e-5, atol=1e-5)


def test_chunked_attention_gives_each_head_what_it_gets_alone():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 50, 16), torch.randn(3, 2, 70, 16), torch.randn(3, 2, 70, 8)
    with torch.inference_mode():
        together = chunked_attention(q, k, v, max_scores=20 * 70)
        for b in range(3):
            for h in range(2):
                assert torch.equal(together[b, h], chunked_attention(q[b, h], k[b, h], v[b, h], max_scores=20 * 70))
