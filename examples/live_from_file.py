"""Stream a video file to the running app as if it were a camera, prompt a box on its first frame, and save the
live session's files (overlay MP4, results ZIP, results JSON).

    python app.py &                                   # http://127.0.0.1:7860
    python examples/live_from_file.py http://127.0.0.1:7860 examples/shapes.mp4 --box 10 20 120 110 --out live/

Gradio's streaming events (the Live tab's camera) cannot be driven from gradio_client, so the app has two named
endpoints sharing the Live tab's logic: `/live_frame` (one frame, prompts on it, answered with the frame drawn and
the status JSON) and `/live_stop` (the files). The client's session holds the live session, as a browser tab's
does. --realtime sends the frames at the video's own pace, as a camera would; by default each frame is sent once
the previous one is answered.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
from gradio_client import Client, handle_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the app's address, e.g. http://127.0.0.1:7860")
    parser.add_argument("video", type=Path, help="the video file to stream")
    parser.add_argument("--box", type=float, nargs=4, required=True, metavar=("X1", "Y1", "X2", "Y2"),
                        help="the object's box on the first frame, in pixels")
    parser.add_argument("--task", default="mask", choices=("mask", "box", "point"),
                        help="the object's granularity (box and point: sam2++ only)")
    parser.add_argument("--model", default="sam2++")
    parser.add_argument("--frames", type=int, default=None, help="send at most this many frames")
    parser.add_argument("--realtime", action="store_true", help="send at the video's own frame rate")
    parser.add_argument("--out", type=Path, default=Path("live-results"), help="folder for the files")
    return parser.parse_args(argv)


def frames_of(video: Path, limit: int | None):
    """(seconds, PIL image) of each frame, at most `limit`."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for number, frame in enumerate(container.decode(stream)):
            if limit is not None and number >= limit:
                return
            yield float(frame.time or 0.0), frame.to_image()


def box_prompt(box: list[float], task: str) -> str:
    return json.dumps({"objects": [{"id": 1, "task": task, "prompts": [{"frame": 0, "box": box}]}]})


def main(argv=None) -> int:
    args = parse_args(argv)
    client = Client(args.url, verbose=False)
    options = json.dumps({"model": args.model})
    args.out.mkdir(parents=True, exist_ok=True)
    status: dict = {}
    with tempfile.TemporaryDirectory(prefix="live-from-file-") as tmp:
        started = time.monotonic()
        for number, (seconds, image) in enumerate(frames_of(args.video, args.frames)):
            if args.realtime:
                time.sleep(max(0.0, seconds - (time.monotonic() - started)))
            path = Path(tmp) / "frame.png"
            image.save(path)
            prompts = box_prompt(args.box, args.task) if number == 0 else ""
            _, status = client.predict(handle_file(str(path)), prompts, options, api_name="/live_frame")
            print(f"frame {status['frame']}: {status['frames_per_second']} frames/s, latency "
                  f"{status['latency_ms']} ms, objects {status['objects']}", flush=True)
        saved = []
        for name, file in zip(("overlay.mp4", "results.zip", "results.json"),
                              client.predict(api_name="/live_stop")):
            saved.append(Path(shutil.copy(file, args.out / name)))
    print(f"{status.get('processed', 0)} frames tracked; wrote " + ", ".join(map(str, saved)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
