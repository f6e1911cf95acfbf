"""The model provider passed in (sam2_plus/provider.py): the service, a session and the app take one; the real
one (`ModelCache`) shares one network per (model, device, weights); stand-ins satisfy the small protocols; the
process's shared cache crosses to a ZeroGPU worker as a reference to the worker's inherited one."""

from __future__ import annotations

import pickle

import pytest

from app_fakes import FailingPredictor, GranularPredictor, QuickPredictor, StandInModels
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus import build_model
from sam2_plus.app.preview import preview_prompt
from sam2_plus.provider import ModelCache, ModelProvider, TrackingPredictor, shared_models
from sam2_plus.service import TrackFailed, prepare_request, run_tracking
from sam2_plus.video.predictor import VideoPredictor
from sam2_plus.weights import CheckpointError, parse_weights_spec

PROMPTS = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 1, "box": [4, 4, 20, 20]}]}]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("provider") / "clip.mp4", [pattern_frame(i, 32, 48) for i in range(3)])


def test_the_real_predictor_and_the_stand_ins_satisfy_the_protocols():
    net = build_model(MICRO, checkpoint=None, device="cpu")
    for predictor in (VideoPredictor(net), QuickPredictor(), GranularPredictor()):
        assert isinstance(predictor, TrackingPredictor)
    assert not isinstance(object(), TrackingPredictor)
    for models in (ModelCache(), shared_models(), StandInModels(QuickPredictor())):
        assert isinstance(models, ModelProvider)


def test_the_service_and_a_preview_ask_the_provider_they_are_given(clip):
    models = StandInModels(QuickPredictor())
    request = prepare_request(clip, PROMPTS, model=MICRO, device="cpu", weights=parse_weights_spec("seeded:2"))
    summary = run_tracking(request, models=models)
    assert summary.frames_done == 3 and models.calls == 1
    record = preview_prompt(request, models)
    assert record.frame_idx == 1 and record.masks[0][4:20, 4:20].all() and models.calls == 2
    asked = []
    run_tracking(request, models=StandInModels(make=lambda *key: asked.append(key) or QuickPredictor()))
    assert asked == [(MICRO, "cpu", parse_weights_spec("seeded:2"), False)]


def test_a_failing_provider_fails_the_job_before_it_starts(clip):
    request = prepare_request(clip, PROMPTS, model=MICRO)

    def unavailable(*key):
        raise CheckpointError("no weights here")

    with pytest.raises(CheckpointError, match="no weights here"):
        run_tracking(request, models=StandInModels(make=unavailable))
    failing = FailingPredictor(QuickPredictor(), 2, RuntimeError("boom"))
    with pytest.raises(TrackFailed, match="boom"):
        run_tracking(request, models=StandInModels(failing))


def test_the_shared_cache_crosses_to_another_process_as_a_reference():
    assert pickle.loads(pickle.dumps(shared_models())) is shared_models()
    with pytest.raises(TypeError, match="only the process's shared ModelCache"):
        pickle.dumps(ModelCache())


def test_an_image_predictor_shares_the_video_predictors_network():
    pytest.importorskip("sam2_plus.image.predictor")
    models, seeded = ModelCache(), parse_weights_spec("seeded:5")
    video = models.video_predictor(MICRO, "cpu", seeded)
    image = models.image_predictor(MICRO, "cpu", seeded)
    assert image.model is video.model and models.image_predictor(MICRO, "cpu", seeded) is not image
