"""Discovery wherever a job is described: `python -m sam2_plus.track --find`, the /track options' "find" and the
batch manifest's "find" give the same objects (ids, labels, scores, first frames, and on every frame the same
visibility and masks) as the service run with the same settings; bad values are refused with a precise message.

The clip is coloured squares (discovery_fakes.py) in a lossless MOV (PNG frames), so every entry point decodes
the same colours: red from frame 0; blue from frame 0, gone on frames 8-15 and back; green entering on frame 10.
The tracker and the finders are the colour stand-ins, handed to each entry point as its model provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import media_clips
from app_fakes import StandInModels
from discovery_fakes import BoxImagePredictor, ColourDetector, ColourFinder, ColourTracker, Square, draw
from micro_model import MICRO
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.plan import plan_job
from sam2_plus.app.settings import AppLimits
from sam2_plus.batch.driver import run_batch
from sam2_plus.batch.manifest import ManifestError, read_manifest
from sam2_plus.batch.runners import InProcessRunner
from sam2_plus.batch.store import DONE, OutputStore
from sam2_plus.batch.worker import WorkerSetup
from sam2_plus.discovery.finder import TextFinder
from sam2_plus.discovery.settings import DiscoverySettings, settings_from_json
from sam2_plus.prompts import PromptError
from sam2_plus.service import TrackOutputs, prepare_request, run_tracking
from sam2_plus.track import main as track_main
from sam2_plus.weights import WeightsSource

MODEL = MICRO  # never built: the stand-in tracker replaces it
FRAMES, SIZE = 24, (96, 128)
SCRIPT = [Square("red", range(0, FRAMES), 5, 5), Square("blue", range(0, 8), 5, 60, dx=0),
          Square("blue", range(16, FRAMES), 5, 60, dx=0), Square("green", range(10, FRAMES), 60, 40, dx=0)]
# the CLI's --find and the JSON's "find" for the same settings
FINDS = {"everything": ("everything", {"mode": "everything", "keyframe_interval": 5}),
         "text": ("red. green. blue.", {"phrases": ["red", "green", "blue"], "keyframe_interval": 5})}

pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames = [draw(SCRIPT, i, SIZE) for i in range(FRAMES)]
    return media_clips.write_clip(tmp_path_factory.mktemp("find") / "squares.mov", frames, codec="png",
                                  pix_fmt="rgb24")


def finder_for(settings: DiscoverySettings):
    """The stand-in finder of the settings' mode, built as the provider builds the real one."""
    if settings.mode == "text":
        return TextFinder(ColourDetector(), BoxImagePredictor(), settings)
    return ColourFinder()


def stand_in_models(provider: StandInModels | None = None) -> StandInModels:
    models = provider or StandInModels()
    models.use(make=lambda *key: ColourTracker())  # a fresh tracker per job
    models.use_finder(finder_for)
    return models


def objects_of(results_json: Path) -> dict[str, Any]:
    """What a job found: each object's fields, and per frame each object's visibility and mask."""
    document = json.loads(Path(results_json).read_text())
    frames = {entry["frame"]: {o["id"]: (o["visible"], o["mask"]["counts"] if o["mask"] else None)
                               for o in entry["objects"]}
              for entry in document["frames"]}
    return {"objects": document["objects"], "frames": frames}


def service_objects(clip: Path, find: dict, folder: Path) -> dict[str, Any]:
    """The reference: the service's job with the settings the JSON's "find" describes."""
    request = prepare_request(clip, None, model=MODEL, weights=WeightsSource("seeded"),
                              discovery=settings_from_json(find))
    run_tracking(request, TrackOutputs(results_json=folder / "service.json"), models=stand_in_models())
    return objects_of(folder / "service.json")


@pytest.fixture(scope="module", params=sorted(FINDS))
def case(request, clip, tmp_path_factory):
    """(--find's text, the JSON's "find", the service's objects for them); the reference is checked to hold what
    the clip's script says, so a comparison with it cannot pass on an empty result."""
    text, find = FINDS[request.param]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAM2PLUS_WEIGHTS", "seeded")
        expected = service_objects(clip, find, tmp_path_factory.mktemp("service"))
    firsts = sorted((o["first_frame"], o["label"]) for o in expected["objects"])
    labels = ("", "", "") if request.param == "everything" else ("red", "blue", "green")
    assert firsts == sorted(zip((0, 0, 10), labels))
    assert len(expected["frames"]) == FRAMES
    return text, find, expected


def test_the_cli_finds_the_objects_the_service_finds(case, clip, tmp_path, capsys):
    text, find, expected = case

    status = track_main([str(clip), "--find", text, "--keyframe-interval", "5", "--model", MODEL,
                         "--json", str(tmp_path / "cli.json"), "--quiet"], models=stand_in_models())

    out = capsys.readouterr().out
    assert status == 0
    assert objects_of(tmp_path / "cli.json") == expected
    assert f"find {'everything' if find.get('mode') == 'everything' else 'red; green; blue'} every 5 frames" in out
    assert "from frame 10, found on frame 10" in out


def test_the_track_api_finds_the_objects_the_service_finds(case, clip, app_server, server_models):
    text, find, expected = case
    stand_in_models(server_models)
    client = Client(app_server, verbose=False)
    try:
        options = json.dumps({"model": MODEL, "find": find})
        _, _, results_json = client.predict(handle_file(str(clip)), "", options, api_name="/track")
        assert objects_of(Path(results_json)) == expected
        # prompts with no objects: the same job
        _, _, results_json = client.predict(handle_file(str(clip)), '{"objects": []}', options, api_name="/track")
        assert objects_of(Path(results_json)) == expected
    finally:
        client.close()
        server_models.use_finder()


def test_a_batch_manifest_with_find_gives_the_objects_the_service_finds(case, clip, tmp_path):
    text, find, expected = case
    manifest = tmp_path / "manifest.jsonl"
    line = {"video": str(clip), "model": MODEL, "outputs": ["json"], "find": find}
    manifest.write_text(json.dumps({**line, "name": "found"}) + "\n"
                        + json.dumps({**line, "name": "no-objects", "prompts": {"objects": []}}) + "\n")
    jobs = read_manifest(manifest)
    store = OutputStore(tmp_path / "out")
    runner = InProcessRunner(WorkerSetup(store, WeightsSource("seeded"), stand_in_models()), "cpu")

    records = run_batch(jobs, store, runner, lambda p: None, lambda r: None, lambda: False)

    assert [(r.name, r.status, r.objects) for r in records] == [("found", DONE, 3), ("no-objects", DONE, 3)]
    assert objects_of(store.root / "found" / "results.json") == expected
    assert objects_of(store.root / "no-objects" / "results.json") == expected


def test_cli_prompts_and_find_combine_as_in_the_service(clip, tmp_path, capsys):
    """A box on the red square is object 1; discovery adds blue and green after it, not red again."""
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [5, 5, 21, 21]}]}]}
    request = prepare_request(clip, prompts, model=MODEL, discovery=settings_from_json(FINDS["everything"][1]))
    run_tracking(request, TrackOutputs(results_json=tmp_path / "service.json"), models=stand_in_models())
    expected = objects_of(tmp_path / "service.json")

    status = track_main([str(clip), "--box", "5,5,21,21", "--find", "everything", "--keyframe-interval", "5",
                         "--model", MODEL, "--json", str(tmp_path / "cli.json"), "--quiet"], models=stand_in_models())

    assert status == 0
    assert objects_of(tmp_path / "cli.json") == expected
    assert [(o["id"], o.get("first_frame")) for o in expected["objects"]] == [(1, None), (2, 0), (3, 10)]


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("args, message", [
    (["--find", "everything", "--keyframe-interval", "0"],
     "argument --keyframe-interval: must be a whole number of at least 1, got '0'"),
    (["--find", "everything", "--keyframe-interval", "two"],
     "argument --keyframe-interval: must be a whole number of at least 1, got 'two'"),
    (["--find", "red.", "--find-threshold", "1.5"], "argument --find-threshold: must be a number from 0 to 1, got '1.5'"),
    (["--find", ""], "error: --find: give 'everything' or phrases such as 'person. car.'"),
    (["--find", " . , "], "error: --find: the text mode needs at least one phrase, e.g. 'person. car.'"),
    (["--keyframe-interval", "5"], "error: --keyframe-interval set how objects are found: give --find everything"),
    (["--find", "everything", "--find-threshold", "0.5"],
     "error: --find-threshold and --detector are for phrases (the detector); --find everything uses automatic masks"),
    ([], "error: give a prompt: --box, --points or --mask (one object), or --prompts; or --find to find the objects"),
])
def test_the_cli_refuses_bad_find_values(clip, tmp_path, capsys, args, message):
    status = track_main([str(clip), *args, "--model", MODEL, "--json", str(tmp_path / "r.json"), "--quiet"],
                        models=stand_in_models())

    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_cli_with_find_and_a_prompt_flag_without_a_prompt_is_refused(clip, tmp_path, capsys):
    """--find makes the prompts optional, not a half-given prompt (--frame alone)."""
    status = track_main([str(clip), "--find", "everything", "--frame", "3", "--json", str(tmp_path / "r.json")],
                        models=stand_in_models())
    assert status == 2
    assert "error: give a prompt: --box, --points or --mask (one object), or --prompts" in capsys.readouterr().err


def test_an_unknown_looking_find_is_phrases(clip, tmp_path, capsys):
    """Not 'everything': the text mode with that phrase (the stand-in detector knows no 'tree': nothing found)."""
    status = track_main([str(clip), "--find", "Everything please", "--model", MODEL, "--json",
                         str(tmp_path / "r.json"), "--quiet"], models=stand_in_models())
    assert status == 0
    assert "find everything please every 15 frames" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["objects"] == []


@pytest.mark.parametrize("prompts, options, message", [
    ("", {"model": MODEL, "find": {"mode": "text"}},
     "invalid options: find: the text mode needs at least one phrase, e.g. 'person. car.'"),
    ("", {"model": MODEL, "find": {"mode": "everything", "keyframe_interval": 0}},
     "invalid options: find: 'keyframe_interval' must be a whole number from 1 to 10000, got 0"),
    ("", {"model": MODEL}, 'no prompts: give the prompts JSON, e.g. {"objects": [{"id": 1, "task": "mask", '),
    ('{"objects": []}', {"model": MODEL}, "'objects' is empty: give at least one object to track"),
])
def test_track_options_with_bad_or_without_find_are_refused(clip, prompts, options, message):
    with pytest.raises((AppInputError, PromptError)) as error:
        plan_job(str(clip), prompts, json.dumps(options), AppLimits())
    assert message in str(error.value)


def test_a_plan_with_find_and_no_objects_is_accepted(clip):
    plan = plan_job(str(clip), "", json.dumps({"model": MODEL, "find": "person. car."}), AppLimits())
    assert (plan.objects, plan.request.discovery.phrases) == (0, ("person", "car"))


def test_the_track_api_refuses_find_without_phrases(clip, app_server):
    client = Client(app_server, verbose=False)
    try:
        with pytest.raises(AppError, match=r"find: the text mode needs at least one phrase"):
            client.predict(handle_file(str(clip)), "", json.dumps({"model": MODEL, "find": {"mode": "text"}}),
                           api_name="/track")
    finally:
        client.close()


@pytest.mark.parametrize("line, message", [
    ({"video": "a.mp4"}, "line 1: 'prompts' is missing (or give 'find' to find the objects)"),
    ({"video": "a.mp4", "find": {"mode": "text"}},
     "line 1: find: the text mode needs at least one phrase, e.g. 'person. car.'"),
    ({"video": "a.mp4", "find": 3}, "line 1: find: give 'everything', phrases, or an object with 'mode', got 3"),
    ({"video": "a.mp4", "find": {"keyframe_interval": 0}},
     "line 1: find: 'keyframe_interval' must be a whole number from 1 to 10000, got 0"),
])
def test_manifest_find_errors_name_the_line(tmp_path, line, message):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps(line) + "\n")
    with pytest.raises(ManifestError) as error:
        read_manifest(manifest)
    assert message in str(error.value)


def test_a_manifest_line_with_find_needs_no_prompts(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"video": "a.mp4", "find": "person. car."}) + "\n")
    (job,) = read_manifest(manifest)
    assert job.prompts is None and job.find == DiscoverySettings("text", ("person", "car"))
