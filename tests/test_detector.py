"""Discovery's text detector (sam2_plus/discovery/detector.py): a tiny randomly initialised Grounding DINO, built
from a transformers config and saved to a folder, through the real zero-shot-object-detection pipeline; the Hub's
absence; the pipeline's labels mapped to the phrases; the provider's cache of detectors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from sam2_plus.discovery.detector import (DetectorUnavailable, PipelineDetector, TextDetector, detections_from,
                                          load_detector, phrase_of)
from sam2_plus.discovery.found import Detection
from sam2_plus.provider import ModelCache
from sam2_plus.weights import CheckpointError

REPO_ID = "IDEA-Research/grounding-dino-tiny"
PHRASES = ("person", "red car", "dog")


def save_tiny_grounding_dino(folder: Path) -> Path:
    """A Grounding DINO of ~130 k parameters (1-block Swin of width 8, 1-layer BERT of width 16, 10 queries) with
    a BERT tokenizer over the phrases' words and the default image processor at 64..96 pixels."""
    from transformers import (BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, SwinConfig)

    tokenizer = save_tokenizer(folder)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=2, out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                      intermediate_size=16, max_position_embeddings=64)
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, num_queries=10, d_model=32,
                                 encoder_layers=1, decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
                                 encoder_attention_heads=2, decoder_attention_heads=2, num_feature_levels=3,
                                 encoder_n_points=1, decoder_n_points=1, max_text_len=32)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(folder)
    GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


def save_tiny_owlv2(folder: Path) -> Path:
    """An OWLv2 of ~9 k parameters (1-layer ViT of width 16 on 32x32 pixels, 1-layer text transformer); its text
    tower reads the BERT tokenizer's ids ([SEP] as the end token), enough for the pipeline's plumbing."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor

    tokenizer = save_tokenizer(folder)
    config = Owlv2Config(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=1, max_position_embeddings=16, pad_token_id=0, bos_token_id=2,
                         eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=1,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).eval().save_pretrained(folder)
    Owlv2ImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_tiny_omdet_turbo(folder: Path) -> Path:
    """An OmDet-Turbo of a few thousand parameters (Swin backbone of width 8, widths 16 elsewhere)."""
    from transformers import DetrImageProcessor, OmDetTurboConfig, OmDetTurboForObjectDetection, SwinConfig

    tokenizer = save_tokenizer(folder)
    backbone = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2,
                          out_indices=[2, 3, 4])
    config = OmDetTurboConfig(
        use_timm_backbone=False, backbone_config=backbone, image_size=64, num_queries=10,
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=1, max_position_embeddings=16),
        text_projection_in_dim=16, text_projection_out_dim=16, task_encoder_hidden_dim=16, class_embed_dim=16,
        encoder_hidden_dim=16, vision_features_channels=(16, 16, 16), encoder_in_channels=(16, 32, 64),
        encoder_attention_heads=1, encoder_dim_feedforward=16, decoder_hidden_dim=16, decoder_num_heads=1,
        decoder_num_layers=1, decoder_dim_feedforward=16)
    OmDetTurboForObjectDetection(config).eval().save_pretrained(folder)
    DetrImageProcessor().save_pretrained(folder)
    return folder


def save_tokenizer(folder: Path):
    """A BERT word-piece tokenizer over the phrases' words, saved into `folder`."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "person", "red", "car", "dog"])
                     + "\n")
    tokenizer = BertTokenizer(str(vocab))
    tokenizer.save_pretrained(folder)
    return tokenizer


@pytest.fixture(scope="module")
def tiny_detector_folder(tmp_path_factory) -> Path:
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("detector") / "tiny-grounding-dino")


@pytest.fixture(scope="module")
def tiny_detector(tiny_detector_folder) -> PipelineDetector:
    return load_detector(str(tiny_detector_folder), "cpu")


def scene(height: int = 90, width: int = 120) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    image[20:60, 10:50] = (200, 30, 30)
    image[50:80, 70:115] = (30, 180, 60)
    return image


# --------------------------------------------------------------------------- the real pipeline path


def test_tiny_grounding_dino_detects_through_the_pipeline(tiny_detector):
    image = scene()
    assert isinstance(tiny_detector, TextDetector) and tiny_detector.device == torch.device("cpu")
    found = tiny_detector.detect(image, PHRASES, threshold=0.0)
    assert found and all(isinstance(d, Detection) for d in found)
    assert {d.label for d in found} == set(PHRASES)  # each phrase's boxes come back under its own name
    for d in found:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 120 and 0 <= y1 < y2 <= 90
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)

    threshold = float(np.median(scores))
    kept = tiny_detector.detect(image, PHRASES, threshold=threshold)
    assert 0 < len(kept) < len(found) and all(d.score >= threshold for d in kept)


def test_tiny_owlv2_detects_through_the_pipeline(tmp_path):
    """OWLv2 pads the image to a square and may place boxes past its edge: they come back clipped to it."""
    detector = load_detector(str(save_tiny_owlv2(tmp_path / "tiny-owlv2")), "cpu")
    found = detector.detect(scene(), PHRASES, threshold=0.0)
    assert found and {d.label for d in found} == set(PHRASES)
    for d in found:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 120 and 0 <= y1 < y2 <= 90


def test_omdet_turbo_which_the_pipeline_cannot_feed_is_refused_when_loaded(tmp_path):
    """The pipeline lists OmDet-Turbo but gives every model input_ids, which OmDet-Turbo's forward does not take
    (transformers 5.25: a TypeError at the first call). The detector says so at load time instead."""
    with pytest.raises(DetectorUnavailable, match=r"\(omdet-turbo\) cannot run in transformers' zero-shot"):
        load_detector(str(save_tiny_omdet_turbo(tmp_path / "tiny-omdet")), "cpu")


def test_phrases_batched_give_what_each_phrase_alone_gives(tiny_detector):
    image = scene()
    together = tiny_detector.detect(image, PHRASES, threshold=0.0)
    for phrase in PHRASES:
        alone = tiny_detector.detect(image, (phrase,), threshold=0.0)
        mine = [d for d in together if d.label == phrase]
        assert [d.box for d in alone] == [d.box for d in mine]
        assert np.allclose([d.score for d in alone], [d.score for d in mine], atol=1e-5)


def test_detect_checks_its_image(tiny_detector):
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        tiny_detector.detect(scene().astype(np.float32), PHRASES, 0.3)
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        tiny_detector.detect(scene()[..., 0], PHRASES, 0.3)
    assert tiny_detector.detect(scene(), (), 0.0) == []


# --------------------------------------------------------------------------- weights: cache, offline, no Hub


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_without_the_hub_offline_fails_at_once_naming_the_checkpoint(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DetectorUnavailable) as err:
        load_detector(REPO_ID, "cpu")
    assert time.monotonic() - start < 2.0
    assert isinstance(err.value, CheckpointError)
    message = str(err.value)
    assert REPO_ID in message and "HF_HUB_OFFLINE is set" in message and f"hf download {REPO_ID}" in message
    assert REPO_ID in err.value.for_settings and "Find panel" in err.value.for_settings


def test_unreachable_hub_fails_at_once_naming_the_checkpoint(empty_hub_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # a closed loopback port
    start = time.monotonic()
    with pytest.raises(DetectorUnavailable, match="cannot be reached") as err:
        load_detector(REPO_ID, "cpu")
    assert time.monotonic() - start < 2.0
    assert REPO_ID in str(err.value) and "http://127.0.0.1:9" in str(err.value)


def test_a_cached_copy_is_used_offline(empty_hub_cache, tiny_detector_folder, monkeypatch):
    """The Hub cache's layout (models--owner--name/snapshots/<commit>, refs/main) holding the tiny model."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hub_cache / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in tiny_detector_folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    detector = load_detector(REPO_ID, "cpu")
    assert detector.checkpoint == REPO_ID
    assert {d.label for d in detector.detect(scene(), PHRASES, 0.0)} == set(PHRASES)


def test_a_folder_without_a_model_or_a_bad_name_is_told(tmp_path):
    with pytest.raises(DetectorUnavailable, match="cannot load the detector .*zero-shot-object-detection"):
        load_detector(str(tmp_path), "cpu")
    with pytest.raises(DetectorUnavailable, match="neither a model folder nor a Hugging Face Hub repository id"):
        load_detector(str(tmp_path / "no" / "such" / "folder"), "cpu")


# --------------------------------------------------------------------------- labels -> phrases


@pytest.mark.parametrize("label, phrase", [
    ("person", "person"),
    ("Red  Car.", "red car"),  # case, spaces and periods do not count
    ("car", "red car"),  # a sub-span of a phrase
    ("red", "red car"),
    ("person red car", "person"),  # phrases joined: the one that begins first
    ("red car person", "red car"),
    ("a red car", "red car"),  # a phrase inside a longer label
    ("dog", "dog"),
    ("cat", None),
    ("", None),
    (" . ", None),
])
def test_phrase_of(label, phrase):
    assert phrase_of(label, ("person", "red car", "dog")) == phrase


def test_phrase_of_prefers_the_exact_phrase_then_the_given_order():
    assert phrase_of("car", ("red car", "car")) == "car"
    assert phrase_of("car", ("red car", "blue car")) == "red car"
    assert phrase_of("red car", ("red", "red car")) == "red car"
    assert phrase_of("big red car", ("red", "red car")) == "red car"  # same start: the longer phrase


def test_detections_from_maps_clips_filters_and_sorts():
    raw = [
        {"score": 0.4, "label": "car", "box": {"xmin": -5, "ymin": 10, "xmax": 50, "ymax": 200}},
        {"score": 0.9, "label": "Person.", "box": {"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}},
        {"score": 0.8, "label": "cat", "box": {"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}},
        {"score": 0.7, "label": "dog", "box": {"xmin": 130, "ymin": 2, "xmax": 150, "ymax": 40}},  # off the image
        {"score": 0.2, "label": "person", "box": {"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}},  # below
    ]
    assert detections_from(raw, ("person", "red car", "dog"), 0.3, (100, 120)) == [
        Detection((1.0, 2.0, 30.0, 40.0), 0.9, "person"),
        Detection((0.0, 10.0, 50.0, 100.0), 0.4, "red car"),
    ]


# --------------------------------------------------------------------------- the provider


def test_model_cache_keeps_one_detector_per_checkpoint_and_device(tiny_detector_folder):
    models = ModelCache()
    first = models.detector(str(tiny_detector_folder), "cpu")
    assert isinstance(first, PipelineDetector)
    assert models.detector(str(tiny_detector_folder), "cpu") is first
    assert models.detector(str(tiny_detector_folder)) is first  # None: the default device, cpu here
    models.clear()
    assert models.detector(str(tiny_detector_folder), "cpu") is not first


def test_model_cache_passes_on_an_unavailable_detector(empty_hub_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DetectorUnavailable, match=REPO_ID):
        ModelCache().detector(REPO_ID, "cpu")
