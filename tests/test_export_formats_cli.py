"""Export formats and review flags at the interfaces: the CLI's --export-format (unusable values end with status
2 before any model runs), the summary's flag lines, the options JSON of /track and the batch manifest.
(tests/test_track_cli.py tracks a clip with the real model into every format, read back by
tests/export_readers.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from media_clips import write_clip
from micro_model import MICRO
from sam2_plus import service
from sam2_plus.app.errors import AppInputError
from sam2_plus.app.options import TrackOptions, parse_options
from sam2_plus.batch.manifest import ManifestError, read_manifest
from sam2_plus.exports.frames import write_frame_images
from sam2_plus.review import Flag, ObjectTimeline, ReviewReport
from sam2_plus.track import main

H, W, T = 64, 96, 3
PROMPTS = {"objects": [
    {"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [4, 8, 30, 40]}]},
    {"id": 2, "task": "mask", "prompts": [{"frame": 0, "points": [[60, 20]]}]},
    {"id": 5, "task": "mask", "prompts": [{"frame": 1, "box": [50, 30, 90, 60]}]},
]}


pytestmark = pytest.mark.usefixtures("seeded_weights")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames = [np.full((H, W, 3), 90 + 10 * t, np.uint8) for t in range(T)]
    return write_clip(tmp_path_factory.mktemp("formats") / "clip.mp4", frames, fps=10)


def test_summary_lists_flags_per_object():
    report = ReviewReport((ObjectTimeline(1, "mask", (0, 1), (0.9, 0.1), (50, 0), (True, False),
                                          (Flag(1, "lost"),)),))
    summary = service.TrackSummary(video=None, model="m", device="cpu", weights=service.weights_from_env(),
                                   tasks={1: "mask"}, frames_total=2, frames_done=2, first_frame=0, last_frame=1,
                                   stopped=False, stopped_at=None, seconds=1.0, model_seconds=0.5, load_seconds=0.1,
                                   review=report)
    text = summary.describe()
    assert "review: 1 flag\n  object 1 (mask): 1 lost; flagged frames 1 (lost)" in text


@pytest.mark.parametrize("args, message", [
    (["--export", "r.zip", "--export-format", "cvat,yolo"],
     "unknown --export-format 'yolo'; valid formats: cvat, yolo-seg, yolo-det, mot, mots, coco, tapvid (or all)"),
    (["--out", "o.mp4", "--export-format", "cvat"], "--export-format adds to the export"),
])
def test_unusable_export_formats_exit_2(clip, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    status = main([str(clip), "--box", "1,1,20,20", *args])
    assert status == 2 and message in capsys.readouterr().err


def test_mots_with_a_large_object_id_is_refused_before_tracking(clip, tmp_path, capsys):
    status = main([str(clip), "--box", "1,1,20,20", "--obj-id", "1234", "--export", str(tmp_path / "r.zip"),
                   "--export-format", "mots", "--model", MICRO, "--device", "cpu"])
    assert status == 2 and "object ids from 1 to 999" in capsys.readouterr().err


def test_options_json_takes_export_formats():
    options = parse_options({"model": MICRO, "export_formats": ["cvat", "COCO"]})
    assert options.export_formats == ("cvat", "coco")
    assert options.to_json()["export_formats"] == ["cvat", "coco"]
    assert "export_formats" not in TrackOptions().to_json()  # the default options JSON is unchanged
    with pytest.raises(AppInputError, match="unknown export format 'voc'; valid formats: cvat, yolo-seg"):
        parse_options('{"export_formats": ["voc"]}')
    with pytest.raises(AppInputError, match="'export_formats' must be a list of names"):
        parse_options('{"export_formats": "cvat"}')


def test_batch_manifest_passes_export_formats(tmp_path):
    line = {"video": "a.mp4", "prompts": PROMPTS, "export_formats": ["mot", "coco"]}
    (tmp_path / "m.jsonl").write_text(json.dumps(line) + "\n" + json.dumps({**line, "name": "b", "outputs": ["json"]}))
    with pytest.raises(ManifestError, match="line 2: 'export_formats' go into the export"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text(json.dumps(line) + "\n")
    assert read_manifest(tmp_path / "m.jsonl")[0].export_formats == ("mot", "coco")


def test_frame_images_for_the_exports(clip, tmp_path):
    assert write_frame_images(clip, tmp_path / "a") == T
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"frame_{t:06d}.jpg" for t in range(T)]
    write_frame_images(clip, tmp_path / "img1", mot=True, max_frames=2)
    assert sorted(p.name for p in (tmp_path / "img1").iterdir()) == ["000001.jpg", "000002.jpg"]
