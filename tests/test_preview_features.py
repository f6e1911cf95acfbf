"""Previews reuse the frame's image features (sam2_plus/app/feature_store.py): the second click on a frame runs
no image encoder and gives exactly the result of a preview from scratch; the store is bounded in bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus import service
from sam2_plus.app.feature_store import CachedFeatures, FeaturesKey, FeatureStore, features_key, tensors_in
from sam2_plus.app.preview import preview_with_features
from sam2_plus.provider import shared_models

MODEL = MICRO
H, W = 64, 96


pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("features") / "clip.mp4", [pattern_frame(i, H, W) for i in range(3)],
                      fps=10)


def _request(clip, frame: int, points):
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": frame, "points": points}]}]}
    return service.prepare_request(clip, json.dumps(prompts), model=MODEL)


def _encoder_calls(clip, monkeypatch) -> list[int]:
    """Counts the image encoder's runs in the predictor the previews get."""
    request = _request(clip, 0, [[10, 10]])
    predictor = shared_models().video_predictor(request.model, request.device, request.weights, request.motion_aware)
    calls: list[int] = []
    original = predictor.model.encode_image
    monkeypatch.setattr(predictor.model, "encode_image", lambda image: calls.append(1) or original(image))
    return calls


def test_the_second_click_on_a_frame_skips_the_image_encoder_and_matches(clip, monkeypatch):
    calls = _encoder_calls(clip, monkeypatch)
    first = preview_with_features(_request(clip, 1, [[30, 20]]))
    assert len(calls) == 1 and first.features is not None
    assert first.features.key == features_key(_request(clip, 1, [[30, 20]]), 1)
    assert all(t.device.type == "cpu" for t in tensors_in(first.features.backbone))

    second_request = _request(clip, 1, [[60, 40]])
    cached = preview_with_features(second_request, first.features)
    assert len(calls) == 1  # no encoder: the prompt encoder and the decoder only
    fresh = preview_with_features(second_request)
    assert len(calls) == 2
    np.testing.assert_array_equal(cached.record.masks, fresh.record.masks)
    np.testing.assert_array_equal(cached.record.scores, fresh.record.scores)

    other_frame = preview_with_features(_request(clip, 2, [[30, 20]]), first.features)
    assert len(calls) == 3 and other_frame.features.key.frame == 2  # features of another frame are not used


def _features(frame: int, megabytes: int) -> CachedFeatures:
    key = FeaturesKey("video:1:2", frame, MODEL, "seeded", "cpu")
    return CachedFeatures(key, {"backbone_fpn": [torch.zeros(megabytes * 2**18)]})  # float32: 4 bytes each


def test_the_store_keeps_the_recently_used_within_its_bytes():
    store = FeatureStore(max_bytes=3 * 2**20)
    for frame in range(3):
        store.put(_features(frame, 1))
    assert len(store) == 3 and store.nbytes == 3 * 2**20
    assert store.get(_features(0, 1).key) is not None  # frame 0 is now the most recent
    store.put(_features(3, 1))
    assert store.get(_features(1, 1).key) is None  # the least recently used went
    assert store.get(_features(0, 1).key) is not None and store.nbytes <= store.max_bytes
    store.put(_features(9, 4))  # larger than the whole store: not kept, nothing evicted for it
    assert store.get(_features(9, 4).key) is None and len(store) == 3


def test_a_replaced_video_file_gets_a_new_key(clip, tmp_path):
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(clip.read_bytes())
    before = features_key(_request(copy, 0, [[10, 10]]), 0)
    write_clip(copy, [pattern_frame(i + 5, H, W) for i in range(3)], fps=10)
    assert features_key(_request(copy, 0, [[10, 10]]), 0) != before
