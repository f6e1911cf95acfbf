"""The app's settings: the models it offers, its limits (environment variables SAM2PLUS_*), the weights banner."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import MODEL_CONFIG_FILES, TEST_MODEL_CONFIG_FILES, load_config
from ..media.decode import MediaLimitError, MediaLimits, VideoInfo, probe
from ..prompts import PromptLimits
from ..weights import WEIGHTS_ENV, hub_access, weights_from_env
from .errors import AppInputError

MODELS = tuple(MODEL_CONFIG_FILES)
TEST_MODELS = tuple(TEST_MODEL_CONFIG_FILES)  # offered too while the weights are stand-ins (see offered_models)
DEFAULT_MODEL = "sam2++"
ENV_PREFIX = "SAM2PLUS_"
MAX_OBJECTS = PromptLimits().max_objects  # the prompts format's limit; the app itself sets none
# The probe scans a video's packets up to this many times the frame and duration limits: a video a little over
# them is refused with its exact length, a far longer one (a small file claiming millions of frames) as soon as
# the scan passes this bound, so the probe's cost stays within a few times that of an allowed video.
SCAN_FACTOR = 2


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True)
class AppLimits:
    """Limits of the app; each can be set with the environment variable SAM2PLUS_<FIELD IN CAPITALS>."""

    max_upload_mb: float = 200.0
    max_seconds: float = 60.0
    max_frames: int = 1800
    max_side: int = 1920  # pixels, the longer side of the video
    queue_size: int = 16  # waiting events in the queue
    gpu_concurrency: int = 1  # GPU jobs (tracking, previews) running at once
    max_gpu_seconds: int = 600  # GPU time one tracking job may ask for
    feature_cache_mb: float = 1024.0  # image features of prompted frames kept between previews (host memory)
    reconnect_seconds: float = 60.0  # a client gone this long loses its files and running job (the grace)
    leftover_seconds: float = 3600.0  # work folders no live session or job holds go once untouched this long
    live_seconds: float = 60.0  # a live camera session ends this long after it started (its GPU time)
    live_frames: int = 600  # ... or once it processed this many frames (its files' length: 60 s at 10 frames/s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "AppLimits":
        values: dict[str, Any] = {}
        for item in fields(cls):
            name = env_name(item.name)
            text = env.get(name, "").strip()
            if not text:
                continue
            kind = float if item.type in ("float", float) else int
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a valid {'number' if kind is float else 'integer'}") from None
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {text}")
            values[item.name] = value
        return cls(**values)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def feature_cache_bytes(self) -> int:
        return int(self.feature_cache_mb * 1024 * 1024)

    def describe(self) -> str:
        return (f"Videos up to {self.max_seconds:g} s, {self.max_frames} frames and {self.max_side} px on the longer "
                f"side; uploads up to {self.max_upload_mb:g} MB; up to {MAX_OBJECTS} objects. Longer or larger "
                "videos are refused, never cut.")

    def describe_live(self) -> str:
        return (f"A live session ends after {self.live_seconds:g} s or {self.live_frames} processed frames, "
                "whichever comes first; Stop ends it sooner.")

    def check_file(self, path: Path, what: str) -> None:
        """An uploaded file (a `what`: video, image) that exists and is within the upload size, else
        AppInputError saying which."""
        if not path.is_file():
            raise AppInputError(f"the {what} file {path.name} was not found; upload it again")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise AppInputError(f"the {what} is {size / 2**20:.1f} MB; this app takes files up to "
                                f"{self.max_upload_mb:g} MB ({env_name('max_upload_mb')})")

    def check_video(self, path: str | os.PathLike) -> VideoInfo:
        """The video's description, or AppInputError / MediaError saying why it cannot be used."""
        path = Path(path)
        self.check_file(path, "video")
        scan = MediaLimits(max_seconds=SCAN_FACTOR * self.max_seconds, max_frames=SCAN_FACTOR * self.max_frames)
        try:
            info = probe(path, limits=scan)
        except MediaLimitError as error:
            raise self._too_long(error.what, error.found, "more than " if error.at_least else "") from None
        frame_time = 1.0 / info.fps if info.fps > 0 else 0.0
        if info.duration > self.max_seconds + frame_time:
            raise self._too_long("seconds", info.duration)
        if info.num_frames > self.max_frames:
            raise self._too_long("frames", info.num_frames)
        if max(info.width, info.height) > self.max_side:
            what = "image" if info.kind == "image" else "video"
            raise AppInputError(f"the {what} is {info.width}x{info.height}; this app takes up to {self.max_side} px "
                                f"on the longer side ({env_name('max_side')}). Scale it down and upload it again")
        return info

    def _too_long(self, what: str, found: float, more: str = "") -> AppInputError:
        if what == "seconds":
            return AppInputError(f"the video is {more}{found:.1f} s long; this app takes videos up to "
                                 f"{self.max_seconds:g} s ({env_name('max_seconds')}). Trim it and upload it again")
        return AppInputError(f"the video has {more}{int(found)} frames; this app takes up to {self.max_frames} "
                             f"({env_name('max_frames')}). Trim it or lower its frame rate")


WEIGHTS_VALUES = (f"Set `{WEIGHTS_ENV}` to the path of a checkpoint file, or to `seeded` (untrained stand-ins: "
                  "meaningless results, for trying the page), and restart the app; `hub`, the default, downloads "
                  "the official checkpoints.")


def describe_weights() -> str:
    """What the weights are, for the page header. With the official checkpoints: whether they can be had here
    (`weights.hub_access`: the local cache, then HF_HUB_OFFLINE or a connection to the hub within a second)."""
    try:
        source = weights_from_env()
    except ValueError as e:
        return f"**Weights: invalid setting** ({e}). Tracking will fail until it is fixed."
    if not source.is_trained:
        return (f"**Untrained test weights** ({WEIGHTS_ENV}={source.kind}): the masks, boxes and points "
                f"are meaningless. Set {WEIGHTS_ENV}=hub (default) or a checkpoint path for real results.")
    if source.kind != "hub":
        return f"Weights: {source.describe()}."
    access = hub_access([load_config(name) for name in MODELS])
    if not access.missing:
        return "Weights: official checkpoints from the Hugging Face Hub (all in the local cache)."
    if access.blocked is None:
        return "Weights: official checkpoints from the Hugging Face Hub (each downloaded at its model's first use)."
    if access.cached:
        usable = (f"only {', '.join(access.cached)} {'is' if len(access.cached) == 1 else 'are'} in the local cache: "
                  f"previews and tracking with {', '.join(access.missing)} fail.")
    else:
        usable = "none is in the local cache: previews and tracking fail."
    return (f"**Weights: the official checkpoints cannot be downloaded here** ({access.blocked}) and {usable} "
            + WEIGHTS_VALUES)


def offered_models() -> tuple[str, ...]:
    """The models the page offers: the official ones, and the test models while the weights are stand-ins
    (SAM2PLUS_WEIGHTS=seeded), where a micro network answers at once and no result means anything anyway."""
    try:
        stand_ins = not weights_from_env().is_trained
    except ValueError:
        stand_ins = False
    return MODELS + TEST_MODELS if stand_ins else MODELS
