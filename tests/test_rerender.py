"""Re-rendering a run's files without the model (sam2_plus/app/rerender.py): the records every job keeps
(lossless), a re-render's files against a job's with the same settings, the session's re-render (only when the
choices changed, never during a job, stopped by a newer change), the page's settings and their messages, and
the cut-out preview. The stand-in predictor of tests/app_fakes.py tracks, so this takes seconds."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from app_fakes import QuickPredictor
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.app import jobs
from sam2_plus.app.editing import BOX, POSITIVE
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.jobs import RenderSettings
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.plan import plan_job
from sam2_plus.app.rerender import (
    CHECKER_GREYS, RerenderError, SceneChoices, as_rendered, parse_scene, render_settings, rerender, tuned,
)
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.effects.settings import Effect, parse_effects
from sam2_plus.media.alpha import read_alpha_video
from sam2_plus.media.decode import VideoInfo
from sam2_plus.media.export import FrameRecord
from sam2_plus.outputs import RecordError, RecordFile, RecordWriter

H, W, T = 48, 64, 6
PROMPTS = {"objects": [
    {"id": 1, "task": "mask", "prompts": [{"frame": 1, "points": [[20, 20]]}]},
    {"id": 2, "task": "box", "prompts": [{"frame": 0, "box": [36, 10, 60, 40]}]},
]}
EFFECTS = {"objects": {"1": {"effect": "blur", "strength": 30}, "2": {"effect": "fill", "color": "#ff0000"}},
           "background": "erase", "feather": 1.5}
MEDIA = (".mp4", ".webm", ".mov")  # compared by their decoded frames (a WebM's header has a random id)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("rerender") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)],
                      fps=10, audio_codec="aac")


class CountingPredictors:
    """A model provider of stand-ins: a QuickPredictor each call, counted (a re-render must make none)."""

    def __init__(self) -> None:
        self.calls = 0

    def video_predictor(self, *key) -> QuickPredictor:
        self.calls += 1
        return QuickPredictor()


@pytest.fixture
def predictors(seeded_weights) -> CountingPredictors:
    return CountingPredictors()


def run_app_job(clip: Path, options: dict, folder: Path, models: CountingPredictors) -> jobs.JobResult:
    plan = plan_job(clip, json.dumps(PROMPTS), json.dumps({"model": MICRO, **options}), AppLimits())
    folder.mkdir()
    *_, last = jobs.run_job(plan.job_spec(folder, folder / "stop"), models)
    return last.result


def frames_of(path: Path) -> list[np.ndarray]:
    if path.suffix == ".mp4":
        with av.open(str(path)) as container:
            return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return list(read_alpha_video(path))


def assert_same_entries(first: Path, second: Path) -> None:
    """The two ZIPs hold the same names with the same bytes (media: the same decoded frames)."""
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            if not name.endswith(MEDIA):
                assert a.read(name) == b.read(name), name
                continue
            extracted = [Path(archive.extract(name, path=str(Path(archive.filename).parent / "unzipped")))
                         for archive in (a, b)]
            assert all(np.array_equal(x, y) for x, y in zip(*map(frames_of, extracted), strict=True)), name


# --------------------------------------------------------------------------- the records


def test_records_keep_every_frame_exactly(tmp_path):
    rng = np.random.default_rng(3)
    masks = rng.random((3, H, W)) > 0.6
    boxes = rng.random((3, 4)).astype(np.float32) * 50
    boxes[1] = np.nan
    first = FrameRecord(2, [1, 5, 9], masks, boxes, rng.random((3, 2)) * 40, rng.random(3), [True, False, True],
                        np.array([0.5, np.nan, 0.123456789], np.float32))
    second = FrameRecord(4, [1, 5, 9], ~masks, None, None, [0.1, 0.2, 0.3], [False, True, True])
    empty = FrameRecord(7, [], np.zeros((0, H, W), bool), np.zeros((0, 4)), None, [], [])
    info = VideoInfo("arrays", 8, 10.0, W, H, 0.8)
    writer = RecordWriter(tmp_path / "records.jsonl", info, {1: "mask", 5: "box", 9: "point"})
    for record in (first, second, empty):
        writer.write(record)
    writer.close()
    records = RecordFile(tmp_path / "records.jsonl")
    assert records.tasks == {1: "mask", 5: "box", 9: "point"} and records.size == (H, W) and records.num_frames == 8
    assert records.frames == [2, 4, 7] and records.get(3) is None
    for written, read in zip((first, second, empty), [records.get(4 - 2), records.get(4), records.get(7)]):
        assert read.frame_idx == written.frame_idx and tuple(read.obj_ids) == tuple(written.obj_ids)
        assert np.array_equal(read.masks, written.masks)
        for name in ("boxes", "points", "scores", "visible", "motion_scores"):
            mine, theirs = getattr(read, name), getattr(written, name)
            assert (mine is None) == (theirs is None), name
            if mine is not None:
                assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs, equal_nan=mine.dtype.kind == "f")
    assert [r.frame_idx for r in records] == [2, 4, 7]

    text = (tmp_path / "records.jsonl").read_bytes()
    (tmp_path / "cut.jsonl").write_bytes(text[:-10])
    with pytest.raises(RecordError, match="cut.jsonl is cut short after 2 frames"):
        RecordFile(tmp_path / "cut.jsonl")
    (tmp_path / "other.jsonl").write_text('{"format": "sam2plus-results"}\n')
    with pytest.raises(RecordError, match="other.jsonl is not a records file"):
        RecordFile(tmp_path / "other.jsonl")
    with pytest.raises(RecordError, match="the stored results gone.jsonl are gone"):
        RecordFile(tmp_path / "gone.jsonl")


# --------------------------------------------------------------------------- the re-render


def test_a_rerender_writes_what_a_job_with_those_settings_writes(clip, tmp_path, predictors):
    with_effects = run_app_job(clip, {"effects": EFFECTS, "export_formats": ["cvat", "yolo-seg"]}, tmp_path / "a",
                               predictors)
    plain = run_app_job(clip, {}, tmp_path / "b", predictors)
    assert predictors.calls == 2 and plain.files.effect is None and plain.files.records.is_file()
    target = with_effects.rendered
    assert target == RenderSettings(parse_effects(EFFECTS), ("cvat", "yolo-seg"))

    (tmp_path / "c").mkdir()
    updates = list(rerender(plain, RecordFile(plain.files.records), clip, tmp_path / "c", target))
    assert predictors.calls == 2  # no predictor was asked for
    assert [u.frames_done for u in updates] == [*range(1, T + 1), T] and updates[-1].frames_total == T
    result = updates[-1].result
    files = result.files
    assert result.rendered == target and result.review == plain.review and result.summary == plain.summary
    assert [Path(p).name for p in files.downloads()] == [Path(p).name for p in with_effects.files.downloads()]
    assert all(Path(p).parent == tmp_path / "c" for p in files.downloads())
    assert files.overlay.stat().st_ino == plain.files.overlay.stat().st_ino  # linked: it does not change
    assert_same_entries(with_effects.files.export, files.export)
    for mine, job in ((files.effect, with_effects.files.effect), (files.cutouts[0], with_effects.files.cutouts[0])):
        assert all(np.array_equal(x, y) for x, y in zip(frames_of(mine), frames_of(job), strict=True))
    assert frames_of(files.effect)[0].tolist() != frames_of(files.overlay)[0].tolist()

    (tmp_path / "d").mkdir()  # and back: the files of a job without effects or formats
    *_, back = rerender(result, RecordFile(files.records), clip, tmp_path / "d", RenderSettings())
    assert back.result.files.effect is None and back.result.files.cutouts == ()
    assert_same_entries(plain.files.export, back.result.files.export)


def test_a_rerender_refuses_what_the_runs_objects_cannot_take(clip, tmp_path):
    records = tmp_path / "records.jsonl"
    info = VideoInfo("arrays", T, 10.0, W, H, 0.6)
    RecordWriter(records, info, {1000: "mask"}).close()
    result = jobs.JobResult(jobs.JobFiles(records=records), "", False, 0, T, None, None)
    with pytest.raises(RerenderError, match="the mots export needs object ids from 1 to 999 .* object 1000 is not"):
        next(rerender(result, RecordFile(records), clip, tmp_path, RenderSettings(None, ("mots",))))
    other = write_clip(tmp_path / "other.mp4", [pattern_frame(i, H, W) for i in range(T - 1)], fps=10)
    with pytest.raises(RerenderError, match=f"the video has {T - 1} frames, its stored results {T}: track again"):
        next(rerender(result, RecordFile(records), other, tmp_path, RenderSettings()))


# --------------------------------------------------------------------------- the session's re-render


def tracked_session(clip: Path, models: CountingPredictors, scene: SceneChoices = SceneChoices()) -> AppSession:
    session = AppSession.open(clip, AppLimits(), models=models)
    session.click(POSITIVE, 1, 20, 20)
    session.add_object()
    session.click(BOX, 0, 36, 10)
    session.click(BOX, 0, 60, 40)
    session.scene = scene
    settings = session.render_settings()
    *_, last = session.tracking_job(TrackOptions(MICRO, False, settings.export_formats, settings.effects),
                                    AppLimits())
    assert last.result.frames_done == T
    return session


def test_the_session_rerenders_when_its_choices_change_and_only_then(clip, predictors):
    session = tracked_session(clip, predictors)
    try:
        tracked = session.results
        assert session.rerender_target() is None and list(session.rerender()) == []
        session.select(1)
        session.set_effect("blur")
        session.set_effect_parameter("strength", 25)
        session.scene = parse_scene("spotlight", 12, None, 0.5, 0, ["webm"], ["yolo-det", "cvat"])
        target = session.rerender_target()
        assert target.effects.effect_for(1) == Effect("blur", strength=25.0)
        assert target.effects.background == Effect("spotlight", dim=0.5) and target.export_formats == ("yolo-det",
                                                                                                        "cvat")
        rendering = session.rerender()
        final = next(update for update in rendering if update.result is not None)
        rendering.close()  # as the page does once it has the files
        assert predictors.calls == 1 and final.result is session.results
        files = session.results.files
        assert files.effect is not None and files.cutouts == () and files.export.parent == session.job_dir
        with zipfile.ZipFile(files.export) as archive:
            assert {"yolo-det/data.yaml", "cvat/annotations.xml"} <= set(archive.namelist())
        assert session.results.rendered == target and session.rerender_target() is None
        assert session.results.review == tracked.review and session.tracked_frame(2) is not None
        session.set_effect("none")  # back to where the run was: its files again
        session.scene = SceneChoices()
        *_, last = session.rerender()
        assert last.result.files.effect is None and session.rerender_target() is None
        assert not tracked.files.overlay.parent.exists()  # the run's own folder went with its results
    finally:
        session.close()


def test_a_rerender_never_runs_with_a_job_and_stops_for_a_newer_change(clip, predictors):
    session = tracked_session(clip, predictors)
    try:
        before, folders = session.results, lambda: sorted(p.name for p in session.workdir.glob("job-*"))
        session.select(1)
        session.set_effect("pixelate")
        session.files.begin_job()  # a job runs: no re-render
        assert list(session.rerender()) == []
        session.files.end_job()

        rendering = session.rerender()
        assert next(rendering).frames_done == 1
        session.set_effect_parameter("block", 4)  # a newer change: this one stops, the change's own follows
        assert [u.result for u in rendering] == [] and session.results is before
        assert folders() == [before.files.overlay.parent.name]

        rendering = session.rerender()
        next(rendering)
        session.files.begin_job()  # a job started (Track): the re-render stops at its next frame
        assert list(rendering) == [] and session.results is before
        session.files.end_job()
        *_, last = session.rerender()
        assert last.result.rendered.effects.effect_for(1) == Effect("pixelate", block=4)
        assert predictors.calls == 1
    finally:
        session.close()


def test_a_job_after_a_rerender_makes_its_own_files(clip, predictors):
    session = tracked_session(clip, predictors)
    try:
        session.scene = SceneChoices(export_formats=("mot",))
        *_, rerendered = session.rerender()
        *_, tracked = session.tracking_job(TrackOptions(MICRO, False, ("coco",)), AppLimits())
        assert tracked.result.rendered == RenderSettings(None, ("coco",)) and predictors.calls == 2
        assert rerendered.result.files.export != tracked.result.files.export
        assert session.rerender_target() == RenderSettings(None, ("mot",))  # the page still says mot
    finally:
        session.close()


def test_without_results_there_is_nothing_to_rerender(clip, seeded_weights):
    session = AppSession.open(clip, AppLimits())
    try:
        assert session.rerender_target() is None and list(session.rerender()) == []
        with pytest.raises(RerenderError, match="there are no results to re-render yet: track first"):
            session.records
    finally:
        session.close()


# --------------------------------------------------------------------------- the page's settings


def test_settings_from_the_page_are_checked_with_precise_messages():
    scene = parse_scene("fill", 12, "#00FF00", 0.3, 2, ["png", "webm"], ["coco", "cvat"])
    assert scene == SceneChoices(Effect("fill", color=(0, 255, 0)), 2.0, ("png", "webm"), ("coco", "cvat"))
    assert parse_scene("blur", 40, "not read", 7, 0, [], []).background == Effect("blur", strength=40.0)
    with pytest.raises(AppInputError, match=r"^Feather: must be a number from 0.0 to 50.0, got 80$"):
        parse_scene("none", 12, None, 0.3, 80, [], [])
    with pytest.raises(AppInputError, match=r'^Background effect: color: "#12" is not a colour; give a colour'):
        parse_scene("fill", 12, "#12", 0.3, 0, [], [])
    with pytest.raises(AppInputError, match=r"^Background effect: dim: must be a number from 0.0 to 1.0, got 2"):
        parse_scene("spotlight", 12, None, 2, 0, [], [])
    with pytest.raises(AppInputError, match=r"unknown export format 'pascal'; valid formats: cvat"):
        parse_scene("none", 12, None, 0.3, 0, [], ["pascal"])

    blur = Effect("blur")
    assert tuned(blur, "strength", 40, "car") == Effect("blur", strength=40.0)
    with pytest.raises(AppInputError, match=r"^car's blur strength: must be a number from 0.5 to 100.0, got 300$"):
        tuned(blur, "strength", 300, "car")
    with pytest.raises(AppInputError, match=r"^car's effect blur takes blur strength, not a colour$"):
        tuned(blur, "color", "#ffffff", "car")
    with pytest.raises(AppInputError, match=r"^car's pixelate block: must be an integer from 2 to 256, got 2.5$"):
        tuned(Effect("pixelate"), "block", 2.5, "car")
    assert tuned(Effect("outline"), "color", "#0000ff", "car").color == (0, 0, 255)


def test_settings_that_render_alike_are_equal():
    kept = Effect("none", strength=40.0, color=(1, 2, 3))  # parameters kept from an earlier effect
    assert as_rendered(kept) == Effect() and as_rendered(Effect("blur", block=4)) == Effect("blur")
    nothing = render_settings({1: kept}, SceneChoices(feather=3, export_formats=("mot",)), [1, 2])
    assert nothing == RenderSettings(None, ("mot",))
    some = render_settings({2: Effect("outline", strength=99.0)}, SceneChoices(), [1, 2])
    assert some.effects.objects == ((1, Effect()), (2, Effect("outline")))


def test_the_cutout_previews_on_a_checkerboard(clip, predictors):
    session = tracked_session(clip, predictors, SceneChoices(Effect("erase")))
    try:
        assert session.results.rendered.effects.erases_background
        preview = session.cutout_preview(3)
        scale = preview.shape[0] // H
        assert preview.shape == (H * scale, W * scale, 3) and scale > 1
        record = session.records.get(3)
        inside = np.repeat(np.repeat(record.masks.any(axis=0), scale, axis=0), scale, axis=1)
        source = np.repeat(np.repeat(session.frame(3), scale, axis=0), scale, axis=1)
        assert np.array_equal(preview[inside], source[inside])
        assert set(np.unique(preview[~inside])) == set(CHECKER_GREYS)
        session.scene = SceneChoices()
        list(session.rerender())
        assert session.cutout_preview(3) is None  # the background is no longer erased
    finally:
        session.close()
