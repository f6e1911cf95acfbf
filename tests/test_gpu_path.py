"""The GPU path: bfloat16 autocast, pinned asynchronous frame upload, batched objects, results copied to
the host while the next frame is tracked, and the compiled image encoder. The CUDA tests skip on machines
without a GPU; the overlapped results and the compiled encoder are also checked on the CPU."""

import threading

import numpy as np
import pytest
import torch

from conftest import needs_cuda
from micro_model import MICRO
from sam2_plus import build_video_predictor
from sam2_plus.video.features import FrameEncoder
from sam2_plus.video.predictor import VideoPredictor
from sam2_plus.video.results import mask_boxes

H, W = 48, 64


def _video(n):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    return [np.roll(base, shift=2 * i, axis=1) for i in range(n)]


def _track(pred, num_frames=3):
    session = pred.init_state(_video(num_frames))
    pred.add_new_points_or_box(session, 0, 1, box=[4, 4, 30, 30])
    pred.add_new_points_or_box(session, 0, 2, box=[30, 10, 60, 40])
    return list(pred.propagate_in_video(session)), session


def _encoder_outputs_close(pred, compiled_pred, atol):
    image = torch.randn(1, 3, pred.image_size, pred.image_size, generator=torch.Generator().manual_seed(0))
    image = image.to(pred.device)
    with torch.inference_mode():
        eager = pred.model.encode_image(image)
        compiled = compiled_pred.model.encode_image(image)
    for a, b in zip(eager["backbone_fpn"], compiled["backbone_fpn"], strict=True):
        torch.testing.assert_close(b.float(), a.float(), rtol=0, atol=atol)


@needs_cuda
def test_frames_upload_from_pinned_memory_and_results_come_back_as_float32():
    pred = build_video_predictor("sam2.1-tiny", checkpoint="seeded:0", device="cuda", postprocessing=False)
    assert pred.uses_bfloat16
    session = pred.init_state(_video(2))
    image = pred.stepper.encoder.model_input(session.features, 0)
    assert image.is_cuda and image.shape == (1, 3, pred.image_size, pred.image_size)
    results, session = _track(pred)
    assert all(r.mask_logits.dtype == torch.float32 and not r.mask_logits.is_cuda for r in results)


@needs_cuda
def test_frames_normalised_on_the_gpu_equal_the_host_reference_bit_for_bit():
    from sam2_plus.media.decode import normalize_for_model, resize_for_model, to_model_input

    frame = np.random.default_rng(5).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    on_gpu = normalize_for_model(resize_for_model(frame, 64).cuda()).cpu()
    assert torch.equal(on_gpu, to_model_input(frame, 64))


@needs_cuda
def test_batched_objects_on_cuda_agree_with_one_at_a_time():
    kwargs = dict(checkpoint="seeded:0", device="cuda", postprocessing=False)
    pred = build_video_predictor("sam2.1-tiny", **kwargs)
    assert pred.max_batch_objects == 16  # the default on CUDA
    batched, _ = _track(pred)
    alone, _ = _track(build_video_predictor("sam2.1-tiny", max_batch_objects=1, **kwargs))
    for b, a in zip(batched, alone, strict=True):
        assert b.obj_ids == a.obj_ids
        assert (b.masks == a.masks).float().mean() >= 0.99  # bfloat16 work, summed in another order


@needs_cuda
def test_compiled_image_encoder_on_cuda_matches_eager():
    kwargs = dict(checkpoint="seeded:0", device="cuda", postprocessing=False)
    pred = build_video_predictor("sam2.1-tiny", **kwargs)
    compiled = build_video_predictor("sam2.1-tiny", compile_image_encoder=True, **kwargs)
    _encoder_outputs_close(pred, compiled, atol=1e-2)
    results, _ = _track(compiled)
    assert [r.frame_idx for r in results] == [0, 1, 2]


def test_compiled_image_encoder_on_cpu_matches_eager_and_keeps_the_keys():
    kwargs = dict(checkpoint="seeded:0", device="cpu", postprocessing=False)
    pred = build_video_predictor("sam2.1-tiny", **kwargs)
    compiled = build_video_predictor("sam2.1-tiny", compile_image_encoder=True, **kwargs)
    assert compiled.model.state_dict().keys() == pred.model.state_dict().keys()
    compiled.model.compile_image_encoder()  # a second call changes nothing
    _encoder_outputs_close(pred, compiled, atol=1e-4)


def test_mask_boxes_match_the_nonzero_extent():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 17, 23, generator=g) > 0.97
    masks[0] = False
    masks[1, 5, 7] = True
    boxes, nonempty = mask_boxes(masks)
    for m, box, has in zip(masks, boxes, nonempty, strict=True):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert bool(has) == (len(ys) > 0)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(ys) else [0, 0, 0, 0]
        assert box.tolist() == [float(v) for v in expected]


def test_pipelined_propagation_gives_the_same_results_and_a_failure_loses_no_frame(monkeypatch):
    """Pipelined (the CUDA default, forced here on the CPU), the next frame's input is prepared on a helper
    thread and frame t is handed out once frame t+1 is tracked; the results are the same, and a failure
    on a frame still delivers the frame before it."""
    pred = build_video_predictor(MICRO, checkpoint="seeded:0", device="cpu", postprocessing=False)
    assert not pred._pipelined()
    direct, _ = _track(pred, num_frames=4)
    monkeypatch.setattr(VideoPredictor, "_pipelined", lambda self: True)
    prepared = []
    host_input = FrameEncoder.host_input
    monkeypatch.setattr(FrameEncoder, "host_input",
                        lambda self, cache, t: prepared.append((t, threading.current_thread().name))
                        or host_input(self, cache, t))
    overlapped, session = _track(pred, num_frames=4)
    # frame 0 was prepared for the prompts; frames 1..3 on the helper thread while the frame before was tracked
    assert [t for t, _ in prepared] == [0, 1, 2, 3]
    assert all(name.startswith("sam2plus-prefetch") for t, name in prepared if t > 0)
    assert session.features.prefetched == {}  # every prepared frame was used
    for a, b in zip(direct, overlapped, strict=True):
        assert (a.frame_idx, a.obj_ids) == (b.frame_idx, b.obj_ids)
        for name in ("mask_logits", "object_scores", "boxes", "points"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name

    original, tracked = VideoPredictor._track_objects_on_frame, []

    def failing(self, session, frame_idx, reverse):
        if frame_idx == 2:
            raise RuntimeError("CUDA out of memory")
        tracked.append(frame_idx)
        return original(self, session, frame_idx, reverse)

    monkeypatch.setattr(VideoPredictor, "_track_objects_on_frame", failing)
    stream = pred.propagate_in_video(session)
    first = next(stream)
    assert first.frame_idx == 0 and tracked == [0, 1]  # frame 1 was tracked before frame 0 was handed out
    assert next(stream).frame_idx == 1
    with pytest.raises(RuntimeError, match="out of memory"):
        next(stream)
