"""The app's scripted API, driven with gradio_client against the app launched in-process on 127.0.0.1 (CPU,
seeded weights): the public API is exactly /track, /segment_image and /find_objects; every task and several
objects with prompts on a middle frame give the overlay MP4, the results ZIP and the results JSON; a still image
gives its masks ZIP and results JSON, an image or a video frame its proposals; invalid input gives precise errors
and the app keeps answering."""

from __future__ import annotations

import json
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.app.settings import AppLimits
from sam2_plus.media.decode import probe
from sam2_plus.media.export import read_results_json
from sam2_plus.media.rle import decode_rle, encode_rle

H, W, T = 64, 96, 3
LIMITS = AppLimits(max_seconds=5.0)
# Gradio's queue uses pandas options that pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword:Warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAM2PLUS_WEIGHTS", "seeded")
        patch.setenv("SAM2PLUS_APP_TMP", str(tmp_path_factory.mktemp("app-tmp")))
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        import app

        demo = app.build_demo(LIMITS)
        port = free_port()
        app.launch(demo, LIMITS, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield Client(f"http://127.0.0.1:{port}/", verbose=False)
        finally:
            demo.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("api") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)], fps=10)


def track(client: Client, video: Path, prompts, options) -> tuple[str, str, str]:
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return client.predict(handle_file(str(video)), text, json.dumps(options), api_name="/track")


def test_the_public_api_is_track_segment_image_find_objects_and_live(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/track", "/segment_image", "/find_objects", "/live_frame",
                                            "/live_stop"]
    assert not api["unnamed_endpoints"]
    endpoint = api["named_endpoints"]["/track"]
    assert [(p["parameter_name"], p["python_type"]["type"]) for p in endpoint["parameters"]] == [
        ("video", "filepath"), ("prompts", "str"), ("options", "str")]
    assert [r["label"] for r in endpoint["returns"]] == ["overlay_mp4", "results_zip", "results_json"]
    segment = api["named_endpoints"]["/segment_image"]
    assert [(p["parameter_name"], p["python_type"]["type"]) for p in segment["parameters"]] == [
        ("image", "filepath"), ("prompts", "str"), ("options", "str")]
    assert [r["label"] for r in segment["returns"]] == ["masks_zip", "results_json"]
    find = api["named_endpoints"]["/find_objects"]
    assert [(p["parameter_name"], p["python_type"]["type"]) for p in find["parameters"]] == [
        ("source", "filepath"), ("frame", "int"), ("options", "str")]
    assert [r["label"] for r in find["returns"]] == ["proposals_json"]
    live = api["named_endpoints"]["/live_frame"]
    assert [(p["parameter_name"], p["python_type"]["type"]) for p in live["parameters"]] == [
        ("frame", "filepath"), ("prompts", "str"), ("options", "str")]
    assert [r["label"] for r in live["returns"]] == ["drawn", "status"]
    live_stop = api["named_endpoints"]["/live_stop"]
    assert not live_stop["parameters"]
    assert [r["label"] for r in live_stop["returns"]] == ["overlay_mp4", "results_zip", "results_json"]


def test_the_api_page_shows_a_call_that_works(client):
    """Use via API shows an example clip and prompts for it (not Gradio's PDF and "Hello!!"), and the page still
    draws the hidden inputs as a file and text boxes. The clip is this app's URL of it (which a JavaScript client
    fetches): the call as the page writes it, handle_file(url), tracks that clip."""
    from sam2_plus.app.plan import plan_job

    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/track"]
    video, *texts = (p["example_input"] for p in endpoint["parameters"])
    clip = Path(__file__).resolve().parents[1] / "examples" / "shapes.mp4"
    assert video["path"] == video["url"] == f"{client.src}gradio_api/file={clip}"
    prompts, options = (json.loads(f'"{text}"') for text in texts)  # the page puts them between quotes as they are
    assert json.loads(prompts)["objects"][0]["prompts"][0]["box"] and json.loads(options)["model"] == "sam2++"
    plan = plan_job(clip, prompts, options, AppLimits())  # checked as a call: it fits the clip
    assert plan.request.info.num_frames == probe(clip).num_frames
    _, _, results = client.predict(handle_file(video["url"]), prompts, json.dumps({"model": MICRO}),
                                   api_name="/track")
    assert len(read_results_json(results)[1]) == probe(clip).num_frames
    # the page shows a parameter's default as it is: the options' default is empty (the defaults), valid Python
    assert endpoint["parameters"][2]["parameter_default"] == ""
    kinds = {component["type"] for component in client.config["components"]}
    assert {"file", "textbox"} <= kinds and not any(kind.startswith("example") for kind in kinds)


@pytest.mark.parametrize("prompts, options, message", [
    ('{"objects": [', {"model": MICRO}, "Invalid prompts: the prompts are not valid JSON"),
    ("not json", {}, "must be a JSON object starting with '{'"),
    ({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 3, "points": [[5, 5]]}]}]}, {},
     r"frame 3 is out of range; the video has 3 frames \(0..2\)"),
    ({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[500, 5]]}]}]}, {},
     "x=500 is outside the frame"),
    ({"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [1, 1, 9, 9]}]}]},
     {"model": "sam2.1-tiny"}, "model sam2.1-tiny has no 'box' task .* use sam2\\+\\+"),
    ({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[5, 5]]}]}]},
     {"model": "sam3"}, "invalid options: unknown model 'sam3'"),
])
def test_invalid_input_gives_a_precise_error(client, clip, prompts, options, message):
    with pytest.raises(AppError, match=message):
        track(client, clip, prompts, options)


def test_bad_options_json_and_missing_video(client, clip):
    prompts = '{"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[5, 5]]}]}]}'
    with pytest.raises(AppError, match=r"invalid options: not valid JSON: .*\(line 1, column 2\)"):
        client.predict(handle_file(str(clip)), prompts, "{model", api_name="/track")
    with pytest.raises(AppError, match="no video: give a video file"):
        client.predict(None, prompts, "{}", api_name="/track")


def test_a_too_long_video_is_refused(client, tmp_path):
    long_clip = write_clip(tmp_path / "long.mp4", [pattern_frame(i % 100, 16, 16) for i in range(60)], fps=10)
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[5, 5]]}]}]}
    with pytest.raises(AppError, match=r"the video is 6\.0 s long; this app takes videos up to 5 s"):
        track(client, long_clip, prompts, {"model": MICRO})


def test_unreachable_weights_explain_how_to_provide_them(client, clip, tmp_path, monkeypatch):
    """The app started without network access; Track says how to provide the checkpoint."""
    from huggingface_hub import constants

    from sam2_plus import weights

    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "hub")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: "test: no network")
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[5, 5]]}]}]}
    with pytest.raises(AppError, match=r"The model weights are not available: cannot reach .*test: no network.* "
                                       r"set SAM2PLUS_WEIGHTS=/path/to/sam2.1_hiera_tiny.pt"):
        track(client, clip, prompts, {"model": "sam2.1-tiny"})


def test_every_task_several_objects_prompted_on_a_middle_frame(client, clip, tmp_path):
    """SAM 2++ (the micro model) with a click object, a mask object, a box object and a point object, all prompted on frame 1
    of 3: frame 0 comes from the backward pass, frame 2 from the forward pass."""
    mask = np.zeros((H, W), bool)
    mask[8:30, 50:80] = True
    prompts = {"objects": [
        {"id": 1, "task": "mask", "prompts": [{"frame": 1, "points": [[30, 20], [70, 40]], "labels": [1, 0]}]},
        {"id": 2, "task": "mask", "prompts": [{"frame": 1, "mask": encode_rle(mask)}]},
        {"id": 5, "task": "box", "prompts": [{"frame": 1, "box": [4, 4, 40, 30]}]},
        {"id": 9, "task": "point", "prompts": [{"frame": 1, "points": [[60, 48]]}]},
    ]}
    overlay, results_zip, results_json = track(client, clip, prompts, {"model": MICRO, "motion_aware": False})
    assert Path(overlay).name == "sam2plus_overlay.mp4"
    info = probe(overlay)
    assert (info.codec, info.num_frames, info.width, info.height) == ("h264", T, W, H)
    header, results = read_results_json(results_json)
    assert header["objects"] == [{"id": 1, "task": "mask"}, {"id": 2, "task": "mask"}, {"id": 5, "task": "box"},
                                 {"id": 9, "task": "point"}]
    assert [r.frame_idx for r in results] == [0, 1, 2] and all(r.obj_ids == (1, 2, 5, 9) for r in results)
    with zipfile.ZipFile(results_zip) as archive:
        names = set(archive.namelist())
    assert {"results.json", "boxes.csv", "points.npz", "lasot/obj_5.txt", "davis/00000.png"} <= names
    assert {f"masks/obj_{i}/{t:05d}.png" for i in (1, 2, 5, 9) for t in range(T)} <= names


# --------------------------------------------------------------------------- still images


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("image") / "photo.png"
    Image.fromarray(pattern_frame(9, H, W)).save(path)
    return path


def one_click(frame: int = 0, x: float = 20, y: float = 20) -> str:
    return json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": frame, "points": [[x, y]]}]}]})


def test_segment_image_gives_the_masks_zip_and_the_results(client, photo):
    prompts = json.dumps({"objects": [
        {"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[20, 20]]}]},
        {"id": 3, "task": "box", "prompts": [{"frame": 0, "box": [40, 10, 90, 60]}]}]})
    masks_zip, results = client.predict(handle_file(str(photo)), prompts,
                                        json.dumps({"model": MICRO, "choices": {"1": 2}}), api_name="/segment_image")
    document = json.loads(Path(results).read_text())
    assert [(o["id"], o["task"], len(o["candidates"])) for o in document["objects"]] == [(1, "mask", 3), (3, "box", 1)]
    assert document["objects"][0]["chosen"] == 2 and document["image"] == {
        "name": "photo.png", "width": W, "height": H, "frame": 0}
    with zipfile.ZipFile(masks_zip) as archive:
        names = set(archive.namelist())
        assert {"masks/obj_1.png", "masks/obj_3.png", "coco/instances.json", "results.json"} <= names
        mask = png_in_zip(archive, "masks/obj_1.png") == 255
    assert np.array_equal(mask, decode_rle(document["objects"][0]["mask"]))


def png_in_zip(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(archive.read(name))))


def test_find_objects_on_an_image_and_on_a_video_frame(client, photo, clip):
    options = json.dumps({"model": MICRO, "density": "coarse", "pred_iou_thresh": 0, "stability_score_thresh": 0,
                          "max_proposals": 4, "sort": "score"})
    on_image = json.loads(Path(client.predict(handle_file(str(photo)), 0, options, api_name="/find_objects"))
                          .read_text())
    proposals = on_image["proposals"]
    assert 0 < len(proposals) <= 4 and [p["id"] for p in proposals] == list(range(1, len(proposals) + 1))
    assert [p["predicted_iou"] for p in proposals] == sorted((p["predicted_iou"] for p in proposals), reverse=True)
    for proposal in proposals:
        mask = decode_rle(proposal["mask"])
        assert mask.shape == (H, W) and int(mask.sum()) == proposal["area"]
        assert set(proposal) == {"id", "mask", "bbox", "predicted_iou", "stability_score", "area", "point"}
    on_frame = json.loads(Path(client.predict(handle_file(str(clip)), 2, options, api_name="/find_objects"))
                          .read_text())
    assert on_frame["image"] == {"name": "clip.mp4", "width": W, "height": H, "frame": 2}


def test_the_api_page_shows_still_image_calls_that_work(client):
    """/segment_image's example is examples/shapes.png with a click and a box on its shapes, /find_objects' the
    example clip's frame 12; both are this app's URLs, and the calls as the page writes them run (with the micro model)."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    examples = Path(__file__).resolve().parents[1] / "examples"
    image, prompts, options = (p["example_input"] for p in endpoints["/segment_image"]["parameters"])
    assert image["url"] == f"{client.src}gradio_api/file={examples / 'shapes.png'}"
    prompts, options = (json.loads(f'"{text}"') for text in (prompts, options))
    assert json.loads(options)["model"] == "sam2++"
    results = client.predict(handle_file(image["url"]), prompts, json.dumps({"model": MICRO}),
                             api_name="/segment_image")[1]
    objects = json.loads(Path(results).read_text())["objects"]
    assert [(o["id"], o["prompt"], len(o["candidates"])) for o in objects] == [(1, "clicks", 3), (2, "box", 1)]
    source, frame, find_options = (p["example_input"] for p in endpoints["/find_objects"]["parameters"])
    assert source["url"] == f"{client.src}gradio_api/file={examples / 'shapes.mp4'}" and frame == 12
    assert json.loads(json.loads(f'"{find_options}"'))["density"] == "normal"
    untrained = {"pred_iou_thresh": 0, "stability_score_thresh": 0}  # seeded weights' masks pass no threshold
    found = client.predict(handle_file(source["url"]), frame,
                           json.dumps({"model": MICRO, "density": "coarse", **untrained}), api_name="/find_objects")
    assert json.loads(Path(found).read_text())["image"] == {"name": "shapes.mp4", "width": 320, "height": 240,
                                                            "frame": 12}


@pytest.mark.parametrize("endpoint, source, arguments, message", [
    ("/segment_image", "corrupt", (one_click(), "{}"), "The image cannot be used: corrupt.png: not a readable image"),
    ("/segment_image", "photo", (one_click(frame=3), "{}"),
     r"Invalid prompts: .*frame 3 is out of range; an image has one frame: use frame 0"),
    ("/segment_image", "photo", (one_click(x=W + 40), "{}"), f"x={W + 40} is outside the frame \\(width {W}"),
    ("/segment_image", "photo", (one_click(), '{"colour": "red"}'), r"invalid options: unknown key\(s\) 'colour'"),
    ("/segment_image", "photo", (one_click(), '{"choices": {"1": 7}}'), "candidate 7 does not exist"),
    ("/segment_image", None, (one_click(), "{}"), "no image: give an image file"),
    ("/find_objects", "corrupt", (0, "{}"), "The image cannot be used: corrupt.png: not a readable image"),
    ("/find_objects", "photo", (3, "{}"), "frame 3 is out of range; an image has one frame: use frame 0"),
    ("/find_objects", "clip", (7, "{}"), r"frame 7 is out of range; the video has 3 frames \(0..2\)"),
    ("/find_objects", "photo", (0, '{"density": "dense"}'), "invalid options: 'density' must be one of coarse"),
    ("/find_objects", "photo", (0, '{"points_per_side": 64, "crop_n_layers": 2}'), "s of GPU time; the limit is"),
])
def test_still_image_calls_refuse_bad_input_and_the_app_goes_on(client, photo, clip, tmp_path, endpoint, source,
                                                                arguments, message):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    files = {"photo": photo, "clip": clip, "corrupt": corrupt, None: None}
    upload = None if source is None else handle_file(str(files[source]))
    with pytest.raises(AppError, match=message):
        client.predict(upload, *arguments, api_name=endpoint)
    results = client.predict(handle_file(str(photo)), one_click(), json.dumps({"model": MICRO}),
                             api_name="/segment_image")[1]
    assert json.loads(Path(results).read_text())["objects"][0]["id"] == 1  # the app answers the next call
