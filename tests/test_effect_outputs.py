"""Effect outputs of a tracking job (stand-in predictor, no model): the effect MP4 (H.264, timing, audio), the
cut-outs' alpha against the tracked masks (PNG exactly, VP9 within codec tolerance, ProRes exactly), the
results ZIP of an app job, live frames with the effects, the CLI's flags and the options JSON."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from app_fakes import QuickPredictor, StandInModels
from media_clips import pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus import track
from sam2_plus.app import gpu_time, jobs
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.options import TrackOptions, parse_options
from sam2_plus.app.jobs import RenderSettings
from sam2_plus.app.plan import plan_job
from sam2_plus.app.rerender import SceneChoices
from sam2_plus.app.session import AppSession
from sam2_plus.app.settings import AppLimits
from sam2_plus.effects.outputs import EffectOutputs
from sam2_plus.effects.render import EffectRenderer
from sam2_plus.effects.settings import Effect, parse_effects
from sam2_plus.media.alpha import alpha_encoder_available, read_alpha_video, read_png_sequence
from sam2_plus.media.decode import FrameSource, probe
from sam2_plus.media.export import read_results_json
from sam2_plus.service import TrackOutputs, prepare_request, run_tracking

H, W, T = 48, 64, 4
PROMPTS = {"objects": [
    {"id": 1, "task": "mask", "prompts": [{"frame": 1, "points": [[20, 20]]}]},
    {"id": 2, "task": "mask", "prompts": [{"frame": 0, "box": [36, 10, 60, 40]}]},
]}
CUTOUT = {"objects": {"1": "none", "2": "pixelate"}, "background": "erase", "cutout": ["webm", "mov", "png"]}
needs_prores = pytest.mark.skipif(not alpha_encoder_available("mov"), reason="this FFmpeg has no prores_ks")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("effects") / "clip.mp4", [pattern_frame(i, H, W) for i in range(T)],
                      fps=10, audio_codec="aac")


@pytest.fixture(scope="module")
def job(clip, tmp_path_factory):
    """One tracking run with every effect output (as the app writes them: bundled into the results ZIP)."""
    folder = tmp_path_factory.mktemp("job")
    settings = parse_effects(CUTOUT if alpha_encoder_available("mov") else {**CUTOUT, "cutout": ["webm", "png"]})
    effects = EffectOutputs.in_folder(settings, folder, folder / "results.zip", bundle=True)
    outputs = TrackOutputs(overlay=folder / "overlay.mp4", export=folder / "results.zip",
                           results_json=folder / "results.json", effects=effects)
    request = prepare_request(clip, PROMPTS, model=MICRO, device="cpu")
    summary = run_tracking(request, outputs, predictor=QuickPredictor())
    _, results = read_results_json(folder / "results.json")
    with FrameSource(clip) as frames:
        composed = {t: EffectRenderer(settings, request.tasks, with_alpha=True).compose(frames[t], results[t])
                    for t in range(T)}
    return summary, folder, results, composed


def test_the_effect_video_is_browser_h264_with_the_source_timing_and_audio(job, clip):
    summary, folder, _, composed = job
    info = probe(folder / "effect.mp4")
    assert (info.width, info.height, info.num_frames) == (W, H, T) and info.has_audio
    assert abs(info.duration - probe(clip).duration) < 0.15
    with av.open(str(folder / "effect.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    with FrameSource(folder / "effect.mp4") as frames:
        for t in range(T):
            assert np.abs(frames[t].astype(int) - composed[t].rgb).mean() < 4  # within H.264's loss
    assert summary.written["effect"] == folder / "effect.mp4"


def test_png_cutouts_in_the_zip_hold_the_mask_as_alpha_exactly(job):
    _, folder, results, composed = job
    pngs = read_png_sequence(folder / "results.zip")
    assert sorted(pngs) == list(range(T))
    for t, rgba in pngs.items():
        union = results[t].masks.any(axis=0)
        assert np.array_equal(rgba[..., 3], union.astype(np.uint8) * 255)
        assert np.array_equal(rgba[union][:, :3], composed[t].rgb[union])  # the effect frame, losslessly


def test_the_vp9_cutout_decodes_with_the_mask_as_alpha(job):
    _, folder, results, _ = job
    frames = list(read_alpha_video(folder / "cutout.webm"))
    assert len(frames) == T
    with av.open(str(folder / "cutout.webm")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9" and stream.metadata.get("alpha_mode") == "1"
    for t, rgba in enumerate(frames):
        error = np.abs(rgba[..., 3].astype(int) - results[t].masks.any(axis=0) * 255)
        assert error.mean() < 2 and np.percentile(error, 99) < 40  # VP9's loss, at the mask's edge


@needs_prores
def test_the_prores_cutout_keeps_alpha_exactly(job):
    _, folder, results, _ = job
    frames = list(read_alpha_video(folder / "cutout.mov"))
    assert len(frames) == T
    for t, rgba in enumerate(frames):
        assert np.array_equal(rgba[..., 3], results[t].masks.any(axis=0).astype(np.uint8) * 255)


def test_the_results_zip_bundles_the_effect_files(job):
    _, folder, _, _ = job
    with zipfile.ZipFile(folder / "results.zip") as archive:
        names = set(archive.namelist())
        assert {"effect.mp4", "cutout.webm", "results.json", "cutout/00000.png"} <= names
        assert archive.read("effect.mp4") == (folder / "effect.mp4").read_bytes()


# --------------------------------------------------------------------------- the app's job and options


def test_an_app_job_with_effects_lists_them_and_shows_them_live(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "LIVE_FRAME_INTERVAL", 0.0)
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL", 0.0)
    effects = {"objects": {"1": "fill", "2": "none"}, "background": "erase"}
    plan = plan_job(clip, json.dumps(PROMPTS), json.dumps({"model": MICRO, "effects": effects}), AppLimits())
    spec = plan.job_spec(tmp_path, tmp_path / "stop")  # what app.py's spaces.GPU function gets
    without = replace(spec, effects=None)
    assert jobs.job_gpu_seconds(spec) == plan.gpu_seconds > jobs.job_gpu_seconds(without)
    updates = list(jobs.run_job(spec, StandInModels(QuickPredictor())))
    files = updates[-1].result.files
    assert files.video == files.effect == tmp_path / "sam2plus_effect.mp4"
    assert files.cutouts == (tmp_path / "sam2plus_cutout.webm",)  # the default: webm and png
    assert [Path(p).name for p in files.downloads()] == ["sam2plus_results.zip", "sam2plus_results.json",
                                                         "sam2plus_overlay.mp4", "sam2plus_effect.mp4",
                                                         "sam2plus_cutout.webm"]
    live = [u for u in updates if u.frame is not None]
    assert live
    _, results = read_results_json(files.results_json)
    shown = results[live[-1].frame_idx]
    filled, kept = (shown.masks[shown.obj_ids.index(obj_id)] for obj_id in (1, 2))
    assert (live[-1].frame[~(filled | kept)] == 0).all() and (live[-1].frame[filled] == 0).all()
    with FrameSource(clip) as frames:
        source = frames[live[-1].frame_idx]
    assert np.array_equal(live[-1].frame[kept & ~filled], source[kept & ~filled])  # object 2: no effect


def test_options_carry_the_effects_and_check_them(clip):
    options = parse_options({"model": MICRO, "effects": {"objects": {"1": "blur"}}})
    assert options.effects.effect_for(1).name == "blur"
    assert parse_options(json.dumps(options.to_json())) == options
    assert "effects" not in TrackOptions().to_json()
    with pytest.raises(AppInputError, match=r"invalid options: effects.background: unknown effect 'blurry'; "
                                            "choose one of none, blur, grayscale, fill, erase, spotlight"):
        parse_options({"effects": {"background": "blurry"}})
    with pytest.raises(AppInputError, match="invalid options: effects.objects names object 9"):
        plan_job(clip, json.dumps(PROMPTS), {"effects": {"objects": {"9": "blur"}}}, AppLimits())


def test_the_apps_effect_choices_become_the_options(clip):
    session = AppSession.open(clip, AppLimits())
    erase = SceneChoices(Effect("erase"))
    try:
        assert session.render_settings().effects is None  # nothing chosen: no effect outputs
        session.set_effect("blur")
        session.set_effect_parameter("strength", 20)
        session.add_object()
        settings = session.render_settings(erase).effects
        assert settings.chosen([1, 2]) == (1, 2) and settings.background.name == "erase"
        assert settings.effect_for(1) == Effect("blur", strength=20.0) and settings.effect_for(2).is_none
        with pytest.raises(AppInputError, match="unknown effect 'glow'; choose one of none, blur"):
            session.set_effect("glow")
        session.select(1)
        session.set_effect("fill")
        session.set_effect("blur")  # its strength came back with it
        assert session.render_settings().effects.effect_for(1).strength == 20
        session.remove_selected()
        assert session.render_settings().effects is None
        session.scene = SceneChoices(export_formats=("coco",))
        assert session.render_settings() == RenderSettings(None, ("coco",))
    finally:
        session.close()


def test_effects_and_cutouts_ask_for_more_gpu_time():
    plain = gpu_time.estimate_gpu_seconds(600, 1, MICRO)
    effects = gpu_time.estimate_gpu_seconds(600, 1, MICRO, parse_effects({"background": "blur"}))
    cutouts = gpu_time.estimate_gpu_seconds(600, 1, MICRO, parse_effects({"background": "erase"}))
    assert plain < effects < cutouts


# --------------------------------------------------------------------------- the command line


def outputs_of(*argv: str) -> TrackOutputs:
    return track.command_outputs(track.build_parser().parse_args(["video.mp4", "--box", "1,2,3,4", *argv]))


def test_cli_flags_name_the_effect_outputs(tmp_path):
    outputs = outputs_of("--effect", "1=blur,strength=20", "--effect", "2=fill,color=#00ff00", "--background",
                         "erase", "--feather", "2", "--effect-out", "e.mp4", "--cutout", "c.webm", "--cutout", "pngs")
    effects = outputs.effects
    assert (effects.video, effects.webm, effects.mov, effects.png) == (Path("e.mp4"), Path("c.webm"), None,
                                                                       Path("pngs"))
    assert effects.settings.effect_for(1).strength == 20 and effects.settings.feather == 2
    assert effects.settings.chosen([1, 2, 3]) == (1, 2)
    plain_cutout = outputs_of("--cutout", "c.mov").effects  # no effect: a cut-out of every object
    assert plain_cutout.settings == parse_effects({}) and plain_cutout.mov == Path("c.mov")
    in_folder = outputs_of("--effects", '{"background": "erase", "cutout": ["png"]}', "--out-dir", str(tmp_path))
    assert in_folder.effects.video == tmp_path / "effect.mp4" and in_folder.effects.png == tmp_path / "results.zip"
    assert in_folder.effects.webm is None and "cutout_png" not in in_folder.paths()  # it is the export
    assert outputs_of("--out-dir", str(tmp_path)).effects is None


@pytest.mark.parametrize("argv, message", [
    (["--effect", "1=glow", "--effect-out", "e.mp4"], "--effect '1=glow': unknown effect 'glow'; choose one of "
                                                      "none, blur, pixelate, fill, outline"),
    (["--background", "fill,color=#12", "--effect-out", "e.mp4"], "--background 'fill,color=#12': color: "
                                                                  '"#12" is not a colour; give a colour as "#rrggbb"'),
    (["--effect", "1=blur"], "the effects need an output: --effect-out MP4, --cutout FILE or --out-dir DIR"),
    (["--effect-out", "e.mp4", "--out", "o.mp4"], "--effect-out needs an effect"),
    (["--effects", "{}", "--feather", "1", "--effect-out", "e.mp4"], "--effects describes every effect; drop "
                                                                     "--feather"),
    (["--cutout", "a.webm", "--cutout", "b.webm"], "a webm cut-out is already a.webm"),
    (["--effect", "2=blur", "--effect-out", "e.mp4"], "effects.objects names object 2, which the prompts do not"),
])
def test_cli_effect_errors_are_one_line_with_status_2(clip, tmp_path, capsys, argv, message):
    status = track.main([str(clip), "--box", "1,2,30,20", "--checkpoint", "seeded", *argv])
    assert status == track.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
