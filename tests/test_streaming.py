"""The streaming predictor (`init_stream` / `push_frame`): frames pushed one at a time give exactly what the video
predictor gives on the same frames and prompts; prompts on held frames only; memory bounded; bad frames refused."""

import numpy as np
import pytest
import torch

from micro_model import MICRO
from sam2_plus import PromptError, build_video_predictor
from sam2_plus.media.decode import MediaError

H, W = 48, 64
NUM_FRAMES = 20  # at least max_obj_ptrs_in_encoder (16): a stream's memory rules are a long video's


def _frames(num_frames=NUM_FRAMES, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    return [np.roll(base, shift=(i, 2 * i), axis=(0, 1)) for i in range(num_frames)]


def _square(x0, y0, size=14):
    mask = np.zeros((H, W), bool)
    mask[y0:y0 + size, x0:x0 + size] = True
    return mask


@pytest.fixture(scope="module", params=[False, True], ids=["sam2", "motion-aware"])
def pred(request):
    return build_video_predictor(MICRO, checkpoint="seeded:3", device="cpu", postprocessing=False,
                                 precision="float32", motion_aware=request.param)


# On frame t, after the frame is tracked: a new object (mask, box or clicks), a correction, a removal.
EVENTS = {
    0: [("mask", 1, _square(8, 8))],
    4: [("box", 2, [30, 10, 50, 30])],
    7: [("points", 3, [[20, 30]])],
    9: [("correct", 2, [[40, 20]])],
    12: [("remove", 1, None)],
    15: [("mask", 4, _square(40, 24))],
}


def _apply(pred, session, frame_idx, events):
    result = None
    for kind, obj_id, value in events:
        if kind == "mask":
            result = pred.add_new_mask(session, frame_idx, obj_id, value)
        elif kind == "box":
            result = pred.add_new_points_or_box(session, frame_idx, obj_id, box=value)
        elif kind == "points":
            result = pred.add_new_points_or_box(session, frame_idx, obj_id, points=value, labels=[1])
        elif kind == "correct":
            result = pred.add_new_points_or_box(session, frame_idx, obj_id, points=value, labels=[1],
                                                clear_old_points=False)
        else:
            pred.remove_object(session, obj_id)
    return result


def _streamed(pred, frames):
    session = pred.init_stream()
    results = {}
    for frame in frames:
        result = pred.push_frame(session, frame)
        prompted = _apply(pred, session, result.frame_idx, EVENTS.get(result.frame_idx, []))
        results[result.frame_idx] = prompted or result
    return results


def _tracked_as_video(pred, frames):
    """The same prompts on the same frames through the video predictor, propagating between them."""
    session = pred.init_state(frames)
    results = {0: _apply(pred, session, 0, EVENTS[0])}
    start, stops = 0, sorted(t for t in EVENTS if t > 0) + [len(frames) - 1]
    for stop in stops:
        for result in pred.propagate_in_video(session, start_frame_idx=start, max_frame_num_to_track=stop - start):
            results[result.frame_idx] = result
        results[stop] = _apply(pred, session, stop, EVENTS.get(stop, [])) or results[stop]
        start = stop + 1
    return results


def test_a_stream_tracks_exactly_as_the_video_predictor(pred):
    frames = _frames()
    streamed, video = _streamed(pred, frames), _tracked_as_video(pred, frames)
    assert sorted(streamed) == sorted(video) == list(range(NUM_FRAMES))
    for t in range(NUM_FRAMES):
        s, v = streamed[t], video[t]
        assert s.obj_ids == v.obj_ids, t
        assert torch.equal(s.mask_logits, v.mask_logits), t
        assert torch.equal(s.object_scores, v.object_scores), t
        assert torch.equal(s.boxes, v.boxes) and torch.equal(s.points, v.points), t
    assert streamed[NUM_FRAMES - 1].obj_ids == [2, 3, 4]
    assert streamed[8].mask_logits.shape == (3, H, W)


def test_before_any_object_a_push_returns_an_empty_result(pred):
    session = pred.init_stream()
    result = pred.push_frame(session, _frames(1)[0])
    assert result.frame_idx == 0 and result.obj_ids == []
    assert result.mask_logits.shape == (0, H, W)
    second = pred.push_frame(session, _frames(2)[1])
    assert second.frame_idx == 1


def test_prompts_go_on_held_frames_only(pred):
    frames = _frames(12)
    session = pred.init_stream(history=4)
    with pytest.raises(PromptError, match="no frame yet"):
        pred.add_new_mask(session, 0, 1, _square(8, 8))
    for frame in frames[:10]:
        pred.push_frame(session, frame)
    with pytest.raises(PromptError, match=r"no longer held.*last 4 frames \(6\.\.9\)"):
        pred.add_new_points_or_box(session, 5, 1, points=[[10, 10]], labels=[1])
    with pytest.raises(PromptError, match="outside the video"):
        pred.add_new_points_or_box(session, 10, 1, points=[[10, 10]], labels=[1])
    assert session.obj_ids == []  # a refused first prompt leaves no object behind
    prompted = pred.add_new_mask(session, 7, 1, _square(8, 8))  # an older held frame (a frozen picture)
    assert prompted.frame_idx == 7 and prompted.obj_ids == [1]
    after = pred.push_frame(session, frames[10])
    assert after.frame_idx == 10 and after.obj_ids == [1]


def test_memory_stays_bounded_over_a_long_stream(pred):
    frames = _frames(8)
    session = pred.init_stream(history=5)
    pred.push_frame(session, frames[0])
    pred.add_new_mask(session, 0, 1, _square(8, 8))
    reach = pred.memory_reach()
    kept = []
    for t in range(1, 150):
        pred.push_frame(session, frames[t % len(frames)])
        kept.append(len(session.objects[1].non_cond_outputs))
    obj = session.objects[1]
    # the frames within reach behind the newest, and those a propagation from the prompted frame would read
    assert max(kept) <= 2 * reach + 1 and kept[-1] == kept[60]
    assert list(obj.cond_outputs) == [0]
    assert len(obj.frames_tracked) <= 5
    assert len(session.frames._held) == 5 and session.num_frames == 150


def test_a_stream_keeps_no_memory_even_when_the_predictor_keeps_all():
    pred = build_video_predictor(MICRO, checkpoint="seeded:3", device="cpu", keep_all_memory=True)
    session = pred.init_stream()
    frames = _frames(4)
    pred.push_frame(session, frames[0])
    pred.add_new_mask(session, 0, 1, _square(8, 8))
    for t in range(1, 60):
        pred.push_frame(session, frames[t % 4])
    assert len(session.objects[1].non_cond_outputs) <= 2 * pred.memory_reach() + 1


@pytest.mark.parametrize("frame, message", [
    (np.zeros((H, W, 3), np.float32), "uint8"),
    (np.zeros((H, W), np.uint8), "HxWx3"),
    (np.zeros((H + 2, W, 3), np.uint8), r"64x50.*64x48.*new stream"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_frames_are_refused_and_the_stream_goes_on(pred, frame, message):
    session = pred.init_stream()
    pred.push_frame(session, _frames(1)[0])
    with pytest.raises(MediaError, match=message):
        pred.push_frame(session, frame)
    assert pred.push_frame(session, _frames(2)[1]).frame_idx == 1


def test_a_stream_is_pushed_and_a_video_propagated(pred):
    stream = pred.init_stream()
    pred.push_frame(stream, _frames(1)[0])
    pred.add_new_mask(stream, 0, 1, _square(8, 8))
    with pytest.raises(ValueError, match="push_frame"):
        next(iter(pred.propagate_in_video(stream)))
    video = pred.init_state(_frames(2))
    with pytest.raises(ValueError, match="init_stream"):
        pred.push_frame(video, _frames(1)[0])
    with pytest.raises(ValueError, match="at least 1 frame"):
        pred.init_stream(history=0)


def test_the_pushed_frame_is_copied(pred):
    session = pred.init_stream()
    buffer = _frames(1)[0].copy()
    pred.push_frame(session, buffer)
    buffer[:] = 0  # a camera reuses its buffer
    assert session.frames[0].any()
