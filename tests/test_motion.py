"""Motion-aware tracking (SAMURAI mode): the Kalman filter against independent computations, the
candidate choice and memory admission on constructed inputs, the model hooks, and whole sessions with
several objects, reverse tracking and prompts in the middle of the video."""

import numpy as np
import pytest
import torch

from micro_model import MICRO
from sam2_plus import build_video_predictor
from sam2_plus.video.motion import (
    KALMAN,
    FrameQuality,
    MotionAwarePredictor,
    MotionConfig,
    MotionRules,
    MotionStep,
    ObjectMotion,
    admits,
    admitted_memory_frames,
    box_iou,
    mask_box,
    xyah_to_xyxy,
    xyxy_to_xyah,
)
from sam2_plus.modeling.sam2_model import NO_OBJ_SCORE, Candidates, MaskChoice
from sam2_plus.video.tracker import FrameOutput, TrackedObject, select_memory

H, W = 48, 64
NUM_MASKMEM, MAX_ADMITTED = 7, 15


# ---------------------------------------------------------------------------------------------- Kalman filter
def _noise(h):
    """SAMURAI's noise model written out: process sigmas (h/20, h/20, 0.01, h/20, h/160, h/160, 1e-5,
    h/160), measurement sigmas (h/20, h/20, 0.1, h/20)."""
    q = np.diag(np.square([h / 20, h / 20, 1e-2, h / 20, h / 160, h / 160, 1e-5, h / 160]))
    r = np.diag(np.square([h / 20, h / 20, 1e-1, h / 20]))
    return q, r


def test_kalman_initiate_and_predict_by_hand():
    mean, cov = KALMAN.initiate([100.0, 50.0, 0.5, 40.0])
    np.testing.assert_array_equal(mean, [100, 50, 0.5, 40, 0, 0, 0, 0])
    # initial sigmas: 2 * h/20 for positions and height, 10 * h/160 for their velocities
    np.testing.assert_allclose(np.diag(cov), [16, 16, 1e-4, 16, 6.25, 6.25, 1e-10, 6.25])
    mean = mean.copy()
    mean[4:] = [3.0, -2.0, 0.0, 1.0]
    pred_mean, pred_cov = KALMAN.predict(mean, cov)
    np.testing.assert_allclose(pred_mean, [103, 48, 0.5, 41, 3, -2, 0, 1])
    # position variance: own + velocity variance + process noise (h/20)^2
    assert pred_cov[0, 0] == pytest.approx(16 + 6.25 + 4.0)
    assert pred_cov[0, 4] == pytest.approx(6.25)
    assert pred_cov[4, 4] == pytest.approx(6.25 + 0.0625)


def test_kalman_matches_filterpy():
    filterpy = pytest.importorskip("filterpy.kalman")
    rng = np.random.default_rng(0)
    first = np.array([200.0, 150.0, 0.6, 80.0])
    ref = filterpy.KalmanFilter(dim_x=8, dim_z=4)
    ref.F = np.eye(8) + np.eye(8, k=4)
    ref.H = np.eye(4, 8)
    mean, cov = KALMAN.initiate(first)
    ref.x, ref.P = mean.copy(), cov.copy()
    for t in range(1, 25):
        ref.Q = _noise(ref.x[3])[0]
        ref.predict()
        mean, cov = KALMAN.predict(mean, cov)
        np.testing.assert_allclose(mean, ref.x, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(cov, ref.P, rtol=1e-9, atol=1e-9)
        z = first + np.array([6.0 * t, -3.0 * t, 0.0, 0.5 * t]) + rng.normal(0, 1.5, 4) * [1, 1, 0.01, 1]
        ref.R = _noise(ref.x[3])[1]  # the measurement noise scales with the predicted height
        ref.update(z)
        mean, cov = KALMAN.update(mean, cov, z)
        np.testing.assert_allclose(mean, ref.x, rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(cov, ref.P, rtol=1e-7, atol=1e-8)
    assert mean[4] == pytest.approx(6.0, abs=1.0) and mean[5] == pytest.approx(-3.0, abs=1.0)


def test_box_helpers():
    assert xyxy_to_xyah([10, 20, 30, 60]) == [20.0, 40.0, 0.5, 40]
    assert xyxy_to_xyah([0, 0, 0, 0]) == [0.0, 0.0, 0.0, 1]  # zero height counts as 1
    assert xyah_to_xyxy([20.0, 40.0, 0.5, 40.0]) == [10.0, 20.0, 30.0, 60.0]  # the inverse
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou([0, 0, 10, 10], [0, 0, 0, 0]) == 0.0  # "no mask" never matches
    m = torch.zeros(20, 30, dtype=torch.bool)
    assert mask_box(m) == [0, 0, 0, 0]
    m[3:7, 10:25] = True
    assert mask_box(m) == [10, 3, 24, 6]  # inclusive pixel bounds


# ---------------------------------------------------------------------------------------------- candidate choice
def _moving_box(t):
    return [100.0 + 8 * t, 200.0, 180.0 + 8 * t, 260.0]


def test_candidate_choice_follows_motion_once_stable():
    cfg = MotionConfig()
    far = [600.0, 600.0, 680.0, 660.0]
    distracted = [0.80, 0.78, 0.1]  # a distractor far away is predicted slightly better than the target

    # while the filter is not yet stable the highest predicted IoU wins
    young = ObjectMotion(cfg)
    for t in range(3):
        young.step(t, False, torch.tensor([0.9, 0.2, 0.1]), lambda i, t=t: [_moving_box(t), far, far][i])
    best, kf = young.step(3, False, torch.tensor(distracted), lambda i: [far, _moving_box(3), far][i])
    assert best == 0 and kf is None

    motion = ObjectMotion(cfg)
    for t in range(cfg.stable_frames_threshold):
        best, kf = motion.step(t, False, torch.tensor([0.9, 0.2, 0.1]), lambda i, t=t: [_moving_box(t), far, far][i])
        assert best == 0 and kf is None
    assert motion.state.stable_frames == cfg.stable_frames_threshold
    t = cfg.stable_frames_threshold
    boxes = [far, _moving_box(t), far]
    best, kf = motion.step(t, False, torch.tensor(distracted), lambda i: boxes[i])
    assert best == 1  # 0.25 * ~1 + 0.75 * 0.78 beats 0.25 * 0 + 0.75 * 0.80
    before = motion._before_last[0]
    predicted = xyah_to_xyxy(KALMAN.predict(before.mean, before.cov)[0])
    assert kf == pytest.approx(box_iou(predicted, boxes[1]), rel=1e-6) and kf > 0.8


def test_low_predicted_iou_restarts_the_filter():
    motion = ObjectMotion(MotionConfig())
    box = [10.0, 10.0, 50.0, 30.0]
    motion.step(0, False, torch.tensor([0.9, 0.5, 0.1]), lambda i: box)
    motion.step(1, False, torch.tensor([0.9, 0.5, 0.1]), lambda i: box)
    assert motion.state.stable_frames == 2
    motion.step(2, False, torch.tensor([0.25, 0.2, 0.1]), lambda i: box)  # best IoU 0.25 <= 0.3
    assert motion.state.stable_frames == 0
    other = [100.0, 100.0, 140.0, 120.0]
    motion.step(3, False, torch.tensor([0.9, 0.5, 0.1]), lambda i: other)  # re-initiated on the new box
    assert motion.state.stable_frames == 1
    np.testing.assert_allclose(motion.state.mean, xyxy_to_xyah(other) + [0, 0, 0, 0])


def test_filter_follows_one_pass_of_tracking():
    ious = torch.tensor([0.9, 0.5, 0.1])

    def run(frames, directions):
        m = ObjectMotion(MotionConfig())
        for f, rev in zip(frames, directions):
            m.step(f, rev, ious, lambda i, f=f: _moving_box(f))
        return m

    a = run([0, 1, 2, 3], [None, False, False, False])  # a prompt, then a forward pass
    assert a.state.stable_frames == 4
    # a gap (a prompted frame passed over) is bridged by one extra prediction
    gap = run([0, 1, 3], [False] * 3)
    manual = ObjectMotion(MotionConfig())
    manual.step(0, False, ious, lambda i: _moving_box(0))
    manual.step(1, False, ious, lambda i: _moving_box(1))
    mean, cov = KALMAN.predict(manual.state.mean, manual.state.cov)
    mean, cov = KALMAN.predict(mean, cov)
    mean, cov = KALMAN.update(mean, cov, xyxy_to_xyah(_moving_box(3)))
    np.testing.assert_allclose(gap.state.mean, mean)
    # a change of direction or a jump back starts a new filter
    assert run([0, 1, 2, 1], [False, False, False, True]).state.stable_frames == 1
    assert run([0, 1, 2, 0], [False, False, False, False]).state.stable_frames == 1
    # resuming a pass from its last frame replays that frame: same state as running it once
    replay = run([0, 1, 2, 3, 3], [False] * 5)
    np.testing.assert_array_equal(replay.state.mean, a.state.mean)
    assert replay.state.stable_frames == a.state.stable_frames


def test_step_chooses_by_mask_boxes_or_box_head_boxes():
    masks = torch.full((1, 3, 64, 64), -5.0)
    masks[0, 1, 10:20, 30:40] = 5.0
    step = MotionStep([ObjectMotion(MotionConfig())], 4, False, 64, use_box_head=False)
    assert step.presence_threshold == MotionConfig().min_obj_score_logits
    best = step.choose(Candidates(masks, torch.tensor([[0.2, 0.9, 0.4]]), None))
    assert best.tolist() == [1]
    np.testing.assert_allclose(step.motions[0].state.mean[:4], xyxy_to_xyah([30, 10, 39, 19]))
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 1.0], [0, 0, 0, 0]]])
    step = MotionStep([ObjectMotion(MotionConfig())], 4, False, 64, use_box_head=True)
    step.choose(Candidates(masks, torch.tensor([[0.2, 0.9, 0.4]]), boxes))
    np.testing.assert_allclose(step.motions[0].state.mean[:4], xyxy_to_xyah([16, 16, 48, 64]))


# ---------------------------------------------------------------------------------------------- memory admission
class _Out(FrameOutput):
    """A tracked frame's output with the quality its step recorded."""

    quality: FrameQuality


def _out(score=1.0, iou=0.9, kf=None, from_pts=False):
    feats = torch.zeros(1, 1, 1, 1)
    out = _Out(pred_masks=torch.zeros(1, 1, 4, 4), obj_ptr=torch.zeros(1, 4),
               object_score_logits=torch.tensor([[score]]), maskmem_features=feats, maskmem_pos_enc=feats,
               is_mask_from_pts=from_pts)
    out.quality = FrameQuality(iou, kf)
    return out


def _admitted_frames(track, frame_idx, num_frames, reverse, unselected, cfg, num_maskmem, max_admitted):
    """admitted_memory_frames with admission judged from each output's quality."""
    def admitted(t):
        out = track.non_cond_outputs[t]
        return admits(out, out.quality, cfg)

    return admitted_memory_frames(track, frame_idx, num_frames, reverse, unselected, admitted, num_maskmem,
                                  max_admitted)


def _samurai_rule(outputs, frame_idx, cfg):
    """SAMURAI's admission for a prompt on frame 0 and forward tracking, restated independently: scan
    frames frame_idx-1 .. 2, keep the admitted ones (ascending), cap at 15, always end with frame_idx-1;
    the last 6 get t_pos 1..6 aligned to the end."""
    valid = []
    for i in range(frame_idx - 1, 1, -1):
        o = outputs[i]
        ok = (o.quality.iou > cfg.memory_bank_iou_threshold
              and o.object_score_logits.item() > cfg.memory_bank_obj_score_threshold
              and (o.quality.kf_score is None or o.quality.kf_score > cfg.memory_bank_kf_score_threshold))
        if ok:
            valid = [i] + valid
        if len(valid) >= MAX_ADMITTED:
            break
    if frame_idx - 1 not in valid:
        valid.append(frame_idx - 1)
    pairs = []
    for t_pos in range(1, NUM_MASKMEM):
        k = t_pos - NUM_MASKMEM
        if k >= -len(valid):
            pairs.append((t_pos, valid[k]))
    return pairs


def _random_outputs(n, seed):
    rng = np.random.default_rng(seed)
    return {t: _out(score=float(rng.normal(0.5, 1.0)), iou=float(rng.uniform(0.3, 0.8)),
                    kf=None if rng.random() < 0.5 else float(rng.uniform(-0.1, 0.3)))
            for t in range(1, n)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_admission_matches_samurai_for_a_prompt_on_frame_0(seed):
    cfg, n = MotionConfig(), 40
    track = TrackedObject(1, "mask", cond_outputs={0: _out(from_pts=True)}, non_cond_outputs=_random_outputs(n, seed))
    for f in range(1, n):
        visible = {t: o for t, o in track.non_cond_outputs.items() if t < f}  # tracked so far
        track_so_far = TrackedObject(1, "mask", cond_outputs=track.cond_outputs, non_cond_outputs=visible)
        got = _admitted_frames(track_so_far, f, n, False, {}, cfg, NUM_MASKMEM, MAX_ADMITTED)
        assert got == _samurai_rule(track.non_cond_outputs, f, cfg), f


def test_admission_by_hand():
    cfg = MotionConfig()
    outs = {t: _out() for t in range(1, 12)}
    outs[10] = _out(iou=0.4)  # predicted IoU too low, but the nearest frame is always used
    outs[9] = _out(score=-0.5)  # absent (though above the presence gate of -1)
    outs[8] = _out(kf=0.0)  # Kalman IoU not above 0
    outs[7] = _out(iou=0.2, from_pts=True)  # a user's correction: always admitted
    outs[6] = _out(kf=0.4)
    outs[1] = _out()  # frame 1 lies outside SAMURAI's scan (it stops at frame 2)
    track = TrackedObject(1, "mask", cond_outputs={0: _out(from_pts=True)}, non_cond_outputs=outs)
    got = _admitted_frames(track, 11, 20, False, {}, cfg, NUM_MASKMEM, MAX_ADMITTED)
    assert got == [(1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 10)]
    ctx = select_memory(track, 11, 20, False, _tracker_cfg(), NUM_MASKMEM,
                        memory_frames=lambda *a: _admitted_frames(*a, cfg, NUM_MASKMEM, MAX_ADMITTED))
    assert [t for t, _ in ctx.spatial] == [0, 1, 2, 3, 4, 5, 6]
    # few tracked frames: only what exists counts, the cap applies to admitted frames
    assert _admitted_frames(track, 3, 20, False, {}, cfg, NUM_MASKMEM, 1) == [(6, 2)]
    assert _admitted_frames(track, 11, 20, False, {}, cfg, NUM_MASKMEM, 2) == [(4, 6), (5, 7), (6, 10)]
    assert not admits(outs[9], outs[9].quality, cfg) and admits(outs[7], outs[7].quality, cfg)
    assert admits(_out(kf=None), FrameQuality(0.9), cfg) and admits(_out(), None, cfg)


def _tracker_cfg():
    from sam2_plus.config import TrackerConfig

    return TrackerConfig()


def test_admission_in_reverse_mirrors_forward():
    cfg, n = MotionConfig(), 30
    fwd = _random_outputs(n, 5)
    # the same scores on mirrored frames, tracked in reverse from a prompt on the last frame
    rev = {n - 1 - t: o for t, o in fwd.items()}
    cond = {0: _out(from_pts=True)}
    for f in range(1, n):
        a = _admitted_frames(TrackedObject(1, "mask", cond_outputs=cond,
                                               non_cond_outputs={t: o for t, o in fwd.items() if t < f}),
                                   f, n, False, {}, cfg, NUM_MASKMEM, MAX_ADMITTED)
        g = n - 1 - f
        b = _admitted_frames(TrackedObject(1, "mask", cond_outputs={n - 1: cond[0]},
                                               non_cond_outputs={t: o for t, o in rev.items() if t > g}),
                                   g, n, True, {}, cfg, NUM_MASKMEM, MAX_ADMITTED)
        assert b == [(t_pos, n - 1 - t) for t_pos, t in a]


def test_admission_with_a_prompt_in_the_middle():
    cfg = MotionConfig()
    # prompt on frame 10; frames 11..14 tracked forward, 9..7 in reverse, no other frame was ever tracked
    outs = {t: _out() for t in (7, 8, 9, 11, 12, 13, 14)}
    outs[12] = _out(iou=0.1)
    track = TrackedObject(1, "mask", cond_outputs={10: _out(from_pts=True)}, non_cond_outputs=outs)
    # frame 10 is a conditioning frame: select_memory reads it with t_pos 0 and skips it here
    assert _admitted_frames(track, 11, 30, False, {}, cfg, NUM_MASKMEM, MAX_ADMITTED) == [
        (3, 7), (4, 8), (5, 9), (6, 10)]
    assert _admitted_frames(track, 15, 30, False, {}, cfg, NUM_MASKMEM, MAX_ADMITTED) == [
        (1, 7), (2, 8), (3, 9), (4, 11), (5, 13), (6, 14)]
    assert _admitted_frames(track, 6, 30, True, {}, cfg, NUM_MASKMEM, MAX_ADMITTED) == [
        (1, 14), (2, 13), (3, 11), (4, 9), (5, 8), (6, 7)]
    # an unselected conditioning frame (max_cond_frames_in_attn) counts as admitted
    got = _admitted_frames(track, 15, 30, False, {10: track.cond_outputs[10]}, cfg, NUM_MASKMEM, MAX_ADMITTED)
    assert got == [(1, 8), (2, 9), (3, 10), (4, 11), (5, 13), (6, 14)]


# ---------------------------------------------------------------------------------------------- model hooks
@pytest.fixture(scope="module")
def motion_pred():
    return build_video_predictor("sam2.1-tiny", checkpoint="seeded:0", device="cpu", postprocessing=False,
                                 motion_aware=True, motion=MotionConfig(stable_frames_threshold=1))


def test_decode_hooks(motion_pred):
    model = motion_pred.model
    g = torch.Generator().manual_seed(0)
    pix = torch.randn(1, 256, 64, 64, generator=g)
    high = [model.sam_mask_decoder.conv_s0(torch.randn(1, 256, 256, 256, generator=g)),
            model.sam_mask_decoder.conv_s1(torch.randn(1, 256, 128, 128, generator=g))]
    seen = []

    class Pick(MaskChoice):
        def __init__(self, index=None, presence_threshold=0.0):
            self.index, self.presence_threshold = index, presence_threshold

        def choose(self, candidates):
            seen.append(candidates)
            return candidates.ious.argmax(-1) if self.index is None else torch.tensor([self.index])

    with torch.inference_mode():
        plain = model.decode("mask", pix, high, multimask_output=True, choice=Pick())
        ious = seen[-1].ious
        assert seen[-1].high_res_masks.shape[:2] == (1, 3) and plain.iou.tolist() == ious.max(-1).values.tolist()
        picked = model.decode("mask", pix, high, multimask_output=True, choice=Pick(2))
        assert picked.iou.tolist() == ious[:, 2].tolist()
        assert torch.equal(picked.high_res_masks[:, 0], seen[-1].high_res_masks[:, 2])
        assert torch.equal(plain.low_res_masks, model.decode("mask", pix, high, multimask_output=True).low_res_masks)
        gone = model.decode("mask", pix, high, multimask_output=True, choice=Pick(presence_threshold=float("inf")))
        assert bool((seen[-1].high_res_masks == NO_OBJ_SCORE).all())
        assert torch.allclose(gone.obj_ptr, model.no_obj_ptr)
        model.decode("mask", pix, high, multimask_output=True, choice=Pick(presence_threshold=-float("inf")))
        assert not bool((seen[-1].high_res_masks == NO_OBJ_SCORE).any())


def test_defaults_per_model_size():
    assert MotionConfig.for_model("sam2.1-large").kf_score_weight == 0.15
    for name in ("sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2++"):
        cfg = MotionConfig.for_model(name)
        assert cfg.kf_score_weight == 0.25 and cfg.stable_frames_threshold == 15
        assert (cfg.stable_ious_threshold, cfg.min_obj_score_logits) == (0.3, -1.0)
        assert (cfg.memory_bank_iou_threshold, cfg.memory_bank_obj_score_threshold,
                cfg.memory_bank_kf_score_threshold) == (0.5, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------- sessions
def _video(n):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    return [np.roll(base, shift=3 * i, axis=1) for i in range(n)]


def test_objects_directions_and_middle_prompts():
    # stable_frames_threshold=1: the filter takes part in the choice from the second step of a pass on, so
    # a frame's kf_score tells whether it was the first of its filter (None) or continued one (a number)
    pred = build_video_predictor(MICRO, checkpoint="seeded:0", device="cpu", postprocessing=False,
                                 motion_aware=True, motion=MotionConfig(stable_frames_threshold=1))
    assert isinstance(pred, MotionAwarePredictor)
    s = pred.init_state(_video(4))
    assert isinstance(s.rules, MotionRules)
    pred.add_new_points_or_box(s, 1, 1, box=[10, 8, 40, 30])  # a box on a middle frame: no multimask, no step
    assert [r.frame_idx for r in pred.propagate_in_video(s)] == [1, 2, 3]
    one, one_motion = s.tracked_object(1), s.rules.motion(1)
    assert sorted(one.non_cond_outputs) == [2, 3]
    assert one_motion.quality[2].kf_score is None and one_motion.quality[3].kf_score is not None
    assert (one_motion.last_frame, one_motion.last_reverse) == (3, False)
    assert set(one_motion.quality) == set(one.non_cond_outputs)  # every tracked frame has its quality

    # an object added later by one click (multimask output): its filter starts on the prompt
    pred.add_new_points_or_box(s, 2, 2, points=[[50, 20]], labels=[1])
    two_motion = s.rules.motion(2)
    assert two_motion is not one_motion
    assert (two_motion.last_frame, two_motion.last_reverse) == (2, None)
    results = list(pred.propagate_in_video(s, start_frame_idx=2))
    assert [r.frame_idx for r in results] == [2, 3] and all(r.obj_ids == [1, 2] for r in results)
    assert two_motion.quality[3].kf_score is not None  # continued from the prompt
    assert one_motion.quality[2].kf_score is None  # a new pass from an earlier frame restarted object 1

    rev = list(pred.propagate_in_video(s, start_frame_idx=2, reverse=True))
    assert [r.frame_idx for r in rev] == [2, 1, 0]
    assert all(bool(torch.isfinite(r.mask_logits).all()) for r in rev)
    # object 1: frame 2 restarts its filter, its prompt frame 1 is passed over, frame 0 continues
    assert one_motion.quality[2].kf_score is None and one_motion.quality[0].kf_score is not None
    # object 2: prompted on frame 2, restarted on frame 1 (the direction changed), continued on frame 0
    assert two_motion.quality[1].kf_score is None and two_motion.quality[0].kf_score is not None
    for m in (one_motion, two_motion):
        assert (m.last_frame, m.last_reverse) == (0, True)

    # clearing a prompt, removing an object and resetting drop the motion state
    pred.clear_all_prompts_in_frame(s, 2, 2)
    assert two_motion.last_frame is None and two_motion.state.mean is None
    assert one_motion.last_frame == 0
    pred.remove_object(s, 2)
    assert s.obj_ids == [1] and 2 not in s.rules.objects
    pred.reset_state(s)
    assert s.obj_ids == [] and s.rules.objects == {}
