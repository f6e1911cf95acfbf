"""EdgeTAM through transformers (sam2_plus/video/edgetam.py) with the micro test-edgetam (seeded weights, no
download): the adapter's results equal transformers' own session API on the same inputs, exactly (prompts on
several frames, objects added later, both directions, streaming); what transformers' forward cannot do (a mask
prompt beside a decoded object) works; removal; bounded memory; the refusals where a request enters; the
service and the CLI end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from media_clips import pattern_frame, write_clip
from sam2_plus import build_model
from sam2_plus.build import build_video_predictor, predictor_over
from sam2_plus.config import load_config
from sam2_plus.edgetam_network import processor_for
from sam2_plus.media.decode import MediaError
from sam2_plus.prompts import PromptError
from sam2_plus.provider import ModelCache
from sam2_plus.service import TrackError, TrackOutputs, prepare_request, run_tracking
from sam2_plus.track import main
from sam2_plus.video.edgetam import EdgeTamPredictor
from sam2_plus.weights import CheckpointError, WeightsSource, download_checkpoint

MICRO_EDGETAM = "test-edgetam"
H, W, T = 40, 56, 7


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model(MICRO_EDGETAM, checkpoint="seeded:3", device="cpu")


@pytest.fixture(scope="module")
def frames():
    return [pattern_frame(i, H, W) for i in range(T)]


def reference_logits(net, out):
    """transformers' own post-processing of a session output: [N, H, W] logits at video size."""
    return processor_for(net).post_process_masks([out.pred_masks], original_sizes=[[H, W]], binarize=False)[0][:, 0]


def run_reference(net, frames, steps, reverse_from=None):
    """transformers' session API: `steps` = (frame, obj_id, inputs) prompts, each run at once, then a forward
    propagation and, with `reverse_from`, a reverse one from there. Returns the prompt and propagation outputs."""
    proc = processor_for(net)
    session = proc.init_video_session(video=frames)
    outs = []
    with torch.inference_mode():
        for frame, obj_id, inputs in steps:
            proc.add_inputs_to_inference_session(session, frame_idx=frame, obj_ids=obj_id, **inputs)
            outs.append(net(inference_session=session, frame_idx=frame))
        outs += list(net.propagate_in_video_iterator(session))
        if reverse_from is not None:
            outs += list(net.propagate_in_video_iterator(session, start_frame_idx=reverse_from, reverse=True))
    return outs


def assert_same(results, outs, net):
    assert [r.frame_idx for r in results] == [int(o.frame_idx) for o in outs]
    for result, out in zip(results, outs):
        assert result.obj_ids == list(out.object_ids)
        assert torch.equal(result.mask_logits, reference_logits(net, out))
        assert torch.equal(result.object_scores, out.object_score_logits.reshape(-1).float())


def test_equals_transformers_session_on_prompts_frames_and_directions(net, frames):
    """Clicks on frame 2, a box for a second object added on frame 4; forward, then reverse from frame 4."""
    pred = EdgeTamPredictor(net)
    session = pred.init_state(frames)
    results = [pred.add_new_points_or_box(session, 2, 1, points=[[20, 15], [40, 30]], labels=[1, 0]),
               pred.add_new_points_or_box(session, 4, 5, box=[10, 8, 30, 35])]
    results += list(pred.propagate_in_video(session))
    results += list(pred.propagate_in_video(session, start_frame_idx=4, reverse=True))
    steps = [(2, 1, dict(input_points=[[[[20.0, 15.0], [40.0, 30.0]]]], input_labels=[[[1, 0]]])),
             (4, 5, dict(input_boxes=[[[10.0, 8.0, 30.0, 35.0]]]))]
    assert_same(results, run_reference(net, frames, steps, reverse_from=4), net)
    assert [r.frame_idx for r in results[2:]] == [2, 3, 4, 5, 6, 4, 3, 2, 1, 0]
    assert results[-1].boxes.shape == (2, 4) and results[-1].points.shape == (2, 2)


def test_one_mask_object_equals_transformers(net, frames):
    mask = np.zeros((H, W), bool)
    mask[10:25, 15:40] = True
    pred = EdgeTamPredictor(net)
    session = pred.init_state(frames)
    results = [pred.add_new_mask(session, 1, 3, mask)] + list(pred.propagate_in_video(session))
    assert_same(results, run_reference(net, frames, [(1, 3, dict(input_masks=torch.from_numpy(mask)))]), net)


def test_a_mask_prompt_beside_a_decoded_object(net, frames):
    """transformers' forward fails on a frame holding a mask prompt's output and a decoded one (their scores
    differ in shape); the adapter tracks both, the mask object's output being its mask."""
    mask = np.zeros((H, W), bool)
    mask[5:20, 5:30] = True
    pred = EdgeTamPredictor(net)
    session = pred.init_state(frames)
    pred.add_new_points_or_box(session, 0, 1, points=[[30, 20]])
    prompted = pred.add_new_mask(session, 0, 2, mask)
    assert prompted.obj_ids == [1, 2] and torch.equal(prompted.masks[1], torch.from_numpy(mask))
    results = list(pred.propagate_in_video(session))
    assert len(results) == T and all(r.mask_logits.shape == (2, H, W) for r in results)


def test_removing_an_object_equals_a_session_without_it(net, frames):
    pred = EdgeTamPredictor(net)
    session = pred.init_state(frames)
    pred.add_new_points_or_box(session, 0, 1, points=[[20, 15]])
    pred.add_new_points_or_box(session, 0, 2, box=[5, 5, 25, 30])
    ids, updated = pred.remove_object(session, 1)
    assert ids == [2] and [r.obj_ids for r in updated] == [[2]]
    results = list(pred.propagate_in_video(session))
    alone = pred.init_state(frames)
    pred.add_new_points_or_box(alone, 0, 2, box=[5, 5, 25, 30])
    for a, b in zip(results, pred.propagate_in_video(alone)):
        assert a.obj_ids == b.obj_ids == [2] and torch.equal(a.mask_logits, b.mask_logits)
    assert pred.remove_object(session, 99, strict=False) == ([2], [])


def test_streaming_equals_transformers_streaming_and_stays_bounded(net, frames):
    """Frames pushed one by one, an object prompted on frame 0 and another on frame 3; transformers' streaming
    API gets each prompt with its frame. The stream keeps `history` frames."""
    pred = EdgeTamPredictor(net)
    stream = pred.init_stream(history=2)
    results = []
    for k, frame in enumerate(frames):
        pushed = pred.push_frame(stream, frame)
        if k == 0:
            assert pushed.obj_ids == [] and pushed.mask_logits.shape == (0, H, W)
            pushed = pred.add_new_points_or_box(stream, 0, 1, points=[[20, 15]])
        if k == 3:
            pushed = pred.add_new_points_or_box(stream, 3, 2, box=[10, 8, 30, 35])
        results.append(pushed)
        assert len(dict.keys(stream.inner.processed_frames)) <= 2
    proc = processor_for(net)
    ref = proc.init_video_session()
    outs = []
    with torch.inference_mode():
        for k, frame in enumerate(frames):
            if k == 0:
                proc.add_inputs_to_inference_session(ref, frame_idx=0, obj_ids=1, input_points=[[[[20.0, 15.0]]]],
                                                     input_labels=[[[1]]], original_size=(H, W))
            if k == 3:
                proc.add_inputs_to_inference_session(ref, frame_idx=3, obj_ids=2, input_boxes=[[[10.0, 8.0, 30.0,
                                                                                                 35.0]]])
            outs.append(net(inference_session=ref, frame=pred.prepare_frame(frame)))
    assert_same(results, outs, net)
    with pytest.raises(PromptError, match="left the stream's history"):
        pred.add_new_points_or_box(stream, 1, 3, points=[[5, 5]])
    with pytest.raises(MediaError, match="new stream for another size"):
        pred.push_frame(stream, np.zeros((H + 2, W, 3), np.uint8))


@pytest.mark.model  # 36 frames: a few seconds on an idle CPU
def test_propagation_forgets_what_no_later_frame_reads(net):
    long = [pattern_frame(i, 16, 24) for i in range(36)]
    pred = EdgeTamPredictor(net)
    session = pred.init_state(long)
    pred.add_new_points_or_box(session, 0, 1, points=[[10, 10]])
    for _ in pred.propagate_in_video(session):
        pass
    kept = session.inner.output_dict_per_obj[0]["non_cond_frame_outputs"]
    # the last frames and those near the prompted frame (a reverse pass from it reads them)
    assert len(kept) <= 2 * (pred.memory_reach + 1) and 35 in kept and 1 in kept


@pytest.mark.parametrize("options, message", [
    (dict(motion_aware=True), "no motion-aware"),
    (dict(discovery="everything"), "cannot find objects"),
])
def test_refusals_where_a_request_enters(tmp_path, options, message):
    clip = write_clip(tmp_path / "c.mp4", [pattern_frame(i, H, W) for i in range(3)], fps=10)
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[10, 10]]}]}]}
    if "discovery" in options:
        from sam2_plus.discovery.settings import DiscoverySettings

        options = dict(discovery=DiscoverySettings(options["discovery"]))
    with pytest.raises(TrackError, match=message):
        prepare_request(clip, prompts, model=MICRO_EDGETAM, weights=WeightsSource("seeded"), **options)
    box = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [1, 1, 9, 9]}]}]}
    with pytest.raises(PromptError, match="no 'box' task"):
        prepare_request(clip, box, model=MICRO_EDGETAM, weights=WeightsSource("seeded"))


def test_no_finder_no_options_it_lacks():
    from sam2_plus.config import feature_problem
    from sam2_plus.discovery.settings import DiscoverySettings

    models = ModelCache()
    with pytest.raises(TrackError, match="cannot find objects"):
        models.finder(DiscoverySettings("everything"), MICRO_EDGETAM, "cpu", WeightsSource("seeded"))
    assert "cannot find objects" in feature_problem(MICRO_EDGETAM, finds=True)
    assert feature_problem("sam2.1-tiny", motion_aware=True, finds=True) is None
    with pytest.raises(ValueError, match="masks only"):
        build_video_predictor(MICRO_EDGETAM, "seeded", "cpu", task="box")
    with pytest.raises(ValueError, match="precision only"):
        build_video_predictor(MICRO_EDGETAM, "seeded", "cpu", keep_all_memory=True)


def test_offline_hub_names_the_repository(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as error:
        download_checkpoint(load_config("edgetam"))
    text = str(error.value)
    assert "yonigozlan/EdgeTAM-hf" in text and "config.json and model.safetensors" in text and "folder" in text


def test_seeded_weights_are_deterministic_per_seed():
    a, b, c = (build_model(MICRO_EDGETAM, spec, "cpu") for spec in ("seeded:1", "seeded:1", "seeded:2"))
    key = "mask_decoder.iou_prediction_head.proj_out.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key]) and not torch.equal(a.state_dict()[key],
                                                                                    c.state_dict()[key])
    assert isinstance(predictor_over(a), EdgeTamPredictor)


def test_service_and_cli_track_with_edgetam(tmp_path, capsys, seeded_weights):
    clip = write_clip(tmp_path / "c.mp4", [pattern_frame(i, H, W) for i in range(3)], fps=10)
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 1, "points": [[20, 15]]}]},
                           {"id": 2, "task": "mask", "prompts": [{"frame": 2, "box": [5, 5, 30, 30]}]}]}
    request = prepare_request(clip, prompts, model=MICRO_EDGETAM, device="cpu", weights=WeightsSource("seeded"))
    out = tmp_path / "results.json"
    summary = run_tracking(request, TrackOutputs(results_json=out), models=ModelCache())
    assert summary.frames_done == 3 and out.is_file()
    status = main([str(clip), "--model", MICRO_EDGETAM, "--device", "cpu", "--points", "20,15", "--frame", "1",
                   "--json", str(tmp_path / "cli.json")])
    assert status == 0, capsys.readouterr().err
