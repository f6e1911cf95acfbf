"""`python -m sam2_plus.track` end to end on the CPU with untrained stand-in weights (SAM2PLUS_WEIGHTS=seeded):
the overlay MP4 and every export are written and read back, a prompt on a middle frame gives the frames before
it too, and unusable input ends with a one-line error and status 2. The CLI runs in-process (main(argv)).

The micro model tracks the plumbing tests; SAM 2.1 tiny tracks a real video once (a real-size forward takes
seconds on a CPU, so that clip is three frames)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from export_readers import check_tool_exports
from media_clips import SHARED_VIDEOS, pattern_frame, write_clip
from micro_model import MICRO
from sam2_plus.exports.frames import write_frame_images
from sam2_plus.media.decode import probe
from sam2_plus.media.export import read_box_csv, read_lasot, read_mask_zip, read_point_tracks, read_results_json
from sam2_plus.media.rle import encode_rle
from sam2_plus.track import main

H, W, T = 64, 96, 3
UNTRAINED = "UNTRAINED stand-in weights"


pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 frames of 96x64 at 10 fps with an AAC audio track."""
    path = tmp_path_factory.mktemp("cli") / "clip.mp4"
    return write_clip(path, [pattern_frame(i, H, W) for i in range(T)], fps=10, audio_codec="aac")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_overlay(path: Path, frames: int, width: int, height: int, audio: bool) -> None:
    info = probe(path)
    assert (info.codec, info.num_frames, info.width, info.height, info.has_audio) == ("h264", frames, width, height,
                                                                                      audio)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


def unzip(path: Path, folder: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder


def assert_exports(folder: Path, frames: int, tasks: dict[int, str], masks_zip: Path) -> None:
    """results.json, boxes.csv, lasot/, points.npz in `folder` and the mask PNGs in `masks_zip`: one entry per
    frame and object."""
    ids = tuple(tasks)
    header, results = read_results_json(folder / "results.json")
    assert header["objects"] == [{"id": i, "task": t} for i, t in tasks.items()]
    assert [r.frame_idx for r in results] == list(range(frames)) and all(r.obj_ids == ids for r in results)
    rows = read_box_csv(folder / "boxes.csv")
    assert [(r.frame, r.obj_id) for r in rows] == [(f, i) for f in range(frames) for i in ids]
    lasot = read_lasot(folder / "lasot")
    assert sorted(lasot) == sorted(ids) and all(track.shape == (frames, 4) for track in lasot.values())
    points = read_point_tracks(folder / "points.npz")
    assert points.trajs_2d.shape == (frames, len(ids), 2) and points.obj_ids.tolist() == list(ids)
    contents = read_mask_zip(masks_zip)
    assert sorted(contents.object_masks) == sorted(ids)
    assert all(sorted(contents.object_masks[i]) == list(range(frames)) for i in ids)
    assert sorted(contents.davis) == list(range(frames))
    assert sorted(contents.davis_obj_ids.values()) == sorted(ids)


def test_points_on_a_middle_frame(clip, tmp_path, capsys):
    """Clicks on frame 1 of 3: the frame before it is tracked backward."""
    out, export, json_path = tmp_path / "overlay.mp4", tmp_path / "results.zip", tmp_path / "results.json"
    status, stdout, stderr = run_cli(capsys, clip, "--model", MICRO, "--device", "cpu", "--points",
                                     "30,20;70,40", "--labels", "1,0", "--frame", "1", "--obj-id", "7", "--out", out,
                                     "--export", export, "--json", json_path)
    assert status == 0, stderr
    assert UNTRAINED in stderr
    assert "tracked 3 of 3 frames" in stdout and str(export) in stdout
    assert_overlay(out, T, W, H, audio=True)
    assert_exports(unzip(export, tmp_path / "unzipped"), T, {7: "mask"}, export)
    _, results = read_results_json(json_path)
    assert [r.frame_idx for r in results] == [0, 1, 2]
    assert all(r.masks.shape == (1, H, W) for r in results)


def test_sam2plus_mixed_tasks_from_prompts_json(clip, tmp_path, capsys):
    """SAM 2++ (the micro model) with a box, a point and a mask object in one session, over the first 2 frames; every tool export
    format, read back by its own reader (tests/export_readers.py), and the review flags in the summary."""
    mask = np.zeros((H, W), bool)
    mask[10:30, 50:80] = True
    prompts = {"objects": [
        {"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [4, 4, 40, 30]}]},
        {"id": 2, "task": "point", "prompts": [{"frame": 0, "points": [[60, 48]]}]},
        {"id": 3, "task": "mask", "prompts": [{"frame": 0, "mask": encode_rle(mask)}]},
    ]}
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(prompts))
    out, export = tmp_path / "overlay.mp4", tmp_path / "results.zip"
    status, stdout, stderr = run_cli(capsys, clip, "--model", MICRO, "--device", "cpu", "--prompts",
                                     prompts_file, "--max-frames", "2", "--out", out, "--export", export,
                                     "--export-format", "all")
    assert status == 0, stderr
    assert UNTRAINED in stderr and "tracked 2 of 2 frames" in stdout
    assert "\nreview: " in stdout and "\n  object 3 (mask): " in stdout
    assert_overlay(out, 2, W, H, audio=True)
    assert_exports(unzip(export, tmp_path / "unzipped"), 2, {1: "box", 2: "point", 3: "mask"}, export)
    write_frame_images(clip, tmp_path / "frames", max_frames=2)
    check_tool_exports(tmp_path / "unzipped", tmp_path / "frames")


def test_real_video_three_frames(tmp_path, capsys):
    """SAM 2.1 tiny at its real size: 3 frames of a real 960x540 video, a box on frame 1, exports to a folder."""
    video = SHARED_VIDEOS / "bedroom.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is not present (../shared)")
    info = probe(video)
    out, folder = tmp_path / "overlay.mp4", tmp_path / "export"
    status, stdout, stderr = run_cli(capsys, video, "--model", "sam2.1-tiny", "--device", "cpu", "--box",
                                     "300,150,620,450", "--frame", "1", "--max-frames", "3", "--out", out,
                                     "--export", folder, "--quiet")
    assert status == 0, stderr
    assert_overlay(out, 3, info.width, info.height, audio=info.has_audio)
    assert_exports(folder, 3, {1: "mask"}, folder / "masks.zip")


# --------------------------------------------------------------------------- unusable input: status 2


@pytest.mark.parametrize("args, message", [
    (["--prompts", '{"objects": [}'], "not valid JSON"),
    (["--prompts", '{"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "points": [[1, 2]]}]}]}'],
     "task 'box' takes exactly a 'box'"),
    (["--points", "10,10", "--frame", "9"], "frame 9 is out of range; the video has 3 frames"),
    (["--box", "0,0,500,20"], "outside the frame"),
    (["--points", "10;20"], "--points entry"),
    (["--box", "1,2,3,4", "--prompts", "p.json"], "drop --box"),
    ([], "give a prompt"),
    (["--points", "10,10", "--task", "box"], "task 'box' takes exactly a 'box'"),
    (["--box", "1,2,30,40", "--task", "box", "--model", "sam2.1-tiny"], "has no 'box' task"),
    (["--points", "10,10", "--device", "nonsense"], "unknown device"),
    (["--points", "10,10", "--checkpoint", "/no/such/checkpoint.pt"], "checkpoint file not found"),
    (["--points", "10,10", "--max-frames", "0"], "--max-frames must be at least 1"),
    (["--points", "10,10", "--out-dir", "results"], "--out-dir names every output; drop --json"),
])
def test_bad_input_exits_with_status_2(clip, tmp_path, capsys, args, message):
    status, stdout, stderr = run_cli(capsys, clip, "--json", tmp_path / "r.json", *args)
    assert status == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ") and "Traceback" not in stderr
    assert not (tmp_path / "r.json").exists()


def test_missing_video_and_no_outputs(clip, tmp_path, capsys):
    status, _, stderr = run_cli(capsys, tmp_path / "missing.mp4", "--points", "1,1", "--json", tmp_path / "r.json")
    assert status == 2 and "missing.mp4: no such file" in stderr
    status, _, stderr = run_cli(capsys, clip, "--points", "1,1")
    assert status == 2 and "nothing to write" in stderr
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("hello")
    status, _, stderr = run_cli(capsys, not_a_video, "--points", "1,1", "--json", tmp_path / "r.json")
    assert status == 2 and "not a readable video" in stderr


def test_unreachable_hub_exits_with_status_2(clip, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from sam2_plus import weights

    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "hub")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: "test: no network")
    status, _, stderr = run_cli(capsys, clip, "--model", "sam2.1-tiny", "--device", "cpu", "--points", "1,1",
                                "--json", tmp_path / "r.json")
    assert status == 2
    assert "cannot reach" in stderr and "test: no network" in stderr and "SAM2PLUS_WEIGHTS" in stderr
    assert "Traceback" not in stderr and UNTRAINED not in stderr


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "--prompts" in capsys.readouterr().out


def test_progress_line_without_tqdm():
    import io

    from sam2_plus.service import PromptStep, TrackProgress
    from sam2_plus.track import ProgressDisplay

    stream = io.StringIO()
    display = ProgressDisplay(stream, use_tqdm=False, min_interval=0.0)
    display(TrackProgress("loading", 0, 4, 0.1))
    for number in (1, 2):
        display(TrackProgress("prompting", 0, 4, 0.5, prompt=PromptStep(number, 2, number, number, 2, 0)))
    display(TrackProgress("tracking", 1, 4, 2.0, eta=75.0, frame_idx=0, frames_per_second=0.04))
    display(TrackProgress("tracking", 4, 4, 5.0, eta=0.0, frame_idx=3, frames_per_second=0.8))
    display.close()
    text = stream.getvalue()
    assert "loading the model...\nadding the prompts: object 1 of 2 (id 1) on frame 0, prompt 1 of 2\n" \
           "adding the prompts: object 2 of 2 (id 2) on frame 0, prompt 2 of 2\n\rtracking 1/4" in text
    assert "tracking 1/4 frames  0.04 frames/s  ETA 1:15" in text and "tracking 4/4 frames" in text
    assert text.endswith("\n")


def test_model_failure_mid_run_is_one_line_and_keeps_the_frames(clip, tmp_path, capsys, monkeypatch):
    """Out of memory on the second tracked frame: status 1, a one-line error, the outputs hold frame 0..1."""
    from sam2_plus.video.stepper import FrameStepper

    original, calls = FrameStepper.track_batch, []

    def failing_batch(self, session, members, frame_idx, reverse):
        calls.append(frame_idx)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, session, members, frame_idx, reverse)

    monkeypatch.setattr(FrameStepper, "track_batch", failing_batch)
    json_path = tmp_path / "results.json"
    status, _, stderr = run_cli(capsys, clip, "--model", MICRO, "--device", "cpu", "--box", "10,10,60,50",
                                "--json", json_path)
    assert status == 1
    assert "Traceback" not in stderr
    assert "error: tracking failed" in stderr and "out of memory" in stderr.lower()
    _, results = read_results_json(json_path)
    assert [r.frame_idx for r in results] == [0, 1]
