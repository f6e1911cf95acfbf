"""EdgeTAM's image mode (sam2_plus/image/edgetam.py) with the micro test-edgetam (seeded weights, no download):
its masks, IoUs and low-res logits equal transformers' own image model (`EdgeTamModel` loaded with the
tracker's weights, fed by transformers' processor), exactly where the computation is the same; bad input gets
ImagePredictor's errors; the model cache, the still-image runs (clicks and boxes, Find objects' automatic masks),
the app's calls and the command line use it; discovery while tracking stays refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from media_clips import pattern_frame
from sam2_plus import build_model
from sam2_plus.edgetam_network import processor_for
from sam2_plus.errors import TrackError
from sam2_plus.image.automatic import AutomaticMaskGenerator
from sam2_plus.image.edgetam import EdgeTamImagePredictor
from sam2_plus.media.rle import decode_rle
from sam2_plus.image.predictor import ImagePredictor, build_image_predictor
from sam2_plus.provider import ModelCache
from sam2_plus.segment import cli
from sam2_plus.weights import WeightsSource

MICRO_EDGETAM = "test-edgetam"
H, W = 40, 56


@pytest.fixture(scope="module")
def net():
    return build_model(MICRO_EDGETAM, checkpoint="seeded:3", device="cpu")


@pytest.fixture(scope="module")
def reference(net):
    """transformers' image model with the tracker's image components' weights, and its processor."""
    import transformers as tf

    video = net.config
    config = tf.EdgeTamConfig(vision_config=video.vision_config,
                              prompt_encoder_config=video.prompt_encoder_config.to_dict(),
                              mask_decoder_config=video.mask_decoder_config.to_dict())
    model = tf.EdgeTamModel(config).eval()
    loaded = model.load_state_dict(net.state_dict(), strict=False)
    assert loaded.missing_keys == []
    processor = tf.Sam2Processor(image_processor=processor_for(net).image_processor, target_size=video.image_size)
    return model, processor


@pytest.fixture(scope="module")
def image():
    return pattern_frame(2, H, W)


def run_reference(reference, images, multimask=True, embeddings=None, **prompts):
    """transformers' path: the processor's pixels and coordinates, EdgeTamModel (on `embeddings` given, else on
    the pixels), the processor's upscaling. -> logits at each image's size (B of [P, M, H, W]), IoUs [B, P, M],
    low-res logits [B, P, M, h, w]."""
    model, processor = reference
    masks = prompts.pop("input_masks", None)
    inputs = processor(images=images, return_tensors="pt", **prompts)
    sizes = inputs.pop("original_sizes").tolist()
    if embeddings is not None:
        inputs.pop("pixel_values")
        inputs["image_embeddings"] = embeddings
    with torch.inference_mode():
        out = model(**inputs, input_masks=masks, multimask_output=multimask)
    rows = len(out.pred_masks)  # one image's embeddings may be repeated, a row per prompt
    logits = processor.post_process_masks(list(out.pred_masks), list(sizes) * rows if len(sizes) == 1 else sizes,
                                          binarize=False)
    return logits, out.iou_scores, out.pred_masks


def assert_equal_outputs(ours, theirs, image_row=0):
    masks, ious, low_res = ours
    logits, iou_scores, pred_masks = theirs
    assert torch.equal(torch.from_numpy(masks), logits[image_row][0])
    assert torch.equal(torch.from_numpy(ious), iou_scores[image_row, 0])
    assert torch.equal(torch.from_numpy(low_res), pred_masks[image_row, 0].clamp(-32, 32))


def test_clicks_equal_transformers_image_model(net, reference, image):
    images = EdgeTamImagePredictor(net)
    images.set_image(image)
    ours = images.predict(point_coords=[[20, 15], [40, 30]], point_labels=[1, 0], return_logits=True)
    assert ours[0].shape == (3, H, W) and ours[1].shape == (3,) and ours[2].shape == (3, 32, 32)
    assert_equal_outputs(ours, run_reference(reference, [image], input_points=[[[[20, 15], [40, 30]]]],
                                             input_labels=[[[1, 0]]]))
    binary = images.predict(point_coords=[[20, 15], [40, 30]], point_labels=[1, 0])[0]
    assert np.array_equal(binary, (ours[0] > 0).astype(np.float32))


def test_a_box_with_a_click_and_a_mask_alone_equal_transformers(net, reference, image):
    images = EdgeTamImagePredictor(net)
    images.set_image(image)
    ours = images.predict(point_coords=[[20, 15]], point_labels=[1], box=[10, 8, 30, 35], multimask_output=False,
                          return_logits=True)
    assert_equal_outputs(ours, run_reference(reference, [image], multimask=False, input_points=[[[[20, 15]]]],
                                             input_labels=[[[1]]], input_boxes=[[[10, 8, 30, 35]]]))
    earlier = ours[2]
    ours = images.predict(mask_input=earlier, return_logits=True)
    assert_equal_outputs(ours, run_reference(reference, [image], input_masks=torch.from_numpy(earlier)[None]))


def test_batches_of_prompts_and_images_match_transformers(net, reference, image):
    images = EdgeTamImagePredictor(net)
    images.set_image(image)
    masks, ious, low_res = images.predict(box=[[10, 8, 30, 35], [2, 2, 50, 38]], return_logits=True)
    logits, iou_scores, pred_masks = run_reference(reference, [image], input_boxes=[[[10, 8, 30, 35], [2, 2, 50, 38]]])
    torch.testing.assert_close(torch.from_numpy(masks), logits[0])  # transformers decodes them as one point batch
    torch.testing.assert_close(torch.from_numpy(ious), iou_scores[0])
    rows = [level.expand(2, -1, -1, -1) for level in reference[0].get_image_embeddings(
        reference[1](images=[image], return_tensors="pt").pixel_values)]
    exact = run_reference(reference, [image, image], embeddings=rows, input_boxes=[[[10, 8, 30, 35]], [[2, 2, 50, 38]]])
    for row in range(2):  # one image row per prompt: the computation is ours
        assert_equal_outputs((masks[row], ious[row], low_res[row]), exact, image_row=row)

    other = pattern_frame(5, 30, 64)
    images.set_image_batch([image, other])
    assert images.orig_hw == [(H, W), (30, 64)] and images.is_batch
    masks, ious, low_res = images.predict_batch([[[20, 15]], [[50, 10]]], [[1], [1]], return_logits=True)
    pixels = reference[1](images=[image, other], return_tensors="pt").pixel_values
    both = reference[0].get_image_embeddings(pixels)
    assert torch.equal(images.get_image_embedding(), both[-1])
    for row, (picture, click) in enumerate([(image, [20, 15]), (other, [50, 10])]):
        exact = run_reference(reference, [picture], embeddings=[level[row:row + 1] for level in both],
                              input_points=[[[click]]], input_labels=[[[1]]])
        assert_equal_outputs((masks[row], ious[row], low_res[row]), exact)


def test_the_embedding_is_transformers_and_the_network_is_the_trackers(net, reference, image):
    model, processor = reference
    cache, weights = ModelCache(), WeightsSource("seeded", seed=3)
    cached = cache.image_predictor(MICRO_EDGETAM, "cpu", weights)
    assert isinstance(cached, EdgeTamImagePredictor)
    assert cached.model is cache.video_predictor(MICRO_EDGETAM, "cpu", weights).model
    images = EdgeTamImagePredictor(net)
    images.set_image(image)
    pixels = processor(images=[image], return_tensors="pt").pixel_values
    assert torch.equal(images.get_image_embedding(), model.get_image_embeddings(pixels)[-1])
    images.reset_predictor()
    assert not images.is_image_set and images.orig_hw is None


def bad_calls():
    return [
        ("set_image", (np.zeros((4, 4), np.uint8),), {}),
        ("set_image", (np.zeros((4, 4, 3), np.float32),), {}),
        ("set_image_batch", ([],), {}),
        ("predict", (), dict(point_coords=[[1, 1]])),
        ("predict", (), dict(point_coords=[[100, 1]], point_labels=[1])),
        ("predict", (), dict(point_coords=[[1, 1]], point_labels=[7])),
        ("predict", (), dict(box=[30, 8, 10, 35])),
        ("predict", (), dict(box=[1, 2, 3])),
        ("predict", (), dict(point_coords=[[1, 1]], point_labels=[1], box=[[1, 1, 5, 5], [2, 2, 6, 6]])),
        ("predict", (), dict(point_coords=[[np.nan, 1]], point_labels=[1])),
        ("predict", (), dict(mask_input=np.zeros((2, 5, 5), np.float32))),
        ("predict_batch", ([[[1, 1]]], [[1]]), {}),
    ]


def raised(predictor, image, method, args, kwargs):
    if method.startswith("predict"):
        predictor.set_image(image)
    with pytest.raises(Exception) as error:
        getattr(predictor, method)(*args, **kwargs)
    return type(error.value), str(error.value)


def test_bad_input_gets_image_predictors_errors(net, image):
    sam2 = ImagePredictor(build_model("test-micro", checkpoint="seeded", device="cpu"))
    edgetam = EdgeTamImagePredictor(net)
    for method, args, kwargs in bad_calls():
        theirs = raised(sam2, image, method, args, kwargs)
        ours = raised(edgetam, image, method, args, kwargs)
        if "mask_input" in kwargs:  # the mask size is each network's
            assert ours[0] is theirs[0] and "mask_input must be 1x32x32 or Bx1x32x32" in ours[1]
        else:
            assert ours == theirs, method
    fresh = EdgeTamImagePredictor(net)
    with pytest.raises(RuntimeError, match="no image is set"):
        fresh.predict(point_coords=[[1, 1]], point_labels=[1])
    with pytest.raises(ValueError, match="EdgeTAM decodes the task 'mask' only, not 'box'"):
        EdgeTamImagePredictor(net, task="box")
    with pytest.raises(ValueError, match="resample is for SAM 2's networks"):
        build_image_predictor(net, resample="bicubic")


def test_the_command_line_segments_and_finds_with_edgetam(tmp_path, net, image, capsys):
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    prompts = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[20, 15]]}]}]})
    out = tmp_path / "out"
    assert cli.main([str(path), "--prompts", prompts, "--model", MICRO_EDGETAM, "--checkpoint", "seeded:3",
                     "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "results.json").read_text())
    assert document["model"] == MICRO_EDGETAM
    images = EdgeTamImagePredictor(net)
    images.set_image(image)
    masks, ious, _ = images.predict(point_coords=[[20, 15]], point_labels=[1])
    obj = document["objects"][0]
    assert obj["chosen"] == int(np.argmax(ious)) and len(obj["candidates"]) == 3
    assert np.array_equal(decode_rle(obj["mask"]), masks[obj["chosen"]] > 0)
    assert cli.main([str(path), "--everything", "--model", MICRO_EDGETAM, "--checkpoint", "seeded:3", "--density",
                     "coarse", "--pred-iou-thresh", "0", "--stability-thresh", "0", "--out", str(tmp_path / "found"),
                     "--quiet"]) == 0
    found = json.loads((tmp_path / "found/proposals.json").read_text())
    assert found["model"] == MICRO_EDGETAM and found["proposals"]


def test_the_automatic_mask_generator_runs_on_edgetam(net, image):
    """Every mask it keeps is a candidate of EdgeTAM's image predictor at its click (decoded there in batches of
    clicks, here one click at a time)."""
    images = EdgeTamImagePredictor(net)
    records = AutomaticMaskGenerator(images, points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0,
                                     box_nms_thresh=1.0).generate(image)
    assert len(records) > 8
    single = EdgeTamImagePredictor(net)
    single.set_image(image)
    for record in records:
        masks, ious, _ = single.predict(point_coords=record["point_coords"], point_labels=[1])
        index = int(np.argmin(np.abs(ious - record["predicted_iou"])))
        expected = torch.tensor(record["predicted_iou"], dtype=torch.float32)
        torch.testing.assert_close(torch.tensor(ious[index]), expected)
        assert np.mean(masks[index].astype(bool) == record["segmentation"]) > 0.999


def test_discovery_while_tracking_stays_refused():
    from sam2_plus.discovery.settings import DiscoverySettings

    with pytest.raises(TrackError, match="model test-edgetam cannot find objects while tracking"):
        ModelCache().finder(DiscoverySettings("everything"), MICRO_EDGETAM, "cpu", WeightsSource("seeded"))


def test_the_apps_image_calls_take_edgetam(tmp_path, monkeypatch, image):
    from sam2_plus.app.image_api import plan_find_objects, plan_segment_image
    from sam2_plus.app.settings import AppLimits
    from sam2_plus.segment import run_find_objects, run_segment_image

    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded:3")
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    prompts = {"objects": [{"id": 4, "task": "mask", "prompts": [{"frame": 0, "box": [10, 8, 30, 35]}]}]}
    request = plan_segment_image(str(path), prompts, {"model": MICRO_EDGETAM}, AppLimits())
    cache = ModelCache()
    outcome = run_segment_image(request, tmp_path / "out", cache)
    assert outcome.result.model == MICRO_EDGETAM and len(outcome.result.objects[0].candidates) == 1
    request = plan_find_objects(str(path), 0, {"model": MICRO_EDGETAM, "density": "coarse"}, AppLimits())
    assert run_find_objects(request, tmp_path / "found", cache).files