"""Memory eviction: while propagating, the predictor forgets tracked frames no later read needs.

The check is behavioural: drive propagation-shaped sequences of frames through the real memory
selection with and without eviction, and require every frame to read exactly the same memories and
object pointers, while the number of kept frames stays bounded."""

from types import SimpleNamespace

import pytest
import torch

from sam2_plus.config import TrackerConfig
from sam2_plus.video.eviction import evict_unreachable
from sam2_plus.video.motion import FrameQuality, MotionAwarePredictor, MotionConfig, MotionRules
from sam2_plus.video.predictor import VideoPredictor
from sam2_plus.video.tracker import FrameOutput, TrackedObject

NUM_MASKMEM = 7


class _FakeModel:
    """Just what the predictor's memory bookkeeping reads from a model."""

    def __init__(self, stride: int = 1):
        self.tracker_cfg = TrackerConfig(memory_temporal_stride_for_eval=stride)
        self.num_maskmem = NUM_MASKMEM
        self.image_size = 1024
        self.cfg = SimpleNamespace(name="sam2.1-tiny")

    def check_task(self, task):
        return task


def _output(frame_idx: int) -> FrameOutput:
    tag = torch.tensor([[float(frame_idx)]])
    return FrameOutput(pred_masks=tag, obj_ptr=tag.clone(), object_score_logits=torch.tensor([[1.0]]),
                       maskmem_features=tag.clone(), maskmem_pos_enc=tag)


def _read(pred, session, track, frame_idx, reverse):
    """Which frames' memories and pointers a frame reads, by the frame numbers stored in them."""
    ctx = pred.stepper.select_memory(session, track, frame_idx, reverse)
    spatial = [(t_pos, float(e.maskmem_features)) for t_pos, e in ctx.spatial]
    pointers = [(d, float(p)) for d, p in ctx.pointers]
    return spatial, pointers


def _propagate(pred, session, track, frames, reverse, admitted, reads, kept):
    for f in frames:
        if f not in track.cond_outputs:
            reads.append((f, reverse, _read(pred, session, track, f, reverse)))
            track.non_cond_outputs[f] = _output(f)
            if isinstance(session.rules, MotionRules):  # what the step's rules would record
                session.rules.motion(track.obj_id).quality[f] = FrameQuality(iou=0.9 if admitted(f) else 0.1)
        track.frames_tracked[f] = reverse
        if not pred.keep_all_memory:
            evict_unreachable(track, f, reverse, pred.memory_reach(), session.rules)
        kept.append(len(track.non_cond_outputs))


def _scenario(pred, num_frames=300, cond=(60, 170), admitted=lambda f: True):
    session = SimpleNamespace(num_frames=num_frames, tracking_length=num_frames, rules=pred.tracking_rules())
    track = TrackedObject(obj_id=1, task="mask")
    for c in cond:
        track.cond_outputs[c] = _output(c)
        track.frames_tracked[c] = False
    reads, kept = [], []
    first = min(cond)
    run = (pred, session, track)
    _propagate(*run, range(first, -1, -1), True, admitted, reads, kept)
    _propagate(*run, range(first, num_frames), False, admitted, reads, kept)
    # a second, shorter pass back from the later prompt, and a resumed forward pass in two chunks
    _propagate(*run, range(max(cond), max(cond) - 40, -1), True, admitted, reads, kept)
    _propagate(*run, range(first, first + 90), False, admitted, reads, kept)
    _propagate(*run, range(first + 89, num_frames), False, admitted, reads, kept)
    return reads, kept


@pytest.mark.parametrize("stride", [1, 3])
def test_eviction_keeps_every_memory_that_is_read(stride):
    exact = VideoPredictor(_FakeModel(stride), keep_all_memory=True)
    bounded = VideoPredictor(_FakeModel(stride))
    reads_all, kept_all = _scenario(exact)
    reads_bounded, kept_bounded = _scenario(bounded)
    assert reads_bounded == reads_all
    assert max(kept_all) > 250
    # windows on both sides of the two prompted frames, the current one and the ends of earlier passes,
    # whatever the video's length
    assert max(kept_bounded) <= 7 * (bounded.memory_reach() + 1)
    _, kept_longer = _scenario(bounded, num_frames=900)
    assert max(kept_longer) == max(kept_bounded)


def test_motion_aware_eviction_keeps_admitted_memories_far_behind():
    # most frames fail admission, so the memories read lie far behind the current frame
    def admitted(f):
        return f % 11 == 0

    model = _FakeModel()
    exact = MotionAwarePredictor(model, keep_all_memory=True, motion=MotionConfig())
    bounded = MotionAwarePredictor(model, motion=MotionConfig())
    reads_all, kept_all = _scenario(exact, admitted=admitted)
    reads_bounded, kept_bounded = _scenario(bounded, admitted=admitted)
    assert reads_bounded == reads_all
    assert any(pos and (f - t) * (-1 if rev else 1) > bounded.memory_reach()
               for f, rev, (spatial, _) in reads_all for pos, t in spatial)  # the case is exercised
    assert max(kept_bounded) <= 7 * (bounded.memory_reach() + NUM_MASKMEM)
    _, kept_longer = _scenario(bounded, num_frames=900, admitted=admitted)
    assert max(kept_longer) == max(kept_bounded)
