"""The automatic mask generator equals SAM 2's `SAM2AutomaticMaskGenerator` (Meta's `sam2` package, a
test-only oracle) on sam2.1-tiny with the stand-in weights of ../shared/golden/seeded_weights.py, on a real
frame: the same masks in the same order, with the same boxes, areas, pixels, clicks and crop boxes, and
predicted IoUs and stability scores within float noise.

The stand-in network's masks are large and speckled (most span the whole frame), so SAM 2's default
thresholds keep none of them and box NMS at 0.7 keeps one; each case lowers the thresholds (and NMS where it is
not the point) so that many masks are compared, and asserts a minimum count. The crop case runs on a 48x36
frame: on a larger one every mask found in a crop reaches an inner edge of its crop and is dropped, so no crop
would contribute.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from conftest import SHARED
from sam2_kernel import labelled_like_sam2_kernel
from sam2_plus import AutomaticMaskGenerator, build_model
from sam2_plus.image import automatic
from sam2_plus.media.decode import FrameSource

pytest.importorskip("sam2")
cv2 = pytest.importorskip("cv2")

MODEL = "sam2.1-tiny"
META_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
IOU_ATOL = 1e-5  # as the image predictor's parity tests
LOWERED = dict(pred_iou_thresh=0.5, stability_score_thresh=0.3)


def frame(width: int, height: int) -> np.ndarray:
    path = SHARED / "data" / "videos" / "01_dog.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is not present (../shared holds the test videos)")
    with FrameSource(str(path)) as frames:
        image = np.array(frames[0])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def nets():
    """(Meta's network, ours) with the same seeded weights."""
    seeded = SHARED / "golden" / "seeded_weights.py"
    if not seeded.is_file():
        pytest.skip("../shared is not present (seeded_weights.py lives in ../shared/golden)")
    spec = importlib.util.spec_from_file_location("golden_seeded_weights", seeded)
    module = sys.modules.setdefault("golden_seeded_weights", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    from sam2.build_sam import build_sam2

    theirs = build_sam2(META_CONFIG, ckpt_path=None, device="cpu")
    theirs.load_state_dict(module.seeded_state_dict(theirs.state_dict(), 0), strict=True)
    return theirs, build_model(MODEL, checkpoint="seeded", device="cpu")


@pytest.fixture
def nms_counts(monkeypatch):
    """(boxes in, boxes kept) of each NMS our generator runs."""
    counts = []
    original = automatic._non_max_suppression

    def counted(boxes, scores, threshold):
        keep = original(boxes, scores, threshold)
        counts.append((len(boxes), len(keep)))
        return keep

    monkeypatch.setattr(automatic, "_non_max_suppression", counted)
    return counts


def both(nets, image: np.ndarray, **settings):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    theirs = SAM2AutomaticMaskGenerator(nets[0], **settings).generate(image)
    ours = AutomaticMaskGenerator(nets[1], **settings).generate(image)
    return theirs, ours


def assert_same_records(theirs: list[dict], ours: list[dict], least: int) -> None:
    print(f"{len(ours)} masks (SAM 2: {len(theirs)})")
    assert len(ours) == len(theirs)
    assert len(ours) >= least, f"only {len(ours)} masks: the case compares too little"
    for i, (a, b) in enumerate(zip(theirs, ours)):
        assert set(b) == set(a), i
        for key in ("bbox", "area", "point_coords", "crop_box"):
            assert b[key] == a[key], (i, key)
        if isinstance(a["segmentation"], np.ndarray):
            assert b["segmentation"].dtype == a["segmentation"].dtype
            np.testing.assert_array_equal(b["segmentation"], a["segmentation"], err_msg=str(i))
        else:
            assert b["segmentation"] == a["segmentation"], i
        np.testing.assert_allclose(b["predicted_iou"], a["predicted_iou"], rtol=0, atol=IOU_ATOL, err_msg=str(i))
        assert b["stability_score"] == pytest.approx(a["stability_score"], rel=0, abs=1e-6), i


def test_lowered_thresholds_without_nms(nets):
    """SAM 2's defaults but for the two thresholds, and NMS that keeps every box (IoU <= 1)."""
    theirs, ours = both(nets, frame(320, 180), points_per_side=6, box_nms_thresh=1.0, **LOWERED)
    assert_same_records(theirs, ours, least=20)


def test_nms_mattering(nets, nms_counts):
    theirs, ours = both(nets, frame(320, 180), points_per_side=8, box_nms_thresh=0.99, **LOWERED)
    assert_same_records(theirs, ours, least=3)
    (boxes_in, kept), = nms_counts
    assert kept == len(ours) < boxes_in


def test_one_crop_layer(nets, nms_counts):
    settings = dict(points_per_side=6, crop_n_layers=1, crop_n_points_downscale_factor=2, box_nms_thresh=1.0)
    theirs, ours = both(nets, frame(48, 36), **settings, **LOWERED)
    assert_same_records(theirs, ours, least=4)
    assert any(record["crop_box"] != [0.0, 0.0, 48.0, 36.0] for record in ours), "no mask from a crop"
    crops_in, crops_kept = nms_counts[-1]  # the NMS between crops
    assert crops_kept < crops_in


def _counted_kernel(calls: list):
    """sam2_kernel's stand-in for SAM 2's kernel, counting its calls (the batch size of each) in `calls`."""

    def labelled(mask: torch.Tensor):
        calls.append(mask.shape[0])
        return labelled_like_sam2_kernel(mask)

    return labelled


def test_min_mask_region_area(nets, monkeypatch):
    """SAM 2 removes the small holes and islands of each candidate's 256x256 logits (its image predictor's
    max_hole_area and max_sprinkle_area) before upscaling; its kernel is replaced by scipy's labelling."""
    misc = pytest.importorskip("sam2.utils.misc")
    calls = []
    monkeypatch.setattr(misc, "get_connected_components", _counted_kernel(calls))
    theirs, ours = both(nets, frame(320, 180), points_per_side=6, box_nms_thresh=1.0, min_mask_region_area=100,
                        **LOWERED)
    assert calls, "SAM 2's small-region removal did not run"
    assert_same_records(theirs, ours, least=20)


def test_coco_rle_output(nets):
    theirs, ours = both(nets, frame(320, 180), points_per_side=6, box_nms_thresh=1.0, output_mode="coco_rle",
                        **LOWERED)
    assert_same_records(theirs, ours, least=20)
    assert all(isinstance(record["segmentation"]["counts"], str) for record in ours)


def test_mask_to_mask_refinement(nets):
    theirs, ours = both(nets, frame(320, 180), points_per_side=4, box_nms_thresh=1.0, use_m2m=True,
                        pred_iou_thresh=0.3, stability_score_thresh=0.1)
    assert_same_records(theirs, ours, least=10)


def test_refuses_bad_settings_and_images():
    net = build_model("test-micro", checkpoint="seeded", device="cpu")
    with pytest.raises(ValueError, match="exactly one of points_per_side and point_grids"):
        AutomaticMaskGenerator(net, points_per_side=None)
    with pytest.raises(ValueError, match="output_mode"):
        AutomaticMaskGenerator(net, output_mode="polygons")
    with pytest.raises(ValueError, match="one for each crop layer"):
        AutomaticMaskGenerator(net, points_per_side=None, point_grids=[np.full((4, 2), 0.5)], crop_n_layers=1)
    with pytest.raises(ValueError, match="leaves no points in crop layer 2"):
        AutomaticMaskGenerator(net, points_per_side=3, crop_n_layers=2, crop_n_points_downscale_factor=2)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        AutomaticMaskGenerator(net).generate(np.zeros((10, 10), dtype=np.uint8))


def test_records_agree_across_output_modes_and_inputs():
    """On the micro network: an ImagePredictor is accepted as well as a network; the three output modes encode
    the same masks; each record's area and box are its mask's."""
    from sam2_plus import build_image_predictor
    from sam2_plus.media.rle import decode_rle

    net = build_model("test-micro", checkpoint="seeded", device="cpu")
    image = (np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)
    settings = dict(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    binary = AutomaticMaskGenerator(net, **settings).generate(image)
    assert len(binary) >= 5
    for mode in ("coco_rle", "uncompressed_rle"):
        encoded = AutomaticMaskGenerator(build_image_predictor(net), output_mode=mode, **settings).generate(image)
        assert len(encoded) == len(binary)
        for a, b in zip(binary, encoded):
            np.testing.assert_array_equal(decode_rle(b["segmentation"]), a["segmentation"])
            assert {k: v for k, v in a.items() if k != "segmentation"} == {
                k: v for k, v in b.items() if k != "segmentation"}
    for record in binary:
        mask = record["segmentation"]
        assert record["area"] == int(mask.sum())
        if record["area"]:
            ys, xs = np.nonzero(mask)
            assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        assert record["crop_box"] == [0.0, 0.0, 90.0, 60.0]
