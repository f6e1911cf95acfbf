"""The image predictor (sam2_plus/image/predictor.py): SAM 2's `SAM2ImagePredictor` API.

- Input checking and the API's shapes with the micro model (fast).
- Parity with Meta's `SAM2ImagePredictor` (a test-only oracle: the `sam2` package) for SAM 2.1 tiny and small
  with the stand-in weights of ../shared/golden/seeded_weights.py on a real 1280x720 frame: clicks with and
  without multimask output, a box, batched boxes, a mask from an earlier call's low-res logits, logits,
  relative coordinates, and set_image_batch + predict_batch.
- SAM 2++ (and the micro model, built like it): the image predictor gives what the video predictor gives on a
  one-frame video for a click, a box (mask and box task) and a click on a mask prompt.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from conftest import SHARED
from micro_model import MICRO
from sam2_plus import ImagePredictor, PromptError, build_image_predictor, build_model
from sam2_plus.build import predictor_over
from sam2_plus.image.predictor import LOW_RES_LOGIT_LIMIT
from sam2_plus.media.decode import FrameSource, MediaError

# Measured on this machine against Meta's predictor, same process: every output bit-identical (max |diff| 0.0)
# for tiny and small. These bounds leave room only for float rounding between kernels, not for behaviour.
LOGIT_ATOL = 1e-4
IOU_ATOL = 1e-5
META_CONFIGS = {"sam2.1-tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
                "sam2.1-small": "configs/sam2.1/sam2.1_hiera_s.yaml"}


def synthetic_image(height: int = 90, width: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    image[height // 4: height // 2, width // 3: width // 2] = (220, 40, 40)
    return image


def real_frame(video: str = "01_dog.mp4", index: int = 0) -> np.ndarray:
    path = SHARED / "data" / "videos" / video
    if not path.is_file():
        pytest.skip(f"{path} is not present (../shared holds the test videos)")
    with FrameSource(str(path)) as frames:
        return np.array(frames[index])


@pytest.fixture(scope="module")
def micro() -> ImagePredictor:
    predictor = build_image_predictor(MICRO, checkpoint="seeded")
    predictor.set_image(synthetic_image())
    return predictor


# --------------------------------------------------------------------------- input checking (micro)


def test_predict_before_set_image_raises():
    predictor = build_image_predictor(MICRO, checkpoint="seeded")
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(np.array([[1, 2]]), np.array([1]))
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.get_image_embedding()
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.decode(torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.int32))


@pytest.mark.parametrize("image, message", [
    (np.zeros((20, 30, 3), np.float32), "uint8"),
    (np.zeros((20, 30), np.uint8), "HxWx3"),
    (np.zeros((20, 30, 4), np.uint8), "HxWx3"),
    (np.zeros((0, 30, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_image_is_refused(image, message):
    predictor = build_image_predictor(MICRO, checkpoint="seeded")
    with pytest.raises(MediaError, match=message):
        predictor.set_image(image)
    assert not predictor.is_image_set


def test_bad_image_batch_is_refused(micro):
    with pytest.raises(MediaError, match="non-empty list"):
        build_image_predictor(MICRO, checkpoint="seeded").set_image_batch([])
    with pytest.raises(MediaError, match="image 1"):
        build_image_predictor(MICRO, checkpoint="seeded").set_image_batch([synthetic_image(), np.zeros((4, 4))])


@pytest.mark.parametrize("kwargs, message", [
    (dict(point_coords=[[10, 10]]), "go together"),
    (dict(point_labels=[1]), "go together"),
    (dict(point_coords=[10, 10], point_labels=[1]), "Nx2"),
    (dict(point_coords=[[10, 10]], point_labels=[1, 1]), "shape"),
    (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), "no points"),
    (dict(point_coords=[[121, 10]], point_labels=[1]), "outside the image"),
    (dict(point_coords=[[10, -1]], point_labels=[1]), "outside the image"),
    (dict(point_coords=[[np.nan, 10]], point_labels=[1]), "finite"),
    (dict(point_coords=[[10, 10]], point_labels=[5]), "point_labels"),
    (dict(point_coords=[["a", 10]], point_labels=[1]), "numbers"),
    (dict(box=[1, 2, 3]), r"\[x0, y0, x1, y1\]"),
    (dict(box=[50, 2, 10, 30]), "x0 <= x1"),
    (dict(box=[0, 0, 200, 30]), "outside the image"),
    (dict(mask_input=np.zeros((1, 64, 64))), "mask_input"),
    (dict(mask_input=np.zeros((32, 32))), "mask_input"),
    (dict(point_coords=np.zeros((2, 1, 2)), point_labels=np.ones((2, 1)), box=np.zeros((3, 4))), "batch sizes"),
    (dict(point_coords=[[0.5, 1.5]], point_labels=[1], normalize_coords=False), "outside the image"),
])
def test_bad_prompt_is_refused(micro, kwargs, message):
    with pytest.raises(PromptError, match=message):
        micro.predict(**kwargs)


def test_bad_options_are_refused():
    net = build_model(MICRO, checkpoint="seeded", device="cpu")
    with pytest.raises(ValueError, match="task"):
        ImagePredictor(net, task="keypoint")
    with pytest.raises(ValueError, match="Gaussian heatmap"):
        ImagePredictor(net, task="point")
    with pytest.raises(ValueError, match="resample"):
        ImagePredictor(net, resample="nearest")
    with pytest.raises(ValueError, match="checkpoint"):
        build_image_predictor(net, checkpoint="seeded")


def test_predict_batch_needs_a_batch(micro):
    with pytest.raises(RuntimeError, match="set_image_batch"):
        micro.predict_batch([np.array([[10, 10]])], [np.array([1])])
    batch = build_image_predictor(MICRO, checkpoint="seeded")
    batch.set_image_batch([synthetic_image(), synthetic_image(60, 50, seed=1)])
    with pytest.raises(ValueError, match="1 entries for 2 images"):
        batch.predict_batch([np.array([[10, 10]])], [np.array([1])])


# --------------------------------------------------------------------------- the API (micro)


def test_shapes_are_sam2s(micro):
    size = micro.model.sam_prompt_encoder.mask_input_size
    masks, ious, low = micro.predict(np.array([[40, 30]]), np.array([1]))
    assert masks.shape == (3, 90, 120) and ious.shape == (3,) and low.shape == (3, *size)
    assert masks.dtype == np.float32 and set(np.unique(masks)) <= {0.0, 1.0}
    assert np.abs(low).max() <= LOW_RES_LOGIT_LIMIT
    masks, ious, low = micro.predict(np.array([[40, 30]]), np.array([1]), multimask_output=False, return_logits=True)
    assert masks.shape == (1, 90, 120) and ious.shape == (1,) and low.shape == (1, *size)
    assert len(np.unique(masks)) > 2  # logits
    boxes = np.array([[10, 10, 60, 50], [30, 20, 110, 80], [0, 0, 120, 90]])
    masks, ious, low = micro.predict(box=boxes)
    assert masks.shape == (3, 3, 90, 120) and ious.shape == (3, 3) and low.shape == (3, 3, *size)
    assert micro.orig_hw == [(90, 120)] and micro.is_image_set and not micro.is_batch


def test_torch_level_is_what_predict_uses(micro):
    """decode / to_model_coords / upscale (what the automatic mask generator batches over) give predict's
    outputs."""
    clicks, labels = np.array([[40, 30], [100, 70]]), np.array([1, 0])
    masks, ious, low = micro.predict(clicks, labels, return_logits=True)
    coords = micro.to_model_coords(torch.tensor(clicks[None], dtype=torch.float32), micro.orig_hw[0])
    assert torch.allclose(coords, torch.tensor([[[40 / 120 * 128, 30 / 90 * 128], [100 / 120 * 128, 70 / 90 * 128]]]))
    out = micro.decode(coords, torch.tensor(labels[None], dtype=torch.int32))
    assert out.low_res_logits.shape == (1, 3, *micro.model.sam_prompt_encoder.mask_input_size)
    assert out.ious.shape == (1, 3) and out.object_scores.shape == (1, 1)
    np.testing.assert_array_equal(out.low_res_logits[0].numpy(), low)
    np.testing.assert_array_equal(out.ious[0].numpy(), ious)
    np.testing.assert_array_equal(micro.upscale(out.unclamped_logits, micro.orig_hw[0])[0].numpy(), masks)


def test_embedding_reset_and_batch(micro):
    embed = micro.get_image_embedding()
    assert embed.shape == (1, micro.model.hidden_dim, *micro.model.sam_prompt_encoder.image_embedding_size)
    assert micro.features["image_embed"] is embed and len(micro.features["high_res_feats"]) == 2
    images = [synthetic_image(), synthetic_image(60, 50, seed=1)]
    batch = build_image_predictor(MICRO, checkpoint="seeded")
    batch.set_image_batch(images)
    assert batch.orig_hw == [(90, 120), (60, 50)] and batch.is_batch
    prompts = [np.array([[40, 30]]), np.array([[20, 20]])]
    masks, ious, lows = batch.predict_batch(prompts, [np.array([1]), np.array([1])], box_batch=[None, [5, 5, 40, 50]])
    assert [m.shape for m in masks] == [(3, 90, 120), (3, 60, 50)]
    single = build_image_predictor(MICRO, checkpoint="seeded")
    for i, image in enumerate(images):
        single.set_image(image)
        m, iou, low = single.predict(prompts[i], np.array([1]), box=[None, [5, 5, 40, 50]][i])
        np.testing.assert_allclose(lows[i], low, atol=1e-5)
        np.testing.assert_allclose(ious[i], iou, atol=1e-6)
    single.reset_predictor()
    assert not single.is_image_set and single.orig_hw is None
    with pytest.raises(RuntimeError, match="set_image"):
        single.predict(prompts[0], np.array([1]))


# --------------------------------------------------------------------------- parity with Meta's predictor


def _meta_predictor(name: str):
    pytest.importorskip("sam2")
    seeded = SHARED / "golden" / "seeded_weights.py"
    if not seeded.is_file():
        pytest.skip("../shared is not present (seeded_weights.py lives in ../shared/golden)")
    spec = importlib.util.spec_from_file_location("golden_seeded_weights", seeded)
    module = sys.modules.setdefault("golden_seeded_weights", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    net = build_sam2(META_CONFIGS[name], ckpt_path=None, device="cpu")
    net.load_state_dict(module.seeded_state_dict(net.state_dict(), 0), strict=True)
    return SAM2ImagePredictor(net)


@pytest.fixture(scope="module", params=sorted(META_CONFIGS))
def meta_pair(request):
    """(Meta's predictor, ours) on the same 1280x720 frame with the same seeded weights."""
    frame = real_frame()
    theirs = _meta_predictor(request.param)
    ours = build_image_predictor(request.param, checkpoint="seeded")
    theirs.set_image(frame)
    ours.set_image(frame)
    return theirs, ours


def assert_same_outputs(theirs, ours, what: str) -> None:
    masks, ious, low = (np.asarray(x) for x in theirs)
    our_masks, our_ious, our_low = ours
    assert our_masks.shape == masks.shape and our_ious.shape == ious.shape and our_low.shape == low.shape, what
    if masks.dtype == np.float32 and set(np.unique(masks)) <= {0.0, 1.0}:
        np.testing.assert_array_equal(our_masks, masks, err_msg=what)
    else:
        np.testing.assert_allclose(our_masks, masks, rtol=0, atol=LOGIT_ATOL, err_msg=what)
    np.testing.assert_allclose(our_ious, ious, rtol=0, atol=IOU_ATOL, err_msg=what)
    np.testing.assert_allclose(our_low, low, rtol=0, atol=LOGIT_ATOL, err_msg=what)


PARITY_PROMPTS = {
    "click, multimask": dict(point_coords=np.array([[640, 400]]), point_labels=np.array([1])),
    "clicks, one mask": dict(point_coords=np.array([[640, 400], [300, 200]]), point_labels=np.array([1, 0]),
                             multimask_output=False),
    "box": dict(box=np.array([420.0, 180.0, 900.0, 650.0]), multimask_output=False),
    "box and click": dict(box=np.array([420.0, 180.0, 900.0, 650.0]), point_coords=np.array([[600, 500]]),
                          point_labels=np.array([0])),
    "batched boxes": dict(box=np.array([[420, 180, 900, 650], [0, 0, 640, 360], [700, 300, 1279, 719.5]])),
    "logits": dict(point_coords=np.array([[200, 600]]), point_labels=np.array([1]), return_logits=True),
    "relative coordinates": dict(point_coords=np.array([[0.25, 0.75], [0.5, 0.5]]), point_labels=np.array([1, 1]),
                                 normalize_coords=False),
}


@pytest.mark.parametrize("prompt", sorted(PARITY_PROMPTS))
def test_equals_meta_image_predictor(meta_pair, prompt):
    theirs, ours = meta_pair
    kwargs = PARITY_PROMPTS[prompt]
    assert_same_outputs(theirs.predict(**kwargs), ours.predict(**kwargs), prompt)


def test_equals_meta_with_an_earlier_mask(meta_pair):
    theirs, ours = meta_pair
    click = dict(point_coords=np.array([[640, 400]]), point_labels=np.array([1]))
    _, ious, low = theirs.predict(**click)
    previous = low[np.argmax(ious)][None]
    follow_up = dict(point_coords=np.array([[640, 400], [520, 300]]), point_labels=np.array([1, 0]),
                     mask_input=previous, multimask_output=False)
    assert_same_outputs(theirs.predict(**follow_up), ours.predict(**follow_up), "click + mask_input")
    assert_same_outputs(theirs.predict(mask_input=previous), ours.predict(mask_input=previous), "mask_input alone")
    np.testing.assert_array_equal(ours.get_image_embedding().numpy(), theirs.get_image_embedding().numpy())


@pytest.mark.parametrize("name", sorted(META_CONFIGS))
def test_equals_meta_image_batch(name):
    images = [real_frame("01_dog.mp4", 0), real_frame("bedroom.mp4", 10)]
    theirs, ours = _meta_predictor(name), build_image_predictor(name, checkpoint="seeded")
    theirs.set_image_batch(images)
    ours.set_image_batch(images)
    assert ours.orig_hw == [(720, 1280), (540, 960)]
    kwargs = dict(point_coords_batch=[np.array([[640, 400]]), np.array([[480, 270], [100, 100]])],
                  point_labels_batch=[np.array([1]), np.array([1, 0])],
                  box_batch=[None, np.array([300, 100, 700, 500])])
    got, expected = ours.predict_batch(**kwargs), theirs.predict_batch(**kwargs)
    for i in range(len(images)):
        assert_same_outputs([column[i] for column in expected], [column[i] for column in got], f"image {i}")


# --------------------------------------------------------------------------- SAM 2++: image == one-frame video


def _video_and_image(name: str, weights: str, frame: np.ndarray):
    """A video predictor and an image predictor over one network; the image predictor resizes as the video
    loader does. Holes are not filled in the video's output (the image predictor's default)."""
    net = build_model(name, checkpoint=weights, device="cpu")
    video = predictor_over(net, fill_hole_area=0)
    image = ImagePredictor(net, resample="bicubic")
    image.set_image(frame)
    return video, video.init_state([frame]), image


def _assert_video_result(result, obj_id: int, decode, logits: np.ndarray, best: int) -> None:
    """The video's output of an object: the image predictor's chosen candidate when the object score says
    present, else absent (SAM 2's -1024 logits) with the same object score."""
    row = result.obj_ids.index(obj_id)
    score = float(decode.object_scores[0, 0])
    np.testing.assert_allclose(float(result.object_scores[row]), score, rtol=0, atol=IOU_ATOL)
    if score > 0:
        np.testing.assert_allclose(result.mask_logits[row].numpy(), logits[best], rtol=0, atol=LOGIT_ATOL)
    else:
        assert bool((result.mask_logits[row] == -1024.0).all())


# (model, weights, frame, whether the click's object is present): both branches of _assert_video_result run
ONE_FRAME_CASES = [(MICRO, "seeded:4", synthetic_image, True), (MICRO, "seeded", synthetic_image, False),
                   ("sam2++", "seeded", real_frame, True)]


@pytest.mark.parametrize("name, weights, frame_of, click_present", ONE_FRAME_CASES)
def test_sam2plus_image_equals_one_frame_video(name, weights, frame_of, click_present):
    frame = frame_of()
    height, width = frame.shape[:2]
    video, session, image = _video_and_image(name, weights, frame)
    hw = (height, width)

    def decode(task, clicks=None, labels=None, box=None, mask=None, multimask=True):
        image.task = task
        coords = None if clicks is None else image.to_model_coords(torch.tensor([clicks], dtype=torch.float32), hw)
        boxes = None if box is None else image.to_model_coords(torch.tensor([box], dtype=torch.float32).reshape(
            1, 2, 2), hw).reshape(1, 4)
        out = image.decode(coords, None if labels is None else torch.tensor([labels], dtype=torch.int32), boxes,
                           mask, multimask)
        logits = image.upscale(out.unclamped_logits, hw)[0].numpy()
        return out, logits, int(out.ious[0].argmax()) if multimask else 0

    click = [[width * 0.5, height * 0.55]]
    out, logits, best = decode("mask", click, [1])  # one click: multimask output, the best candidate
    assert (float(out.object_scores[0, 0]) > 0) == click_present
    masks, ious, _ = image.predict(np.array(click), np.array([1]), return_logits=True)
    np.testing.assert_array_equal(masks, logits)
    np.testing.assert_array_equal(ious, out.ious[0].numpy())
    result = video.add_new_points_or_box(session, 0, 1, points=click, labels=[1])
    _assert_video_result(result, 1, out, logits, best)

    box = [width * 0.3, height * 0.25, width * 0.7, height * 0.9]  # a box on the mask task: one mask
    out, logits, best = decode("mask", box=box, multimask=False)
    result = video.add_new_points_or_box(session, 0, 2, box=box)
    _assert_video_result(result, 2, out, logits, best)

    out, logits, best = decode("box", box=box)  # a lone box on the box task: multimask output, and a box
    result = video.add_new_points_or_box(session, 0, 3, box=box, task="box")
    _assert_video_result(result, 3, out, logits, best)
    if float(out.object_scores[0, 0]) > 0:
        expected_box = out.boxes_norm[0, best] * torch.tensor([width, height, width, height])
        np.testing.assert_allclose(result.boxes[result.obj_ids.index(3)].numpy(), expected_box.numpy(), atol=1e-3)

    # a mask prompt is the video's output itself; a click after it decodes with the mask's low-res logits
    prompt = np.zeros((height, width), np.uint8)
    prompt[int(height * 0.3):int(height * 0.7), int(width * 0.2):int(width * 0.6)] = 1
    video.add_new_mask(session, 0, 4, prompt)
    previous = session.tracked_object(4).pending_cond[0].pred_masks.clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT)
    inside = [[width * 0.4, height * 0.5]]
    out, logits, best = decode("mask", inside, [1], mask=previous)
    result = video.add_new_points_or_box(session, 0, 4, points=inside, labels=[1], clear_old_points=False)
    _assert_video_result(result, 4, out, logits, best)
