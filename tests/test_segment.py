"""The still-image service (sam2_plus/segment): reading images, the prompts of an image, candidates and the
chosen one, proposals, the files written, and the command line, with stand-in models (tests/segment_fakes.py).
The real image predictor and generator: tests/test_segment_models.py."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from media_clips import pattern_frame, write_clip
from segment_fakes import HEAD_BOX, IOUS, RADII, DiscPredictor, SquareGenerator, disc
from sam2_plus.errors import OptionsError
from sam2_plus.media import decode
from sam2_plus.media.decode import MediaError
from sam2_plus.media.rle import decode_rle, encode_rle
from sam2_plus.prompts import PromptError
from sam2_plus.segment import (FindOptions, SegmentOptions, StillImage, find_objects, parse_find_options,
                               parse_segment_options, read_frame, read_image, segment_image, write_proposals,
                               write_segmentation)
from sam2_plus.segment import cli, runs

H, W = 48, 64


def picture(height: int = H, width: int = W) -> np.ndarray:
    return pattern_frame(5, height, width)


def still(height: int = H, width: int = W) -> StillImage:
    return StillImage.of(picture(height, width), "picture.png")


def one(prompt: dict, obj_id: int = 1, task: str = "mask") -> dict:
    return {"objects": [{"id": obj_id, "task": task, "prompts": [{"frame": 0, **prompt}]}]}


# --------------------------------------------------------------------------- reading images


@pytest.mark.parametrize("suffix, kind", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")])
def test_an_image_reads_as_the_video_path_reads_it(tmp_path, suffix, kind):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(picture()).save(path, kind, **({"lossless": True} if kind == "WEBP" else {}))
    image = read_image(path)
    with decode.FrameSource(path) as frames:
        assert np.array_equal(image.pixels, frames[0])
    assert (image.height, image.width, image.name, image.frame) == (H, W, path.name, 0)
    if kind != "JPEG":
        assert np.array_equal(image.pixels, picture())


def test_exif_orientation_is_applied_and_alpha_is_flattened_on_black(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(picture()).save(path, "JPEG", exif=exif, quality=100)
    assert read_image(path).pixels.shape == (W, H, 3)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, : W // 2, 3] = 255  # the right half transparent (its colour hidden)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    pixels = read_image(tmp_path / "alpha.png").pixels
    assert (pixels[:, : W // 2] == 200).all() and (pixels[:, W // 2:] == 0).all()


def test_unusable_images_are_refused_with_a_precise_message(tmp_path, monkeypatch):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(MediaError, match="corrupt.png: not a readable image"):
        read_image(corrupt)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty.jpg: the file is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(MediaError, match="anim.gif: not a still image this reads; give a PNG, JPEG or WebP"):
        read_image(tmp_path / "anim.gif")
    with pytest.raises(MediaError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")
    Image.fromarray(picture()).save(tmp_path / "big.png")
    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", H * W - 1)
    with pytest.raises(MediaError, match=f"big.png: the frames are {W}x{H} = {W * H} pixels; at most"):
        read_image(tmp_path / "big.png")


def test_a_frame_of_a_video(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", [pattern_frame(i, H, W) for i in range(4)], fps=10)
    frame = read_frame(clip, 2)
    with decode.FrameSource(clip) as frames:
        assert np.array_equal(frame.pixels, frames[2])
    assert frame.frame == 2 and frame.name == "clip.mp4"
    with pytest.raises(MediaError, match=r"frame 4 is out of range; the video has 4 frames \(0..3\)"):
        read_frame(clip, 4)
    Image.fromarray(picture()).save(tmp_path / "still.png")
    with pytest.raises(MediaError, match="frame 1 is out of range; an image has one frame: use frame 0"):
        read_frame(tmp_path / "still.png", 1)


# --------------------------------------------------------------------------- options


def test_options_are_checked_and_named():
    assert parse_segment_options("") == SegmentOptions()
    options = parse_segment_options({"model": "facebook/sam2.1-hiera-tiny", "choices": {"3": 2}, "multimask": False})
    assert (options.model, options.choice_for(3), options.choice_for(1), options.multimask) == (
        "sam2.1-tiny", 2, None, False)
    find = parse_find_options('{"density": "fine", "max_proposals": 5, "sort": "score"}')
    assert (find.grid, find.max_proposals, find.sort) == (32, 5, "score")
    assert parse_find_options({"density": "coarse", "points_per_side": 12}).grid == 12
    assert FindOptions().generator_settings()["points_per_side"] == 16
    bad = [
        (parse_segment_options, '{"colour": 1}', r"unknown key\(s\) 'colour'; allowed: model, multimask, choices"),
        (parse_segment_options, '{"model": "sam3"}', "unknown model 'sam3'"),
        (parse_segment_options, '{"choices": {"x": 1}}', "choices: the key 'x' is not an object id"),
        (parse_segment_options, '{"choices": {"1": -1}}', r"choices\['1'\] must be a candidate index"),
        (parse_segment_options, '{"multimask": 1}', "'multimask' must be true or false"),
        (parse_segment_options, "{model", r"not valid JSON: .*\(line 1, column 2\)"),
        (parse_segment_options, '{"effects": {"background": "sparkle"}}', "effects.background: unknown effect 'sparkle'"),
        (parse_find_options, '{"density": "dense"}', "'density' must be one of coarse, normal, fine"),
        (parse_find_options, '{"points_per_side": 0}', "'points_per_side' must be an integer from 1 to 64"),
        (parse_find_options, '{"pred_iou_thresh": 2}', "'pred_iou_thresh' must be a number from 0 to 1"),
        (parse_find_options, '{"sort": "size"}', "'sort' must be one of area, score"),
        (parse_find_options, "[1]", "give a JSON object"),
    ]
    for parse, text, message in bad:
        with pytest.raises(OptionsError, match="invalid options: " + message):
            parse(text)


# --------------------------------------------------------------------------- segment_image


def test_a_lone_click_gives_three_candidates_and_keeps_the_best():
    predictor = DiscPredictor()
    result = segment_image(still(), one({"points": [[30, 20]]}), SegmentOptions(), predictor)
    obj = result.objects[0]
    assert [c.iou for c in obj.candidates] == pytest.approx(IOUS)
    assert obj.chosen == int(np.argmax(IOUS)) and obj.prompt_kind == "clicks" and obj.task == "mask"
    for candidate, radius in zip(obj.candidates, RADII):
        assert np.array_equal(candidate.mask, disc(H, W, 30, 20, radius))
    assert obj.point == (30.0, 20.0 - RADII[1])  # the first pixel where the logits peak (row-major)
    assert obj.box == (30.0 - RADII[1], 20.0 - RADII[1], 30.0 + RADII[1] + 1, 20.0 + RADII[1] + 1)
    call = predictor.calls[0]
    assert call["multimask"] and call["task"] == "mask" and call["box"] is None
    assert call["coords"].tolist() == [[[30.0, 20.0]]] and call["labels"].tolist() == [[1]]
    assert np.array_equal(predictor.image, still().pixels)
    picked = result.choose(1, 2)
    assert picked.objects[0].chosen == 2 and result.objects[0].chosen == 1  # a new result, no model call
    assert np.array_equal(picked.objects[0].mask, disc(H, W, 30, 20, RADII[2])) and len(predictor.calls) == 1
    with pytest.raises(PromptError, match=r"object 1 has 3 candidates \(0..2\); candidate 3 does not exist"):
        result.choose(1, 3)


def test_options_pick_a_candidate_or_a_single_mask():
    prompts = one({"points": [[30, 20]]})
    chosen = segment_image(still(), prompts, SegmentOptions(choices=((1, 0),)), DiscPredictor())
    assert chosen.objects[0].chosen == 0 and chosen.objects[0].iou == pytest.approx(IOUS[0])
    single = segment_image(still(), prompts, SegmentOptions(multimask=False), DiscPredictor())
    assert len(single.objects[0].candidates) == 1
    with pytest.raises(PromptError, match=r"object 1 has 1 candidate \(0..0\); candidate 1 does not exist: only a "
                                          "lone click gives three"):
        segment_image(still(), prompts, SegmentOptions(multimask=False, choices=((1, 1),)), DiscPredictor())
    with pytest.raises(PromptError, match="options.choices names object 9, which the prompts do not have"):
        segment_image(still(), prompts, SegmentOptions(choices=((9, 0),)), DiscPredictor())


def test_every_prompt_kind_for_several_objects():
    mask = np.zeros((H, W), bool)
    mask[5:9, 40:50] = True
    prompts = {"objects": [
        {"id": 4, "task": "mask", "prompts": [{"frame": 0, "points": [[10, 10], [12, 12]], "labels": [1, 0]}]},
        {"id": 2, "task": "box", "prompts": [{"frame": 0, "box": [50, 40, 20, 30]}]},  # corners swapped
        {"id": 7, "task": "mask", "prompts": [{"frame": 0, "points": [[25, 35]], "labels": [0], "box": [20, 30, 40, 45]}]},
        {"id": 3, "task": "mask", "prompts": [{"frame": 0, "mask": encode_rle(mask)}]},
        {"id": 8, "task": "point", "prompts": [{"frame": 0, "points": [[33.5, 12]]}]},
    ]}
    predictor = DiscPredictor()
    result = segment_image(still(), prompts, SegmentOptions(), predictor)  # SAM 2++: every task
    assert [(o.obj_id, o.prompt_kind, len(o.candidates)) for o in result.objects] == [
        (4, "clicks", 1), (2, "box", 1), (7, "clicks+box", 1), (3, "mask", 1), (8, "clicks", 1)]
    assert not predictor.calls[0]["multimask"]  # two clicks are not ambiguous
    assert [call["task"] for call in predictor.calls] == ["mask", "box", "mask"] and predictor.task == "mask"
    assert predictor.calls[1]["box"].tolist() == [[20, 30, 50, 40]] and predictor.calls[1]["coords"] is None
    box_obj = result.object(2)  # the box task's box is the box head's, its mask the decoder's
    assert box_obj.box == (HEAD_BOX[0] * W, HEAD_BOX[1] * H, HEAD_BOX[2] * W, HEAD_BOX[3] * H)
    assert box_obj.area == 300 and result.object(7).box == (20.0, 30.0, 40.0, 45.0)
    masked = result.object(3)
    assert np.array_equal(masked.mask, mask) and masked.iou is None and masked.point == (40.0, 5.0)
    point = result.object(8)  # the point task's result is its click (no decoder call)
    assert point.point == (33.5, 12.0) and point.area == 0 and point.box is None and point.visible
    assert len(predictor.calls) == 3
    record = result.record()
    assert list(record.obj_ids) == [4, 2, 7, 3, 8] and np.isnan(record.scores[3]) and record.visible.all()
    assert record.box_for(1).tolist() == list(box_obj.box) and record.box_for(2).tolist() == [20, 30, 40, 45]


def test_prompts_an_image_cannot_take_are_refused():
    predictor = DiscPredictor()
    cases = [
        ({"points": [[5, 5]], "frame": 3}, "mask", "sam2++",
         r"prompts\[0\]: frame 3 is out of range; an image has one frame: use frame 0"),
        ({"points": [[W + 10, 5]]}, "mask", "sam2++", f"x={W + 10} is outside the frame \\(width {W}"),
        ({"box": [1, 1, 9, 9]}, "box", "sam2.1-tiny", "model sam2.1-tiny has no 'box' task"),
        ({"mask": encode_rle(np.ones((H + 1, W), bool))}, "mask", "sam2++", "mask size .* does not match"),
    ]
    for prompt, task, model, message in cases:
        document = {"objects": [{"id": 1, "task": task, "prompts": [{"frame": 0, **prompt}]}]}
        with pytest.raises(PromptError, match=message):
            segment_image(still(), document, SegmentOptions(model=model), predictor)
    assert predictor.calls == []


# --------------------------------------------------------------------------- find_objects


def test_proposals_are_sorted_capped_and_numbered():
    squares = [(2, 2, 5, 0.99), (10, 10, 20, 0.85), (40, 5, 10, 0.9)]
    generator = SquareGenerator(squares)
    image = still()
    by_area = find_objects(image, FindOptions(), generator)
    assert [p.id for p in by_area] == [1, 2, 3] and [p.area for p in by_area] == [400, 100, 25]
    assert by_area[0].bbox == (10.0, 10.0, 20.0, 20.0)  # the mask's box as COCO counts it, not SAM's 19 x 19
    assert isinstance(by_area[0].mask["counts"], str) and by_area[0].point == (20.0, 20.0)
    expected = np.zeros((H, W), bool)
    expected[10:30, 10:30] = True
    assert np.array_equal(by_area[0].decode(), expected) and generator.images[0] is image.pixels
    by_score = find_objects(image, FindOptions(sort="score", max_proposals=2), generator)
    assert [(p.id, p.predicted_iou) for p in by_score] == [(1, 0.99), (2, 0.9)]
    assert json.loads(json.dumps(by_score[0].to_json()))["bbox"] == [2, 2, 5, 5]


# --------------------------------------------------------------------------- files


def test_the_files_of_a_segmentation(tmp_path):
    from pycocotools.coco import COCO

    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[30, 20]]}]},
                           {"id": 5, "task": "mask", "prompts": [{"frame": 0, "box": [2, 3, 12, 20]}]}]}
    result = segment_image(still(), prompts, SegmentOptions(), DiscPredictor())
    files = write_segmentation(result, tmp_path / "out")
    assert files.relative() == ["masks/obj_1.png", "cutouts/obj_1.png", "masks/obj_5.png", "cutouts/obj_5.png",
                                "coco/instances.json", "results.json"]
    with zipfile.ZipFile(files.archive) as archive:
        assert sorted(archive.namelist()) == sorted(files.relative())
    for obj in result.objects:
        png = np.asarray(Image.open(tmp_path / "out" / f"masks/obj_{obj.obj_id}.png"))
        assert set(np.unique(png)) <= {0, 255} and np.array_equal(png == 255, obj.mask)
        cutout = np.asarray(Image.open(tmp_path / "out" / f"cutouts/obj_{obj.obj_id}.png"))
        assert cutout.shape == (H, W, 4) and np.array_equal(cutout[..., 3] == 255, obj.mask)
        assert np.array_equal(cutout[obj.mask][:, :3], result.image.pixels[obj.mask])
    coco = COCO(str(tmp_path / "out/coco/instances.json"))
    annotations = coco.loadAnns(coco.getAnnIds())
    assert [(a["category_id"], a["track_id"]) for a in annotations] == [(1, 1), (5, 5)]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["obj_1", "obj_5"]
    assert annotations[0]["score"] == pytest.approx(IOUS[1], abs=1e-5)
    assert np.array_equal(decode_rle(annotations[1]["segmentation"]), result.object(5).mask)
    document = json.loads(files.document.read_text())
    first = document["objects"][0]
    assert document["image"] == {"name": "picture.png", "width": W, "height": H, "frame": 0}
    assert (first["id"], first["task"], first["prompt"], first["chosen"]) == (1, "mask", "clicks", 1)
    assert [c["predicted_iou"] for c in first["candidates"]] == pytest.approx(IOUS, abs=1e-5)
    assert first["box"] == list(result.object(1).box) and first["point"] == list(result.object(1).point)
    assert np.array_equal(decode_rle(first["mask"]), result.object(1).mask)
    assert first["files"] == {"mask": "masks/obj_1.png", "cutout": "cutouts/obj_1.png"}


def test_effects_apply_to_the_cutouts(tmp_path):
    from sam2_plus.effects.settings import parse_effects

    prompts = one({"points": [[30, 20]]})
    options = parse_segment_options({"effects": {"objects": {"1": {"effect": "fill", "color": "#00ff00"}}}})
    result = segment_image(still(), prompts, options, DiscPredictor())
    files = write_segmentation(result, tmp_path, options.effects)
    cutout = np.asarray(Image.open(tmp_path / "cutouts/obj_1.png"))
    assert (cutout[result.objects[0].mask] == [0, 255, 0, 255]).all()
    effect = np.asarray(Image.open(tmp_path / "effect.png"))
    assert (effect[result.objects[0].mask] == [0, 255, 0]).all() and "effect.png" in files.relative()
    assert parse_effects({"feather": 2}).feather == 2.0


def test_the_files_of_proposals(tmp_path):
    from pycocotools.coco import COCO

    image = StillImage.of(picture(), "clip.mp4", frame=7)
    proposals = find_objects(image, FindOptions(), SquareGenerator([(2, 2, 5, 0.99), (10, 10, 20, 0.85)]))
    files = write_proposals(proposals, image, FindOptions(), FindOptions().model, tmp_path)
    assert files.relative() == ["masks/obj_1.png", "masks/obj_2.png", "coco/instances.json", "proposals.json"]
    document = json.loads(files.document.read_text())
    assert document["image"]["frame"] == 7 and document["sort"] == "area" and document["model"] == FindOptions().model
    assert [p["id"] for p in document["proposals"]] == [1, 2] and document["settings"]["density"] == "normal"
    coco = COCO(str(tmp_path / "coco/instances.json"))
    assert coco.loadImgs(coco.getImgIds())[0]["frame_index"] == 7
    assert [a["bbox"] for a in coco.loadAnns(coco.getAnnIds())] == [p["bbox"] for p in document["proposals"]]


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def stand_ins(monkeypatch):
    generator = SquareGenerator([(2, 2, 5, 0.99), (10, 10, 20, 0.85)])
    monkeypatch.setattr(runs, "image_predictor", lambda models, model, device, weights: DiscPredictor())
    monkeypatch.setattr(runs, "mask_generator", lambda models, options, device, weights: generator)
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    return generator


def test_the_command_line_writes_the_files(tmp_path, stand_ins, capsys):
    path = tmp_path / "photo.png"
    Image.fromarray(picture()).save(path)
    prompts = json.dumps(one({"points": [[30, 20]]}))
    assert cli.main([str(path), "--prompts", prompts, "--choose", "1=0", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr()
    assert "object 1 (mask, clicks): candidate 0 of 3, predicted IoU 0.550" in out.out and "seeded" in out.err
    assert json.loads((tmp_path / "a/results.json").read_text())["objects"][0]["chosen"] == 0
    assert cli.main([str(path), "--everything", "--density", "fine", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    document = json.loads((tmp_path / "b/proposals.json").read_text())
    assert document["settings"]["density"] == "fine" and len(document["proposals"]) == 2


@pytest.mark.parametrize("arguments, message", [
    (["--prompts", '{"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 3, "points": [[5, 5]]}]}]}'],
     "frame 3 is out of range; an image has one frame: use frame 0"),
    (["--prompts", '{"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[500, 5]]}]}]}'],
     "x=500 is outside the frame"),
    (["--everything", "--options", '{"density": "fine"}', "--density", "coarse"],
     "the option 'density' is given by --options and by a flag; give it once"),
    (["--everything", "--options", '{"colour": 1}'], r"invalid options: unknown key\(s\) 'colour'"),
    (["--everything", "--choose", "1=2"], "--choose belongs to --prompts"),
    (["--prompts", "{}", "--density", "fine"], "--density belongs to --everything"),
    (["--prompts", "missing.json"], "--prompts missing.json: no such file"),
    (["--everything", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_the_command_line_refuses_bad_input(tmp_path, stand_ins, capsys, arguments, message):
    path = tmp_path / "photo.png"
    Image.fromarray(picture()).save(path)
    assert cli.main([str(path), *arguments, "--out", str(tmp_path / "out")]) == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.strip().splitlines()) == 1
    assert __import__("re").search(message, error), error
    assert not (tmp_path / "out").exists()


def test_the_command_line_refuses_a_corrupt_image(tmp_path, stand_ins, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 20)
    assert cli.main([str(tmp_path / "broken.jpg"), "--everything"]) == cli.EXIT_BAD_INPUT
    assert "error: broken.jpg: not a readable image" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "broken.jpg")]) == cli.EXIT_BAD_INPUT  # neither --prompts nor --everything
    assert "one of the arguments --prompts --everything is required" in capsys.readouterr().err
