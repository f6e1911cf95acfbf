"""The still-image service on the real image predictor and automatic mask generator: the micro model (seeded
weights) for the plumbing, and seeded SAM 2.1 tiny once through the jobs the CLI and the app run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from micro_model import MICRO
from sam2_plus.build import build_model
from sam2_plus.image.automatic import AutomaticMaskGenerator
from sam2_plus.image.predictor import ImagePredictor
from sam2_plus.media.rle import decode_rle
from sam2_plus.provider import shared_models
from sam2_plus.segment import (FindOptions, SegmentOptions, find_objects, prepare_find, prepare_segment, read_image,
                               run_find_objects, run_segment_image, segment_image)
from sam2_plus.segment import cli
from sam2_plus.weights import parse_weights_spec

EXAMPLE_IMAGE = Path(__file__).resolve().parents[1] / "examples" / "shapes.png"
# the red disc (centre (30, 84)) and the blue square (centre (240, 108), side 40) of examples/shapes.png
CLICK = [30.0, 84.0]
BOX = [216.0, 84.0, 264.0, 132.0]


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return build_model(MICRO, checkpoint="seeded:0", device="cpu")


def test_candidates_are_the_image_predictors_masks(micro):
    """segment_image's candidates and IoUs are what SAM 2's numpy API (`predict`) gives for the same prompt."""
    image = read_image(EXAMPLE_IMAGE)
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [CLICK]}]},
                           {"id": 2, "task": "mask", "prompts": [{"frame": 0, "points": [CLICK], "labels": [0],
                                                                  "box": BOX}]}]}
    result = segment_image(image, prompts, SegmentOptions(model=MICRO), ImagePredictor(micro))
    reference = ImagePredictor(micro)
    reference.set_image(image.pixels)
    logits, ious, _ = reference.predict(np.array([CLICK]), np.array([1]), multimask_output=True, return_logits=True)
    click = result.object(1)
    assert len(click.candidates) == 3 and click.chosen == int(np.argmax(ious))
    for candidate, expected, iou in zip(click.candidates, logits, ious):
        assert np.array_equal(candidate.mask, expected > 0) and candidate.iou == pytest.approx(float(iou))
        y, x = np.unravel_index(np.argmax(expected), expected.shape)
        assert candidate.point == (float(x), float(y))
    masks, ious, _ = reference.predict(np.array([CLICK]), np.array([0]), box=np.array(BOX), multimask_output=False)
    both = result.object(2)
    assert len(both.candidates) == 1 and np.array_equal(both.mask, masks[0] > 0)
    assert both.iou == pytest.approx(float(ious[0]))


def test_the_box_task_takes_the_box_heads_box(micro):
    """SAM 2++'s box task decodes with its own task: the box is the head's box in image pixels."""
    image = read_image(EXAMPLE_IMAGE)
    prompts = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": BOX}]}]}
    result = segment_image(image, prompts, SegmentOptions(model=MICRO), ImagePredictor(micro))
    reference = ImagePredictor(micro, task="box")
    reference.set_image(image.pixels)
    model_box = reference.to_model_coords(torch.tensor(BOX).reshape(1, 2, 2), (image.height, image.width))
    decoded = reference.decode(None, None, model_box.reshape(1, 4), None, multimask_output=False)
    expected = decoded.boxes_norm[0, 0].numpy() * np.array([image.width, image.height] * 2, np.float32)
    assert result.objects[0].box == pytest.approx(tuple(float(v) for v in expected))
    assert result.objects[0].iou == pytest.approx(float(decoded.ious[0, 0]))


def test_proposals_are_the_generators_masks(micro):
    image = read_image(EXAMPLE_IMAGE)
    options = FindOptions(model=MICRO, density="coarse", pred_iou_thresh=0.0, stability_score_thresh=0.0,
                          max_proposals=3)
    generator = AutomaticMaskGenerator(micro, **options.generator_settings())
    records = generator.generate(image.pixels)
    proposals = find_objects(image, options, generator)
    assert len(records) > 3 and len(proposals) == 3  # capped
    by_area = sorted(records, key=lambda r: (-r["area"], -r["predicted_iou"]))[:3]
    for proposal, record in zip(proposals, by_area):
        mask = decode_rle(proposal.mask)
        assert proposal.area == record["area"] == int(mask.sum())
        assert proposal.predicted_iou == pytest.approx(record["predicted_iou"])
        x, y, w, h = record["bbox"]  # SAM's box spans first to last pixel; COCO's counts them
        assert proposal.bbox == (x, y, w + 1, h + 1)


def test_the_jobs_write_their_files(tmp_path, monkeypatch):
    """What the CLI and the app run: prepare (no model) then run with the process's shared network."""
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [CLICK]}]}]}
    request = prepare_segment(EXAMPLE_IMAGE, prompts, {"model": MICRO, "choices": {"1": 0}}, device="cpu")
    outcome = run_segment_image(request, tmp_path / "segment", shared_models())
    assert outcome.result.objects[0].chosen == 0 and outcome.files.archive.is_file()
    document = json.loads(outcome.files.document.read_text())
    assert len(document["objects"][0]["candidates"]) == 3
    find = prepare_find(EXAMPLE_IMAGE, 0, {"model": MICRO, "density": "coarse", "pred_iou_thresh": 0.0,
                                           "stability_score_thresh": 0.0}, device="cpu")
    found = run_find_objects(find, tmp_path / "find", shared_models())
    proposals = json.loads(found.files.document.read_text())["proposals"]
    assert len(proposals) == len(found.proposals) > 0
    assert [p["area"] for p in proposals] == sorted((p["area"] for p in proposals), reverse=True)


def test_the_command_line_with_seeded_sam21_tiny(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    prompts = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [CLICK]}]}]})
    assert cli.main([str(EXAMPLE_IMAGE), "--prompts", prompts, "--model", "sam2.1-tiny", "--device", "cpu",
                     "--out", str(tmp_path / "a")]) == cli.EXIT_OK
    assert "object 1 (mask, clicks): candidate" in capsys.readouterr().out
    assert cli.main([str(EXAMPLE_IMAGE), "--everything", "--model", "sam2.1-tiny", "--device", "cpu",
                     "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-thresh", "0",
                     "--out", str(tmp_path / "b"), "--quiet"]) == cli.EXIT_OK
    document = json.loads((tmp_path / "b/proposals.json").read_text())
    assert document["settings"]["points_per_side"] == 4 and document["model"] == "sam2.1-tiny"
    assert all((tmp_path / "b" / f"masks/obj_{p['id']}.png").is_file() for p in document["proposals"])
    assert parse_weights_spec("seeded").kind == "seeded"


def test_no_mask_passing_the_filters_gives_no_proposals(micro):
    image = read_image(EXAMPLE_IMAGE)
    options = FindOptions(model=MICRO, density="coarse", pred_iou_thresh=1.0, stability_score_thresh=1.0)
    assert find_objects(image, options, AutomaticMaskGenerator(micro, **options.generator_settings())) == []
