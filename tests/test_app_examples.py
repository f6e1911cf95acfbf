"""The app's example clips: examples/make_examples.py makes exactly the committed clips, and the app takes
them under its default limits."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from media_clips import mean_abs_error

from sam2_plus.app.settings import AppLimits
from sam2_plus.media.decode import FrameSource

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_script_makes_the_committed_clips(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    committed = sorted(p.name for p in EXAMPLES.glob("*.mp4"))
    assert committed and sorted(p.name for p in tmp_path.glob("*.mp4")) == committed
    for name in committed:
        info = AppLimits().check_video(EXAMPLES / name)
        assert 2.0 <= info.duration <= 5.0
        with FrameSource(EXAMPLES / name) as ours, FrameSource(tmp_path / name) as made:
            assert (len(ours), ours.info.width, ours.info.height) == (len(made), made.info.width, made.info.height)
            # the same drawing; another x264 build may round differently, so not byte for byte
            assert max(mean_abs_error(ours[i], made[i]) for i in range(len(ours))) < 2.0


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_app_serves_the_example_clips_and_nothing_else_of_the_folder(app_server):
    clip = sorted(EXAMPLES.glob("*.mp4"))[0]
    assert _status(f"{app_server}gradio_api/file={clip}") == 200
    for other in (EXAMPLES / "make_examples.py", EXAMPLES / "no_such_clip.mp4"):
        assert _status(f"{app_server}gradio_api/file={other}") in (403, 404)
