"""The app's logic (the package sam2_plus/app) without Gradio: limits, options, GPU time, prompt editing, the
prompts JSON, the frame view, masks from the brush and from PNGs, and tracking jobs (streaming, Stop,
errors) through the real service with a stand-in predictor. One test runs the micro model with seeded
weights to show that a preview equals the tracked conditioning frame and that a correction changes the
next run."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_fakes import PromptsAsCalls, StandInModels
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus import service
from sam2_plus.app import editing, gpu_time, jobs, masks, options, settings, workdirs
from sam2_plus.app.editing import BOX, NEGATIVE, POSITIVE, ObjectState
from sam2_plus.app.errors import AppInputError, user_message
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.plan import plan_job
from sam2_plus.app.preview import preview_prompt
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.effects.settings import Effect
from sam2_plus.jobs import JobSpec
from sam2_plus.media.decode import MediaError, probe
from sam2_plus.media.export import read_mask_zip, read_results_json
from sam2_plus.video.predictor import FrameResult
from sam2_plus.prompts import PromptError, parse_prompts
from sam2_plus.service import TrackProgress

H, W, T = 64, 96, 4


pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 frames of 96x64 at 10 fps (0.4 s)."""
    return write_clip(tmp_path_factory.mktemp("app") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)], fps=10)


@pytest.fixture
def session(clip) -> AppSession:
    session = AppSession.open(clip, AppLimits())
    yield session
    session.close()


# --------------------------------------------------------------------------- limits


def test_limits_from_env():
    assert AppLimits.from_env({}) == AppLimits()
    limits = AppLimits.from_env({"SAM2PLUS_MAX_SECONDS": "12.5", "SAM2PLUS_MAX_FRAMES": "300",
                                 "SAM2PLUS_QUEUE_SIZE": " 4 ", "SAM2PLUS_MAX_SIDE": ""})
    assert (limits.max_seconds, limits.max_frames, limits.queue_size, limits.max_side) == (12.5, 300, 4, 1920)
    with pytest.raises(ValueError, match="SAM2PLUS_MAX_FRAMES='many' is not a valid integer"):
        AppLimits.from_env({"SAM2PLUS_MAX_FRAMES": "many"})
    with pytest.raises(ValueError, match="SAM2PLUS_MAX_UPLOAD_MB must be positive"):
        AppLimits.from_env({"SAM2PLUS_MAX_UPLOAD_MB": "0"})
    assert "60 s" in AppLimits().describe() and "never cut" in AppLimits().describe()


@pytest.mark.parametrize("limits, message", [
    (AppLimits(max_seconds=0.2), r"the video is 0\.4 s long; this app takes videos up to 0\.2 s "
                                 r"\(SAM2PLUS_MAX_SECONDS\)"),
    (AppLimits(max_frames=3), r"the video has 4 frames; this app takes up to 3 \(SAM2PLUS_MAX_FRAMES\)"),
    (AppLimits(max_side=64), r"the video is 96x64; this app takes up to 64 px on the longer side"),
    (AppLimits(max_upload_mb=0.001), r"MB; this app takes files up to 0\.001 MB \(SAM2PLUS_MAX_UPLOAD_MB\)"),
])
def test_videos_over_the_limits_are_refused(clip, limits, message):
    with pytest.raises(AppInputError, match=message):
        limits.check_video(clip)


def test_check_video_accepts_and_describes(clip, tmp_path):
    info = AppLimits().check_video(clip)
    assert (info.num_frames, info.width, info.height) == (T, W, H)
    with pytest.raises(AppInputError, match="was not found"):
        AppLimits().check_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(MediaError):
        AppLimits().check_video(bad)


# --------------------------------------------------------------------------- options and GPU time


def test_parse_options():
    assert options.parse_options(None) == options.parse_options("") == TrackOptions("sam2++", False)
    aliased = options.parse_options('{"model": "MCG-NJU/SAM2-Plus", "motion_aware": true}')
    assert aliased == TrackOptions("sam2++", True)
    assert options.parse_options({"model": "sam2.1-tiny"}).model == "sam2.1-tiny"


@pytest.mark.parametrize("text, message", [
    ("{model: 1}", r"invalid options: not valid JSON: .*\(line 1, column 2\)"),
    ("[1]", "invalid options: give a JSON object"),
    ('{"modle": "sam2++"}', "unknown key\\(s\\) 'modle'; allowed: model, motion_aware"),
    ('{"model": "sam3"}', "unknown model 'sam3'; choose one of sam2\\+\\+, sam2.1-tiny"),
    ('{"motion_aware": "yes"}', "'motion_aware' must be true or false"),
    ('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid options: the JSON is .* at most 65536"),
    ("[" * 30_000 + "]" * 30_000, "invalid options: the JSON is nested too deeply to be options"),
    ('{"motion_aware": 1' + "0" * 5000 + "}", "invalid options: the JSON holds a number with too many digits"),
])
def test_bad_options(text, message):
    with pytest.raises(AppInputError, match=message) as raised:
        options.parse_options(text)
    assert "sys." not in str(raised.value) and "Recursion" not in str(raised.value)


def test_gpu_estimate_grows_with_frames_objects_and_model(clip):
    base = gpu_time.estimate_gpu_seconds(100, 1, "sam2++")
    assert gpu_time.estimate_gpu_seconds(200, 1, "sam2++") > base
    assert gpu_time.estimate_gpu_seconds(100, 4, "sam2++") > base
    assert gpu_time.estimate_gpu_seconds(100, 1, "sam2.1-tiny") < base
    assert gpu_time.estimate_gpu_seconds(100, 1, "sam2.1-large") > base
    prompts = {"objects": [{"id": i, "task": "mask", "prompts": [{"frame": 0, "points": [[5, 5]]}]} for i in (1, 2)]}
    assert jobs.job_gpu_seconds(JobSpec("track", service.prepare_request(clip, prompts)), None) == \
        gpu_time.estimate_gpu_seconds(T, 2, "sam2++")


def test_plan_job_checks_everything_before_the_gpu(clip):
    one = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 1, "box": [2, 2, 40, 30]}]}]}
    plan = plan_job(str(clip), json.dumps(one), '{"model": "sam2++"}', AppLimits())
    assert (plan.frames, plan.objects, plan.options.model) == (T, 1, "sam2++")
    assert plan.gpu_seconds == gpu_time.estimate_gpu_seconds(T, 1, "sam2++")
    with pytest.raises(AppInputError, match="no video"):
        plan_job(None, json.dumps(one), "{}", AppLimits())
    with pytest.raises(AppInputError, match="no prompts"):
        plan_job(str(clip), " ", "{}", AppLimits())
    with pytest.raises(PromptError, match="not valid JSON"):
        plan_job(str(clip), '{"objects": [', "{}", AppLimits())
    with pytest.raises(PromptError, match="frame 9 is out of range; the video has 4 frames"):
        plan_job(str(clip), json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [
            {"frame": 9, "points": [[1, 1]]}]}]}), "{}", AppLimits())
    with pytest.raises(PromptError, match="model sam2.1-tiny has no 'box' task"):
        plan_job(str(clip), json.dumps(one), '{"model": "sam2.1-tiny"}', AppLimits())
    with pytest.raises(AppInputError, match="need about .* s of GPU time; the limit is 5 s"):
        plan_job(str(clip), json.dumps(one), "{}", AppLimits(max_gpu_seconds=5))


def test_the_test_models_are_offered_with_stand_in_weights_only(monkeypatch):
    assert settings.offered_models() == settings.MODELS + (MICRO, "test-edgetam")
    for value in ("hub", "/path/to/checkpoint.pt", "seeded:x"):
        monkeypatch.setenv("SAM2PLUS_WEIGHTS", value)
        assert settings.offered_models() == settings.MODELS and MICRO not in settings.MODELS


def test_the_api_page_example_is_a_call_that_works(clip, monkeypatch):
    """The "Use via API" page's examples: the example clip (this machine's, or the Space's copy on a Space), its
    prompts and the options as JSON text that the page puts between double quotes."""
    import gradio as gr

    from sam2_plus.app.api_examples import EXAMPLE_PROMPTS, example_clip, with_example

    examples = Path(__file__).resolve().parents[1] / "examples"
    monkeypatch.delenv("SPACE_ID", raising=False)
    local = example_clip(examples)
    assert Path(local).is_file()
    monkeypatch.setenv("SPACE_ID", "someone/sam2plus")
    assert example_clip(examples) == "https://huggingface.co/spaces/someone/sam2plus/resolve/main/examples/shapes.mp4"
    video = with_example(gr.File(label="video"), local).example_payload()
    assert video["url"] == local and video["path"] == local
    text = with_example(gr.Textbox(label="prompts"), EXAMPLE_PROMPTS).example_payload()
    assert json.loads(json.loads(f'"{text}"')) == EXAMPLE_PROMPTS
    plan = plan_job(local, json.dumps(EXAMPLE_PROMPTS), json.dumps({"model": MICRO}), AppLimits())
    assert plan.objects == 1


def test_weights_are_announced(monkeypatch, tmp_path):
    """The header says which weights the page uses; with the official checkpoints, whether they can be had
    here: in the local cache, downloadable, or neither (offline: it says so and names SAM2PLUS_WEIGHTS and its
    values)."""
    from huggingface_hub import constants

    from sam2_plus import weights

    assert "Untrained test weights" in settings.describe_weights()
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded:x")
    assert "invalid setting" in settings.describe_weights()
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", str(tmp_path / "mine.pt"))
    assert settings.describe_weights() == f"Weights: checkpoint file {tmp_path / 'mine.pt'}."
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "hub")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: None)
    assert settings.describe_weights() == ("Weights: official checkpoints from the Hugging Face Hub (each downloaded "
                                           "at its model's first use).")
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: "test: no network")
    offline = settings.describe_weights()
    assert offline == ("**Weights: the official checkpoints cannot be downloaded here** (cannot reach "
                       "https://huggingface.co: test: no network) and none is in the local cache: previews and "
                       "tracking fail. Set `SAM2PLUS_WEIGHTS` to the path of a checkpoint file, or to `seeded` "
                       "(untrained stand-ins: meaningless results, for trying the page), and restart the app; `hub`, "
                       "the default, downloads the official checkpoints.")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "(HF_HUB_OFFLINE is set)" in settings.describe_weights()
    monkeypatch.setattr(settings, "hub_access", lambda configs: weights.HubAccess(
        tuple(cfg.name for cfg in configs[:1]), tuple(cfg.name for cfg in configs[1:]), "HF_HUB_OFFLINE is set"))
    partly = settings.describe_weights()
    assert (f"and only {settings.MODELS[0]} is in the local cache: previews and tracking with {settings.MODELS[1]}, "
            in partly)
    monkeypatch.setattr(settings, "hub_access", lambda configs: weights.HubAccess(
        tuple(cfg.name for cfg in configs), ()))
    assert settings.describe_weights() == ("Weights: official checkpoints from the Hugging Face Hub (all in the "
                                           "local cache).")


def test_the_api_page_example_clip_is_fetched_from_this_app(monkeypatch, tmp_path):
    """Not on a Space, the example clip is this app's URL of it (a JavaScript client fetches it to a Blob); a
    call that names it so gets the clip as if it were uploaded (a server downloads no private address), and no
    other URL or file is taken for it."""
    import gradio as gr

    from sam2_plus.app import api_examples

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    examples = Path(__file__).resolve().parents[1] / "examples"
    clip = examples / api_examples.EXAMPLE_CLIP
    url = api_examples.example_clip(examples, "http://127.0.0.1:7860/")
    assert url == f"http://127.0.0.1:7860/gradio_api/file={clip}"
    root = {"url": None}
    video = api_examples.with_example(gr.File(label="video"), lambda: api_examples.example_clip(examples, root["url"]))
    assert video.example_payload()["url"] == str(clip)  # before the app runs
    root["url"] = "http://127.0.0.1:7860/"
    payload = video.example_payload()
    assert payload["url"] == payload["path"] == url and payload["orig_name"] == "shapes.mp4"
    assert api_examples.served_example(url.replace("127.0.0.1:7860", "example.org"), [clip]) == clip
    for other in (f"http://127.0.0.1:7860/gradio_api/file={examples / 'bounce.mp4'}", str(clip), None,
                  f"file:///gradio_api/file={clip}", f"{url}?x=1", f"http://127.0.0.1:7860/file={clip}"):
        assert api_examples.served_example(other, [clip]) is None, other
    uploaded = api_examples.uploaded_example(payload, [clip])
    assert Path(uploaded["path"]).read_bytes() == clip.read_bytes() and uploaded["url"] is None
    assert Path(uploaded["path"]).is_relative_to(tmp_path / "uploads")
    unrelated = {"path": "http://127.0.0.1:7860/gradio_api/file=/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    assert api_examples.uploaded_example(unrelated, [clip]) is unrelated
    assert api_examples.uploaded_example("text", [clip]) == "text"


# --------------------------------------------------------------------------- prompt editing


def test_clicks_follow_the_granularity():
    obj = ObjectState(1, "car")
    editing.add_click(obj, 3, 10, 20, positive=True)
    editing.add_click(obj, 3, 30, 40, positive=False)
    assert obj.prompts[3].clicks() == [((10, 20), 1), ((30, 40), 0)]
    point = ObjectState(2, "ball", task="point")
    editing.add_click(point, 0, 1, 2, positive=True)
    assert "replaces" in editing.add_click(point, 0, 5, 6, positive=True)
    assert point.prompts[0].clicks() == [((5, 6), 1)]
    with pytest.raises(AppInputError, match="one positive click"):
        editing.add_click(point, 0, 5, 6, positive=False)
    with pytest.raises(AppInputError, match="box granularity: draw a box"):
        editing.add_click(ObjectState(3, "box", task="box"), 0, 1, 1, positive=True)


def test_boxes_and_masks():
    obj = ObjectState(1, "car")
    editing.add_click(obj, 0, 10, 10, positive=True)
    editing.set_box(obj, 0, (50, 40, 5, 4))  # corners in any order
    assert obj.prompts[0].box.tolist() == [5, 4, 50, 40] and obj.prompts[0].clicks() == [((10, 10), 1)]  # both
    with pytest.raises(AppInputError, match="must differ in both x and y"):
        editing.set_box(obj, 0, (5, 4, 5, 40))
    mask = np.zeros((H, W), bool)
    mask[10:20, 30:50] = True
    assert editing.set_mask(obj, 0, mask) == ""
    assert obj.prompts[0].kinds == {"mask"}
    assert "the mask was replaced" in editing.add_click(obj, 0, 1, 1, positive=True)
    boxed = ObjectState(2, "b", task="box")  # a mask on a box object is refused, not made its bounding box
    with pytest.raises(AppInputError, match="b has the box granularity, which takes no mask: draw a box with the "
                                            "'Box \\(two clicks\\)' tool, or set its granularity to mask"):
        editing.set_mask(boxed, 1, mask)
    assert boxed.prompts == {}
    with pytest.raises(AppInputError, match="the mask is empty"):
        editing.set_mask(obj, 2, np.zeros((H, W), bool))
    with pytest.raises(AppInputError, match="p has the point granularity, which takes no mask: give it one positive "
                                            "click .*, or set its granularity to mask"):
        editing.set_mask(ObjectState(3, "p", task="point"), 0, mask)
    with pytest.raises(AppInputError, match="point granularity"):
        editing.set_box(ObjectState(3, "p", task="point"), 0, (1, 1, 5, 5))


def test_changing_the_granularity_keeps_what_fits():
    obj = ObjectState(1, "car")
    editing.add_click(obj, 0, 10, 10, positive=False)
    editing.add_click(obj, 0, 12, 14, positive=True)
    editing.set_box(obj, 2, (1, 1, 9, 9))
    mask = np.zeros((H, W), bool)
    mask[5:8, 6:9] = True
    editing.set_mask(obj, 3, mask)
    assert "frames 2, 3" in editing.convert_task(obj, "point")
    assert obj.frames() == [0] and obj.prompts[0].clicks() == [((12, 14), 1)]
    obj2 = ObjectState(2, "x")
    editing.add_click(obj2, 0, 10, 10, positive=True)
    editing.set_box(obj2, 2, (1, 1, 9, 9))
    editing.set_mask(obj2, 3, mask)
    assert "frames 0" in editing.convert_task(obj2, "box")
    assert obj2.frames() == [2, 3] and obj2.prompts[3].box.tolist() == [6, 5, 9, 8]
    assert editing.convert_task(obj2, "mask") == "" and obj2.task == "mask"
    with pytest.raises(AppInputError, match="unknown granularity"):
        editing.convert_task(obj2, "polygon")


def test_undo_order():
    obj = ObjectState(1, "car")
    editing.set_box(obj, 0, (1, 1, 9, 9))
    editing.add_click(obj, 0, 5, 5, positive=True)
    editing.undo(obj, 0)
    assert obj.prompts[0].kinds == {"box"}
    editing.undo(obj, 0)
    assert 0 not in obj.prompts
    with pytest.raises(AppInputError, match="no prompt on frame 0"):
        editing.undo(obj, 0)


# --------------------------------------------------------------------------- the session


def test_session_objects(session):
    assert list(session.objects) == [1] and session.selected == 1 and session.workdir.is_dir()
    second = session.add_object("  ")
    assert (second.obj_id, second.name, session.selected) == (2, "object 2", 2)
    session.rename("ball")
    assert session.objects[2].name == "ball"
    with pytest.raises(AppInputError, match="cannot be empty"):
        session.rename(" ")
    session.select(1)
    assert session.remove_selected().obj_id == 1 and session.selected == 2
    assert session.add_object().obj_id == 3  # ids are never reused
    with pytest.raises(AppInputError, match="there is no object 1"):
        session.select(1)
    assert [c[1] for c in session.object_choices()] == [2, 3]
    html = session.objects_html()
    assert "ball" in html and "rgb(" in html and "no prompt yet" in html


def test_session_clicks_boxes_and_the_prompts_json(session):
    k = session.view_scale
    assert k == 14  # 96x64 is served at 1344x896 (the page shrinks it to fit)
    session.click_view(POSITIVE, 1, 10 * k, 20 * k)  # view pixels -> video (10, 20)
    session.click(NEGATIVE, 1, 30, 40)
    assert "first corner" in session.click(BOX, 2, 10, 10)
    assert session.corner == (1, 2, 10.0, 10.0)
    session.click(BOX, 3, 50, 50)  # another frame: a new first corner
    assert session.corner == (1, 3, 50.0, 50.0)
    session.click(BOX, 3, 20, 30)
    assert session.corner is None
    second = session.add_object("b")
    session.set_task("point")
    session.click(POSITIVE, 0, 95.5, 63.5)
    with pytest.raises(AppInputError, match="outside the 96x64 frame"):
        session.click(POSITIVE, 0, 97, 10)
    with pytest.raises(AppInputError, match="frame 4 is outside the video"):
        session.click(POSITIVE, 4, 1, 1)
    document = json.loads(session.prompts_json())
    assert document == {"objects": [
        {"id": 1, "task": "mask", "prompts": [{"frame": 1, "points": [[10.0, 20.0], [30.0, 40.0]], "labels": [1, 0]},
                                              {"frame": 3, "box": [20.0, 30.0, 50.0, 50.0]}]},
        {"id": second.obj_id, "task": "point", "prompts": [{"frame": 0, "points": [[95.5, 63.5]], "labels": [1]}]}]}
    assert [o.obj_id for o in parse_prompts(document, session.info)] == [1, 2]
    session.add_object("empty")
    with pytest.raises(AppInputError, match=r"object 3 \(empty\) has no prompt yet"):
        session.prompts_json()


def test_session_masks_undo_and_clear(session):
    mask = np.zeros((H, W), bool)
    mask[10:30, 20:40] = True
    session.apply_mask(2, mask)
    assert json.loads(session.prompts_json())["objects"][0]["prompts"][0]["mask"]["size"] == [H, W]
    with pytest.raises(AppInputError, match="the mask is 10x10, the video 96x64"):
        session.apply_mask(2, np.ones((10, 10), bool))
    session.click(BOX, 2, 1, 1)
    session.undo(2)  # drops the pending corner first
    assert session.corner is None and session.objects[1].frames() == [2]
    session.clear_frame(2)
    assert session.objects[1].frames() == []
    session.begin_job()
    with pytest.raises(AppInputError, match="tracking is running"):
        session.click(POSITIVE, 0, 1, 1)


def test_previews_are_kept_per_object_frame_and_options(session):
    options = TrackOptions("sam2.1-tiny")
    assert session.preview_target(0, options) is None  # no prompt yet
    session.click(POSITIVE, 0, 10, 10)
    assert session.preview_target(0, options) == (1, 0) and session.preview_target(1, options) is None
    assert json.loads(session.preview_json(1, 0))["objects"][0]["prompts"] == [
        {"frame": 0, "points": [[10.0, 10.0]], "labels": [1]}]
    session.store_preview(1, 0, options, _fake_result(0, [1]))
    assert session.preview_target(0, options) is None
    assert session.preview_target(0, TrackOptions("sam2++")) == (1, 0)  # another model: stale
    session.click(POSITIVE, 0, 20, 20)
    assert session.preview_target(0, options) == (1, 0)  # an edit: stale
    session.store_preview(1, 0, options, _fake_result(0, [1]))
    session.set_task("point")
    assert (1, 0) not in session.previews


def test_render_view_draws_previews_and_prompts(session):
    raw, k = session.render_view(0), session.view_scale
    assert raw.shape == (H * k, W * k, 3)
    session.click(POSITIVE, 0, 10, 10)
    with_click = session.render_view(0)
    assert (with_click != raw).any() and (with_click[10 * k, 10 * k] != raw[10 * k, 10 * k]).any()
    session.store_preview(1, 0, TrackOptions(), _fake_result(0, [1]))
    with_preview = session.render_view(0)
    assert (with_preview[50 * k:, 83 * k:] != with_click[50 * k:, 83 * k:]).any()  # the mask covers the lower right
    assert (session.render_view(1) == session.enlarge(np.array(session.frame(1)))).all()


def test_a_point_or_box_object_is_visible_by_its_presence_and_its_preview_draws_it(session):
    """SAM 2++'s point and box tasks may give a heatmap without a pixel above zero under a presence of 0.99995
    (the GranularPredictor stand-in): the preview and every tracked frame say visible, and the frame view draws
    the predicted point / box as the overlay does (a disc / a box with its label), not only the prompt."""
    from app_fakes import GranularPredictor, StandInModels

    session.models = StandInModels(make=lambda *key: GranularPredictor())
    options, k = TrackOptions("sam2++"), session.view_scale
    session.set_task("point")
    session.click(POSITIVE, 0, 30, 20)
    session.add_object()
    session.set_task("box")
    session.click(BOX, 0, 50, 10)
    session.click(BOX, 0, 80, 40)
    for obj_id in (1, 2):
        prompted = session.render_view(0)
        preview = preview_prompt(session.preview_request(obj_id, 0, options), session.models)
        assert not preview.masks[0].any() and preview.scores[0] == pytest.approx(0.99995, abs=1e-5)
        assert preview.visible.tolist() == [True]
        session.store_preview(obj_id, 0, options, preview)
        drawn = session.render_view(0)
        colour = (drawn == session.objects[obj_id].color).all(axis=-1) & (prompted != drawn).any(axis=-1)
        ys, xs = np.nonzero(colour)
        if obj_id == 1:  # the point's disc (6 px), centred on the click, around the click's marker
            assert preview.point_for(0).tolist() == [30, 20]
            assert colour.sum() > 50 * k * k and abs(xs.mean() - 30 * k) < 2 * k and abs(ys.mean() - 20 * k) < 2 * k
        else:  # the box's label tag at its top left corner (inside: no room above), and its outline
            assert preview.box_for(0).tolist() == [50, 10, 80, 40]
            assert colour[10 * k:20 * k, 50 * k:60 * k].sum() > 40 * k * k and xs.max() >= 79 * k
    done = None
    for update in session.tracking_job(options, AppLimits()):
        done = update.result or done
    _, results = read_results_json(done.files.results_json)
    assert [r.visible.tolist() for r in results] == [[True, True]] * T
    assert done.review.flag_count == 0


def test_session_close_removes_its_files(clip):
    session = AppSession.open(clip, AppLimits())
    session.stop.set()
    assert session.stop.is_set()
    session.stop.clear()
    assert not session.stop.is_set()
    session.render_view(0)
    session.close()
    assert not session.workdir.exists()


def test_a_closed_session_says_in_one_line_to_load_the_video_again(clip):
    """Its gr.State outlives its files (Gradio keeps it an hour): nothing may reach for the deleted video."""
    from sam2_plus.app.session import ENDED

    session = AppSession.open(clip, AppLimits())
    session.click(POSITIVE, 0, 20, 20)
    session.close()
    for action in (lambda: session.render_view(0), lambda: session.preview_request(1, 0, TrackOptions()),
                   lambda: session.plan_job(TrackOptions(), AppLimits())):
        with pytest.raises(AppInputError) as raised:
            action()
        assert str(raised.value) == ENDED


def test_a_session_closed_during_a_job_closes_when_the_job_ends(clip):
    session = AppSession.open(clip, AppLimits())
    job_dir = session.begin_job()
    assert job_dir.is_dir() and session.tracking and not session.stop.is_set()
    with pytest.raises(AppInputError, match="already running"):
        session.begin_job()
    session.close()  # a new upload while tracking: stop the job, keep the files it writes
    assert session.stop.is_set() and session.workdir.is_dir() and not session.closed
    session.end_job(None)
    assert session.closed and not session.workdir.exists()


def test_work_dirs_are_swept(tmp_path):
    old = workdirs.new_work_dir("api", tmp_path)
    new = workdirs.new_work_dir("api", tmp_path)
    import os
    os.utime(old, (0, 0))
    assert workdirs.sweep_work_dirs("api", 3600, tmp_path) == 1
    assert not old.exists() and new.exists()


def test_a_work_dir_outlives_its_running_job_then_goes(tmp_path):
    folder = workdirs.WorkDir.create("api", tmp_path)
    folder.begin_job()
    with pytest.raises(AppInputError, match="already running"):
        folder.begin_job()
    folder.close()  # the client left during the job: stop it, keep the folder it writes into
    assert folder.stop.is_set() and folder.path.is_dir() and not folder.closed
    folder.end_job()
    assert folder.closed and not folder.path.exists()
    with pytest.raises(AppInputError, match="has ended"):
        folder.begin_job()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_session_files_wait_the_grace_and_a_reconnect_keeps_them(tmp_path):
    """Found: the unload event removed a session's files at once, so a client whose heartbeat dropped and came
    back (same session) had state pointing at a deleted folder. Now its files go only when it has been gone for
    the whole grace; a heartbeat back within it keeps them; a second heartbeat closing does not end a session
    whose first is still open; one failing closer does not keep the others' files."""
    clock = Clock()
    files = workdirs.SessionFiles(reconnect_seconds=10, clock=clock)
    a1, a2, b, c = (workdirs.WorkDir.create("sessions", tmp_path) for _ in range(4))
    closed: list[str] = []

    def broken() -> None:
        closed.append("broken")
        raise OSError("disk gone")

    files.add("a", a1.close)
    files.add("a", broken)
    files.add("a", a2.close)
    files.add("b", b.close)
    files.add("c", c.close)
    files.add(None, b.close)  # no session (a direct call): nothing to track
    assert len(files) == 5
    files.heartbeat_opened("b")
    files.heartbeat_opened("c")
    files.heartbeat_opened("c")  # a reconnect seen before the old connection's end
    for session in "abc":
        files.disconnected(session) if session == "a" else files.heartbeat_closed(session)
    clock.now = 9.0
    files.heartbeat_opened("b")  # back within the grace
    assert files.expire() == 0
    clock.now = 10.0
    assert files.expire() == 3 and closed == ["broken"]
    assert not a1.path.exists() and not a2.path.exists() and b.path.is_dir() and c.path.is_dir()
    clock.now = 100.0
    assert files.expire() == 0 and len(files) == 2
    files.add("a", lambda: closed.append("late"))  # added after its session ended: runs at once
    assert closed == ["broken", "late"] and len(files) == 2


def test_a_browser_session_without_a_heartbeat_starts_the_clock(tmp_path):
    """Found: a session whose heartbeat was gone before its video loaded (or that never opened one) kept its
    folder: nothing would ever end it. With heartbeats watched, such a session's files go after the grace."""
    clock = Clock()
    files = workdirs.SessionFiles(reconnect_seconds=5, clock=clock)
    files.watch_heartbeats()
    orphan, live = workdirs.WorkDir.create("sessions", tmp_path), workdirs.WorkDir.create("sessions", tmp_path)
    files.heartbeat_opened("live")
    files.add("orphan", orphan.close, needs_heartbeat=True)
    files.add("live", live.close, needs_heartbeat=True)
    clock.now = 5.0
    assert files.expire() == 1 and not orphan.path.exists() and live.path.is_dir()


def test_a_running_job_of_a_client_gone_for_good_is_stopped_then_its_folder_goes(tmp_path):
    clock = Clock()
    files = workdirs.SessionFiles(reconnect_seconds=1, clock=clock)
    folder = workdirs.WorkDir.create("api", tmp_path)
    files.add("client", folder.close)
    folder.begin_job()
    files.heartbeat_opened("client")
    files.heartbeat_closed("client")
    clock.now = 1.0
    assert files.expire() == 1
    assert folder.stop.is_set() and folder.path.is_dir()  # the job sees Stop at its next frame
    folder.end_job()
    assert folder.closed and not folder.path.exists()


def test_session_files_hold_their_sessions_weakly(tmp_path, clip):
    """A session Gradio dropped (its state's delete callback closed it) is not kept alive by SessionFiles."""
    import gc
    import weakref

    files = workdirs.SessionFiles()
    session = AppSession.open(clip, AppLimits(), root=tmp_path)
    files.add("tab", session.close)
    alive = weakref.ref(session)
    session.close()
    del session
    gc.collect()
    assert alive() is None and len(files) == 0


def test_the_sweeper_removes_leftovers_on_its_own_but_never_a_live_folder(tmp_path):
    """Found: leftovers were swept only when the next video loaded (or the next API call started). The
    sweeper thread removes folders that no live WorkDir holds once untouched for the TTL."""
    import os
    import time

    live = workdirs.WorkDir.create("sessions", tmp_path)
    leftovers = [workdirs.new_work_dir(kind, tmp_path) for kind in ("sessions", "api")]
    fresh = workdirs.new_work_dir("api", tmp_path)
    for path in (live.path, *leftovers):
        os.utime(path, (0, 0))
    sweeper = workdirs.Sweeper(workdirs.SessionFiles(reconnect_seconds=0.2), ttl=600, root=tmp_path).start()
    try:
        deadline = time.monotonic() + 10
        while any(p.exists() for p in leftovers) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert not any(p.exists() for p in leftovers) and live.path.is_dir() and fresh.is_dir()
    live.close()


# --------------------------------------------------------------------------- masks from the brush and PNGs


def test_mask_from_editor():
    layer = np.zeros((H * 2, W * 2, 4), np.uint8)  # the editor shows the frame enlarged
    layer[20:40, 40:80, 3] = 255
    mask = masks.mask_from_editor({"background": None, "layers": [layer], "composite": None}, (H, W))
    assert mask.shape == (H, W) and mask[10:20, 20:40].all() and mask.sum() == 200
    with pytest.raises(AppInputError, match="nothing is painted"):
        masks.mask_from_editor({"layers": []}, (H, W))


def test_mask_from_png(tmp_path):
    grey = np.zeros((H, W), np.uint8)
    grey[5:10, 5:10] = 255
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert masks.mask_from_png(tmp_path / "grey.png", (H, W)).sum() == 25
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 200  # colour everywhere, the object is where it is opaque
    rgba[0:2, 0:3, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert masks.mask_from_png(tmp_path / "rgba.png", (H, W)).sum() == 6
    palette = Image.fromarray((grey > 0).astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    palette.save(tmp_path / "davis.png")
    assert masks.mask_from_png(tmp_path / "davis.png", (H, W)).sum() == 25
    with pytest.raises(AppInputError, match="the mask is 96x64 but the video is 10x10"):
        masks.mask_from_png(tmp_path / "grey.png", (10, 10))
    (tmp_path / "text.png").write_text("nope")
    with pytest.raises(AppInputError, match="cannot be read as an image"):
        masks.mask_from_png(tmp_path / "text.png", (H, W))


def test_progress_text():
    assert jobs.describe_progress(TrackProgress("loading", 0, 10, 0.1)) == "Loading the model…"
    assert jobs.describe_progress(TrackProgress("prompting", 0, 10, 0.1)) == "Adding the prompts…"
    step = service.PromptStep(5, 9, obj_id=7, object_number=3, objects=4, frame=30)
    adding = jobs.describe_progress(TrackProgress("prompting", 0, 10, 60.0, prompt=step))
    assert adding == "Adding the prompts: object 3 of 4 (id 7) on frame 30, prompt 5 of 9…"
    assert '<progress value="4" max="9"' in jobs.progress_html(adding, TrackProgress("prompting", 0, 10, 60.0,
                                                                                       prompt=step))
    text = jobs.describe_progress(TrackProgress("tracking", 4, 10, 2.0, eta=75.0, frames_per_second=2.0))
    assert text == "Tracking: 4 / 10 frames (40 %), 2.0 frames/s, about 1 min 15 s left"
    slow = jobs.describe_progress(TrackProgress("tracking", 3, 10, 22.0, eta=50.0, frame_idx=7,
                                                frames_per_second=1 / 7.2))
    assert slow == "Tracking: 3 / 10 frames (30 %), 7.2 s/frame, about 50 s left"  # the live frame's label has its number
    bar = jobs.progress_html(slow, TrackProgress("tracking", 3, 10, 22.0))
    assert '<progress value="3" max="10"' in bar and "7.2 s/frame" in bar
    assert "<progress" not in jobs.progress_html("Loading the model…", TrackProgress("loading", 0, 10, 0.1))
    assert jobs.progress_html("a <b>") == '<div class="progress-text">a &lt;b&gt;</div>'


@pytest.mark.parametrize("done, seconds, expected", [
    # as found (issue 16): "about 4 s left" after the first of 6 frames, which took 0.8 s; the job ran 250 s more
    (1, 0.8, "Tracking: 1 / 6 frames (17 %), estimating the time left…"),
    (2, 0.1, "Tracking: 2 / 6 frames (33 %), estimating the time left…"),  # too few frames
    (5, 0.5, "Tracking: 5 / 6 frames (83 %), estimating the time left…"),  # too short a time
    (3, 2.0, "Tracking: 3 / 6 frames (50 %), 1.5 frames/s, about 2 s left"),
    (6, 2.0, "Tracking: 6 / 6 frames (100 %)"),
])
def test_the_time_left_is_given_once_it_is_measured(done, seconds, expected):
    """The service gives the time left after ETA_MIN_FRAMES frames and ETA_MIN_SECONDS of tracking (the CLI's
    line and the app's bar alike); before, the app says that it estimates."""
    reported = []
    job = service._Job(6, reported.append, None)
    job.frames_done, job.tracking_seconds = done, seconds
    job.report("tracking")
    assert (reported[0].eta is None) == (done < service.ETA_MIN_FRAMES or seconds < service.ETA_MIN_SECONDS)
    assert jobs.describe_progress(reported[0]) == expected


# --------------------------------------------------------------------------- jobs (stand-in predictor)


def _fake_result(frame: int, ids: list[int], tasks: list[str] | None = None):
    n = len(ids)
    logits = torch.full((n, H, W), -5.0)
    logits[:, H // 2:, W // 2:] = 5.0
    result = FrameResult(frame, list(ids), logits, torch.full((n,), 3.0), torch.tensor([[48.0, 32.0, 96.0, 64.0]] * n),
                         torch.tensor([[70.0, 50.0]] * n), tasks or ["mask"] * n)
    return service.to_frame_record(result)


class FakePredictor(PromptsAsCalls):
    """Propagation that yields a fixed mask per frame and records the frames it visited."""

    device = torch.device("cpu")

    def __init__(self, on_frame=None):
        self.visited: list[tuple[int, bool]] = []
        self.on_frame = on_frame

    def init_state(self, frames):
        return {"ids": [], "tasks": []}

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None, box=None, task=None):
        state["ids"].append(obj_id)
        state["tasks"].append(task)

    add_new_mask = None  # not used here

    def propagate_in_video(self, state, start_frame_idx=None, reverse=False):
        order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, T)
        for t in order:
            self.visited.append((t, reverse))
            if self.on_frame:
                self.on_frame(t)
            n = len(state["ids"])
            logits = torch.full((n, H, W), -5.0)
            logits[:, : t + 2, :] = 5.0
            yield FrameResult(t, list(state["ids"]), logits, torch.full((n,), 2.0), torch.zeros(n, 4),
                              torch.zeros(n, 2), list(state["tasks"]))


def one_object(frame: int = 2, task: str = "mask") -> str:
    return json.dumps({"objects": [{"id": 4, "task": task, "prompts": [{"frame": frame, "points": [[10, 10]]}]}]})


def checked(clip, prompts: str, options: str = "{}", job_dir=None, stop_file=None) -> JobSpec:
    """The job as its plan checked it, writing into `job_dir`."""
    return plan_job(str(clip), prompts, options, AppLimits()).spec.in_folder(job_dir, stop_file)


def _consume(updates):
    progress, frames, result = [], [], None
    for update in updates:
        if update.progress is not None:
            progress.append(update.progress)
        if update.frame is not None:
            frames.append((update.frame_idx, update.frame))
        result = update.result or result
    return progress, frames, result


def test_run_job_streams_progress_frames_and_files(clip, tmp_path, monkeypatch):
    fake = FakePredictor()
    monkeypatch.setattr(jobs, "LIVE_FRAME_INTERVAL", 0.0)
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL", 0.0)
    progress, frames, result = _consume(jobs.run_job(checked(clip, one_object(), job_dir=tmp_path / "job"),
                                                     StandInModels(fake)))
    assert fake.visited == [(2, True), (1, True), (0, True), (2, False), (3, False)]  # back, then forward
    assert [p.phase for p in progress][:2] == ["loading", "prompting"] and progress[-1].frames_done == T
    assert frames and all(image.shape == (H, W, 3) for _, image in frames)
    assert not result.stopped and (result.frames_done, result.first_frame, result.last_frame) == (T, 0, T - 1)
    names = [Path(p).name for p in result.files.downloads()]
    assert names == ["sam2plus_results.zip", "sam2plus_results.json", "sam2plus_overlay.mp4"]
    assert probe(result.files.overlay).num_frames == T
    _, results = read_results_json(result.files.results_json)
    assert [r.frame_idx for r in results] == [0, 1, 2, 3]
    assert sorted(read_mask_zip(result.files.export).object_masks[4]) == [0, 1, 2, 3]


def test_each_phase_shows_however_soon_it_follows_the_last_update(clip, tmp_path, monkeypatch):
    """The progress updates of a phase are spaced (PROGRESS_INTERVAL), a new phase shows at once: the first
    frame after the prompts can take as long as a prompt."""
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL", 60.0)
    progress, _, result = _consume(jobs.run_job(checked(clip, one_object(), job_dir=tmp_path / "job"),
                                                StandInModels(FakePredictor())))
    assert [(p.phase, p.frames_done) for p in progress] == [("loading", 0), ("prompting", 0), ("tracking", 0)]
    assert progress[1].prompt == service.PromptStep(1, 1, 4, 1, 1, 2) and result.frames_done == T


def test_stop_keeps_what_was_tracked(clip, tmp_path):
    """Stop is a file (the session's flag), checked before every frame."""
    stop = tmp_path / "stop"
    fake = FakePredictor(on_frame=lambda t: stop.touch() if t == 1 else None)
    _, _, result = _consume(jobs.run_job(checked(clip, one_object(0), job_dir=tmp_path / "job", stop_file=stop),
                                         StandInModels(fake)))
    assert result.stopped and "stopped on request at frame 1" in result.summary
    assert result.frames_done == 2 and (result.first_frame, result.last_frame) == (0, 1)
    assert probe(result.files.overlay).num_frames == 2  # a complete, shorter video


def test_closing_the_stream_stops_the_job(clip, tmp_path):
    entered, released = threading.Event(), threading.Event()
    fake = FakePredictor(on_frame=lambda t: entered.set() or released.wait(10))
    updates = jobs.run_job(checked(clip, one_object(0), job_dir=tmp_path / "job"), StandInModels(fake))
    assert next(updates).progress.phase == "loading"
    assert entered.wait(10)  # the job is inside frame 0
    threading.Timer(0.3, released.set).start()  # frame 0 finishes while close() waits for the job
    updates.close()  # what Gradio does when the browser goes away
    assert fake.visited == [(0, False)]


def test_job_errors_come_out_of_the_stream(clip, tmp_path):
    with pytest.raises(PromptError, match="model sam2.1-tiny has no 'point' task"):
        checked(clip, one_object(task="point"), '{"model": "sam2.1-tiny"}')  # refused by the plan, before the job

    def broken(*key):
        raise service.CheckpointError("cannot reach the hub; set SAM2PLUS_WEIGHTS=/path/to/checkpoint")

    with pytest.raises(service.CheckpointError, match="SAM2PLUS_WEIGHTS"):
        _consume(jobs.run_job(checked(clip, one_object(), job_dir=tmp_path / "job2"), StandInModels(make=broken)))
    assert "weights are not available" in user_message(service.CheckpointError("x"))


# --------------------------------------------------------------------------- the model


def test_preview_is_the_tracked_frame_and_a_correction_changes_the_next_run(clip, tmp_path):
    """The micro model, seeded weights: the preview of a prompt equals that frame in the tracking run (it is a
    conditioning frame), and a correction click on a tracked frame changes the next run on that frame."""
    session = AppSession.open(clip, AppLimits())
    options = TrackOptions(MICRO)
    session.click(POSITIVE, 0, 20, 16)

    first = _track(session, options, tmp_path / "run1")
    _, results1 = read_results_json(first.files.results_json)

    session.click(POSITIVE, 2, 70, 45)  # the correction, on a frame the first run tracked
    obj_id, frame = session.preview_target(2, options)
    preview = preview_prompt(session.preview_request(obj_id, frame, options))
    second = _track(session, options, tmp_path / "run2")
    _, results2 = read_results_json(second.files.results_json)

    assert (preview.frame_idx, preview.obj_ids) == (2, (1,))
    assert np.array_equal(results2[2].masks[0], preview.masks[0])  # the correction is frame 2's result
    assert not np.array_equal(results1[2].masks[0], results2[2].masks[0])  # ... and it changed the run
    assert np.array_equal(results1[0].masks[0], results2[0].masks[0])  # frame 0 is the same prompt in both
    session.close()


def _track(session: AppSession, options: TrackOptions, job_dir: Path):
    plan = session.plan_job(options, AppLimits())
    _, _, result = _consume(jobs.run_job(plan.job_spec(job_dir, job_dir / "stop")))
    assert result.frames_done == T
    return result


def test_a_new_video_keeps_the_objects_and_the_prompts_that_fit(clip, tmp_path):
    old = AppSession.open(clip, AppLimits())
    old.click(POSITIVE, 0, 10, 10)
    old.add_object("car")
    old.click(POSITIVE, 3, 20, 20)
    old.set_effect("blur")
    fresh = AppSession.open(clip, AppLimits())
    assert fresh.keep_objects_of(AppSession.open(clip, AppLimits())) == ""  # nothing prompted: nothing kept
    shorter = AppSession.open(write_clip(tmp_path / "short.mp4", [pattern_frame(i, H, W) for i in range(2)]),
                              AppLimits())
    note = shorter.keep_objects_of(old)
    assert "Kept the 2 object(s) and 1 of their 2 prompted frames" in note and "last (1)" in note
    assert [o.frames() for o in shorter.objects.values()] == [[0], []] and shorter.objects[2].name == "car"
    assert shorter.selected == 2 and shorter.effects == {2: Effect("blur")} and shorter.add_object().obj_id == 3
    assert [o.frames() for o in old.objects.values()] == [[0], [3]]  # the old session's prompts are its own
    other = AppSession.open(write_clip(tmp_path / "other.mp4", [pattern_frame(i, H, W + 16) for i in range(T)]),
                            AppLimits())
    assert f"the video is {W + 16}x{H}, not {W}x{H}" in other.keep_objects_of(old)
    assert all(not o.frames() for o in other.objects.values()) and len(other.objects) == 2
    for session in (old, fresh, shorter, other):
        session.close()


# --------------------------------------------------------------------------- what the page says (issue 28)


@pytest.fixture
def speeds():
    """The process's measured speeds (sam2_plus/app/estimate.py), empty for the test and after it."""
    from sam2_plus.app.estimate import SPEEDS

    SPEEDS.clear()
    yield SPEEDS
    SPEEDS.clear()


def test_the_estimate_scales_a_measurement_to_the_video_and_its_objects():
    from sam2_plus.app import estimate

    preview = estimate.Speed(4.0)  # one preview: 4 s
    assert preview.unit == 4.0
    guess = estimate.Estimate("sam2.1-tiny", frames=36, objects=2, prompted_frames=3, speed=preview, prompt_unit=4.0)
    per_frame = 4.0 * (estimate.ENCODER_UNITS + 2 * estimate.OBJECT_UNITS)
    assert guess.seconds_per_frame == pytest.approx(per_frame)
    assert guess.total_seconds == pytest.approx(36 * per_frame + 3 * estimate.PROMPT_UNITS * 4.0)
    assert guess.describe() == (f"Estimate: about {per_frame:.1f} s/frame here with sam2.1-tiny, ~"
                                f"{jobs.format_seconds(guess.total_seconds)} for this video (36 frames) with 2 "
                                "objects; measured on this machine (the last preview took 4.00 s).")
    run = estimate.Speed(9.0, objects=2)  # a run: 9 s a frame with 2 objects
    assert estimate.Estimate("m", 10, 2, 1, run, 4.0).seconds_per_frame == pytest.approx(9.0)
    four = estimate.Estimate("m", 10, 4, 1, run, 4.0)
    assert four.total_seconds == pytest.approx(10 * four.seconds_per_frame + estimate.PROMPT_UNITS * 4.0)
    assert four.seconds_per_frame == pytest.approx(9.0 * estimate.frame_units(4) / estimate.frame_units(2))
    assert "the last run tracked 2 objects at 9.0 s/frame" in four.describe()
    fast = estimate.Estimate("m", 1000, 1, 1, estimate.Speed(0.004), 0.004)  # 1000 * 0.004 * 1.825 = 7.3 s
    assert "frames/s here" in fast.describe() and "took 4 ms" in fast.describe() and "~7 s for this" in fast.describe()
    short = estimate.Estimate("m", 10, 1, 1, estimate.Speed(0.004), 0.004)
    assert "under a second for this video (10 frames)" in short.describe()


def test_speeds_are_kept_per_model_and_a_run_outranks_a_preview_for_the_frames(speeds):
    """The frames' time comes from the last run once there is one, the prompts' from the last preview (a run's
    speed says nothing of its prompts)."""
    from sam2_plus.app.estimate import Estimate, Speed, describe_estimate

    assert describe_estimate("sam2++", 10, 1, 1) == ("Track's time with sam2++ on this machine is estimated after "
                                                     "the first preview with it.")
    speeds.preview("sam2plus", 2.0)  # any name of the model
    assert speeds.get("sam2++") == Speed(2.0) and speeds.get(MICRO) is None
    speeds.preview("sam2++", 0.0)  # nothing measured: kept as it was
    assert speeds.estimate("sam2++", 10, 1, 1) == Estimate("sam2++", 10, 1, 1, Speed(2.0), 2.0)
    speeds.run("sam2++", 3, 5.0)
    speeds.preview("sam2++", 1.0)  # a later preview: the prompts' unit, not the frames'
    assert speeds.estimate("sam2++", 10, 2, 1) == Estimate("sam2++", 10, 2, 1, Speed(5.0, 3), 1.0)
    speeds.run("sam2++", 1, 2.5)
    assert speeds.get("sam2++") == Speed(2.5, 1) and "the last run tracked 1 object at" in describe_estimate(
        "sam2++", 10, 1, 1)
    speeds.run(MICRO, 2, 0.1)  # a run without a preview: its own unit for the prompts too
    assert speeds.estimate(MICRO, 5, 2, 1).prompt_unit == pytest.approx(Speed(0.1, 2).unit)


def test_the_session_estimates_with_its_frames_objects_and_prompted_frames(session, speeds):
    from sam2_plus.app.estimate import Estimate

    speeds.preview(MICRO, 0.5)
    session.click(POSITIVE, 0, 10, 10)
    session.add_object()
    session.click(POSITIVE, 2, 20, 20)
    session.click(POSITIVE, 2, 30, 30)
    assert session.estimate(MICRO) == Estimate(MICRO, T, 2, 2, speeds.get(MICRO), 0.5).describe()
    session.remove_selected()
    session.remove_selected()
    assert session.estimate(MICRO) == ""  # nothing to track


def test_a_finished_run_measures_its_speed_for_the_next_estimate(session, speeds):
    from app_fakes import FailingPredictor
    from sam2_plus.app.estimate import Speed

    session.models = StandInModels(make=lambda *key: FakePredictor())
    session.click(POSITIVE, 0, 10, 10)
    result = list(session.tracking_job(TrackOptions(MICRO), AppLimits()))[-1].result
    assert result.frames_done == T and result.tracking_seconds > 0
    assert speeds.get(MICRO) == Speed(result.tracking_seconds / T, objects=1)
    session.click(POSITIVE, 1, 10, 10)
    session.models = StandInModels(make=lambda *key: FailingPredictor(FakePredictor(), 2, RuntimeError("boom")))
    assert list(session.tracking_job(TrackOptions(MICRO), AppLimits()))[-1].result.failed
    assert speeds.get(MICRO) == Speed(result.tracking_seconds / T, objects=1)  # a failed run measures nothing


def test_a_preview_measures_its_model_time(clip, speeds):
    """A stand-in whose image predictor takes 0.2 s a prompt; the micro model says whether the time includes its
    image encoder (a preview from cached features does not: no estimate comes from it)."""
    import time as clock

    from app_fakes import QuickImagePredictor
    from sam2_plus.app.preview import preview_with_features

    class SlowImages(QuickImagePredictor):
        def decode(self, *args, **kwargs):
            clock.sleep(0.2)
            return super().decode(*args, **kwargs)

    class Slow(FakePredictor):
        def image_predictor(self):
            return SlowImages()

    session = AppSession.open(clip, AppLimits())
    session.click(POSITIVE, 0, 10, 10)
    request = session.preview_request(1, 0, TrackOptions(MICRO))
    slow = preview_with_features(request, models=StandInModels(Slow()))
    assert slow.encoded and 0.2 <= slow.model_seconds < 5
    first = preview_with_features(request)
    again = preview_with_features(request, first.features)
    assert first.encoded and not again.encoded and first.model_seconds > 0
    session.close()


def _fake_result_tensors(frame: int, ids: list[int]) -> FrameResult:
    n = len(ids)
    return FrameResult(frame, list(ids), torch.full((n, H, W), 5.0), torch.full((n,), 3.0), torch.zeros(n, 4),
                       torch.zeros(n, 2), ["mask"] * n)


def test_the_page_says_granularity_and_the_api_says_task(session, clip):
    """A model that cannot track an object's granularity, in the page's words where the page asks (the model
    choice, Track, a preview); the prompts JSON's words ("task") in the API."""
    session.set_task("box")
    session.click(BOX, 0, 5, 5)
    session.click(BOX, 0, 20, 20)
    page = ("object 1 (id 1) has the box granularity, which sam2.1-tiny cannot track (it takes the mask granularity "
            "only): choose sam2++, or give object 1 (id 1) the mask granularity")
    assert session.model_note("sam2.1-tiny") == f"⚠️ {page}"
    assert session.model_note(MICRO) == ""
    with pytest.raises(AppInputError) as refused:
        session.plan_job(TrackOptions("sam2.1-tiny"), AppLimits())
    assert str(refused.value) == page and user_message(refused.value) == page
    with pytest.raises(AppInputError, match="has the box granularity"):
        session.preview_request(1, 0, TrackOptions("sam2.1-tiny"))
    with pytest.raises(PromptError, match="model sam2.1-tiny has no 'box' task") as api:
        plan_job(str(clip), session.prompts_json(), '{"model": "sam2.1-tiny"}', AppLimits())
    assert "granularity" not in user_message(api.value)


def test_a_refused_upload_is_said_precisely():
    from sam2_plus.app.errors import refused_upload

    assert refused_upload("notes.txt", "text/plain") == (
        "notes\\.txt (text/plain) is not a video: upload a video file (MP4, MOV, WebM, MKV, AVI, ...).")
    assert refused_upload("a*b_[x](y)\n.pdf", "").startswith("a\\*b\\_\\[x\\]\\(y\\)\\.pdf is not a video")
    assert refused_upload("", "").startswith("the file is not a video")
    assert len(refused_upload("x" * 1000, "")) < 250


def test_unavailable_weights_are_said_with_the_setting(monkeypatch, tmp_path):
    """The app's message for unavailable weights names SAM2PLUS_WEIGHTS, never the Python API's checkpoint=..."""
    from huggingface_hub import constants

    from sam2_plus import weights
    from sam2_plus.config import MODEL_CONFIG_FILES, load_config

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(weights.CheckpointError) as err:
        weights.download_checkpoint(load_config(next(iter(MODEL_CONFIG_FILES))))
    said = user_message(err.value)
    assert said.startswith("The model weights are not available: MCG-NJU/SAM2-Plus/checkpoint_phase123.pt is not in "
                           "the Hugging Face cache and HF_HUB_OFFLINE is set.")
    assert "checkpoint=" not in said and "SAM2PLUS_WEIGHTS=seeded" in said and "restart the app" in said
    missing = tmp_path / "gone.pt"
    with pytest.raises(weights.CheckpointError) as err:
        service.check_weights(weights.WeightsSource("file", str(missing)))
    assert user_message(err.value) == (f"The model weights are not available: checkpoint file not found: {missing} "
                                       "(SAM2PLUS_WEIGHTS); set SAM2PLUS_WEIGHTS to an existing checkpoint file, hub "
                                       "or seeded and restart the app")


def test_the_session_knows_the_frame_its_view_shows(session):
    assert session.view_frame == 0
    session.render_view(3)
    assert session.view_frame == 3
    with pytest.raises(AppInputError):
        session.render_view(99999)
    assert session.view_frame == 3
