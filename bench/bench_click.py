"""Click latency of the app's preview: the first click on a frame (image encoder, prompt encoder, decoder)
against the next clicks there (the frame's image features kept by the app's FeatureStore).

    python bench/bench_click.py [--model sam2++] [--size 1280x720] [--clicks 4] [--threads 2]

Seeded weights (no download); the preview goes through `preview_with_features` as the app's handler calls
it, with the store in between. Prints one line per click and the ratio of the first to the median of the
others.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sam2_plus import service  # noqa: E402
from sam2_plus.app.feature_store import FeatureStore, features_key  # noqa: E402
from sam2_plus.app.preview import preview_with_features  # noqa: E402
from sam2_plus.app.settings import AppLimits  # noqa: E402
from sam2_plus.media.encode import VideoWriter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import synthetic_video  # noqa: E402


def click_request(video: Path, model: str, frame: int, x: float, y: float) -> service.TrackRequest:
    prompts = {"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": frame, "points": [[x, y]]}]}]}
    return service.prepare_request(video, json.dumps(prompts), model=model)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sam2++")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--clicks", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ.setdefault("SAM2PLUS_WEIGHTS", "seeded")
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="sam2plus_click_") as tmp:
        video = Path(tmp) / "clip.mp4"
        with VideoWriter(video, fps=10, width=width, height=height) as writer:
            for frame in synthetic_video(3, height, width):
                writer.write(frame)
        warm = click_request(video, args.model, 0, width / 3, height / 3)
        preview_with_features(warm)  # the model is loaded once per process, as in the app
        store = FeatureStore(AppLimits().feature_cache_bytes)
        seconds = []
        for k in range(args.clicks):
            request = click_request(video, args.model, 1, width * (0.3 + 0.1 * k), height / 2)
            start = time.perf_counter()
            output = preview_with_features(request, store.get(features_key(request, 1)))
            store.put(output.features)
            seconds.append(time.perf_counter() - start)
            print(f"click {k + 1} on frame 1: {seconds[-1]:.3f} s", flush=True)
    rest = statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan")
    print(json.dumps({"model": args.model, "video": args.size, "threads": args.threads,
                      "first_click_s": round(seconds[0], 3), "next_clicks_median_s": round(rest, 3),
                      "speedup": round(seconds[0] / rest, 1)}))


if __name__ == "__main__":
    main()
