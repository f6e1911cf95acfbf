"""The logic of the Gradio app (`app.py`), kept free of Gradio so it can be tested on its own.

- `AppLimits`: the configurable limits (environment variables) on uploads, video length and size, queue
  and GPU time; `check_video` refuses what exceeds them with a message.
- `TrackOptions` / `parse_options`: the options JSON of the API (`{"model": "sam2++", "motion_aware": false}`).
- `AppSession`: one browser session: its video, its objects (name, granularity, prompts per frame), the
  per-frame previews, the last results and the Stop flag; prompt editing follows the rules of the
  prompts JSON (`sam2_plus/prompts.py`), which `AppSession.prompts_json()` produces.
- `preview_prompt`: one object's prompt on one frame through the predictor (the immediate preview).
- `run_job`: a tracking job (the service) as a stream of `JobUpdate`s: progress, live frames, result files.
- `plan_job` / `estimate_gpu_seconds`: checks before any GPU work and the GPU time to ask for.

Every run starts from all prompts (the service tracks from scratch), so a correction click on an
already tracked frame becomes a conditioning frame of the next run and cannot be overwritten by it.
"""

from __future__ import annotations

import html
import json
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image

from .config import MODEL_CONFIG_FILES, canonical_model_name
from .media import export
from .media.decode import FrameSource, MediaError, VideoInfo, probe
from .media.encode import EncodeError
from .media.render import Color, TrackRenderer, color_for_id
from .media.rle import encode_rle
from .prompts import TASKS, PromptError, PromptLimits, parse_prompts
from .service import (
    TrackError,
    TrackOutputs,
    TrackProgress,
    TrackSummary,
    check_model,
    check_motion_aware,
    check_request,
    get_predictor,
    prepare_request,
    run_tracking,
    to_export_result,
)
from .weights import CheckpointError, weights_from_env

MODELS = tuple(MODEL_CONFIG_FILES)
DEFAULT_MODEL = "sam2++"
ENV_PREFIX = "SAM2PLUS_"
MAX_OBJECTS = PromptLimits().max_objects  # the prompts format's limit; the app itself sets none
VIEW_CACHE_BYTES = 48 * 1024 * 1024  # decoded frames kept per session for the frame browser
MIN_VIEW_SIDE = 640  # smaller videos are shown enlarged by a whole factor, so that they can be clicked

# Tools of the prompt editor.
POSITIVE, NEGATIVE, BOX, BRUSH, MASK_FILE = ("Positive click", "Negative click", "Box (two clicks)", "Brush mask",
                                             "Mask PNG")
TOOLS = (POSITIVE, NEGATIVE, BOX, BRUSH, MASK_FILE)

# GPU time: a rough model of one job, generous on purpose (ZeroGPU ends a call that overruns its request).
GPU_SETUP_SECONDS = 20.0  # building the model from the cached checkpoint, probing the video
GPU_FRAME_SECONDS = 0.06  # image encoder, decoding, drawing and encoding, per frame
GPU_OBJECT_FRAME_SECONDS = 0.04  # memory attention, decoder and memory encoder, per object and frame
GPU_SAFETY = 1.5
MODEL_COST = {"sam2.1-tiny": 0.6, "sam2.1-small": 0.7, "sam2.1-base-plus": 1.0, "sam2.1-large": 1.8, "sam2++": 1.2}
PREVIEW_GPU_SECONDS = 30

PROGRESS_INTERVAL = 0.25  # seconds between progress updates of a job
LIVE_FRAME_INTERVAL = 1.0  # seconds between live frames of a job
OUTPUT_NAMES = {"overlay": "sam2plus_overlay.mp4", "export": "sam2plus_results.zip",
                "json": "sam2plus_results.json"}

USER_ERRORS = (MediaError, PromptError, CheckpointError, TrackError, EncodeError)


class AppInputError(ValueError):
    """Input the app cannot use; the message says what to change."""


def user_message(error: BaseException) -> str:
    """One line for people about an error of USER_ERRORS or AppInputError."""
    if isinstance(error, MediaError):
        return f"The video cannot be used: {error}"
    if isinstance(error, PromptError):
        return f"Invalid prompts: {error}"
    if isinstance(error, CheckpointError):
        return f"The model weights are not available: {error}"
    if isinstance(error, EncodeError):
        return f"Writing the results failed: {error}"
    return str(error)


# --------------------------------------------------------------------------- limits


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

    def describe(self) -> str:
        return (f"Videos up to {self.max_seconds:g} s, {self.max_frames} frames and {self.max_side} px on the longer "
                f"side; uploads up to {self.max_upload_mb:g} MB; up to {MAX_OBJECTS} objects. Longer or larger "
                "videos are refused, never cut.")

    def check_video(self, path: str | os.PathLike) -> VideoInfo:
        """The video's description, or AppInputError / MediaError saying why it cannot be used."""
        path = Path(path)
        if not path.is_file():
            raise AppInputError(f"the video file {path.name} was not found; upload it again")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise AppInputError(f"the video is {size / 2**20:.1f} MB; this app takes files up to "
                                f"{self.max_upload_mb:g} MB ({env_name('max_upload_mb')})")
        info = probe(path)
        frame_time = 1.0 / info.fps if info.fps > 0 else 0.0
        if info.duration > self.max_seconds + frame_time:
            raise AppInputError(f"the video is {info.duration:.1f} s long; this app takes videos up to "
                                f"{self.max_seconds:g} s ({env_name('max_seconds')}). Trim it and upload it again")
        if info.num_frames > self.max_frames:
            raise AppInputError(f"the video has {info.num_frames} frames; this app takes up to {self.max_frames} "
                                f"({env_name('max_frames')}). Trim it or lower its frame rate")
        if max(info.width, info.height) > self.max_side:
            raise AppInputError(f"the video is {info.width}x{info.height}; this app takes up to {self.max_side} px "
                                f"on the longer side ({env_name('max_side')}). Scale it down and upload it again")
        return info


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


# --------------------------------------------------------------------------- options and GPU time


@dataclass(frozen=True)
class TrackOptions:
    model: str = DEFAULT_MODEL
    motion_aware: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "motion_aware": self.motion_aware}


def parse_options(options: str | Mapping[str, Any] | None) -> TrackOptions:
    """The options JSON (text or dict; empty means the defaults) with a canonical model name."""
    if options is None or (isinstance(options, str) and not options.strip()):
        return TrackOptions()
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError as e:
            raise AppInputError(f"invalid options: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}); "
                                'expected e.g. {"model": "sam2++", "motion_aware": false}') from None
    if not isinstance(options, Mapping):
        raise AppInputError('invalid options: give a JSON object, e.g. {"model": "sam2++", "motion_aware": false}')
    allowed = [f.name for f in fields(TrackOptions)]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise AppInputError(f"invalid options: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                            f"{', '.join(allowed)}")
    model = options.get("model", DEFAULT_MODEL)
    try:
        model = canonical_model_name(model) if isinstance(model, str) else None
    except ValueError:
        model = None
    if model is None:
        raise AppInputError(f"invalid options: unknown model {options.get('model')!r}; choose one of "
                            f"{', '.join(MODELS)}")
    motion_aware = options.get("motion_aware", False)
    if not isinstance(motion_aware, bool):
        raise AppInputError(f"invalid options: 'motion_aware' must be true or false, got {motion_aware!r}")
    return TrackOptions(model, motion_aware)


def estimate_gpu_seconds(frames: int, objects: int, model: str) -> int:
    """GPU seconds to request for tracking `objects` objects through `frames` frames."""
    cost = MODEL_COST.get(canonical_model_name(model), max(MODEL_COST.values()))
    per_frame = GPU_FRAME_SECONDS + GPU_OBJECT_FRAME_SECONDS * max(objects, 1)
    return int(math.ceil(GPU_SETUP_SECONDS + frames * per_frame * cost * GPU_SAFETY))


def job_gpu_seconds(video: str, prompts_json: str, options_json: str, *_: Any, **__: Any) -> int:
    """`spaces.GPU(duration=...)` of `run_job`: called with the job's own arguments."""
    frames = probe(video).num_frames
    objects = len(parse_prompts(prompts_json))
    return estimate_gpu_seconds(frames, objects, parse_options(options_json).model)


@dataclass(frozen=True)
class JobPlan:
    """A job that passed every check that needs no model."""

    video: Path
    prompts_json: str
    options: TrackOptions
    frames: int
    objects: int
    gpu_seconds: int


def plan_job(video: Optional[str | os.PathLike], prompts: str | Mapping[str, Any], options: str | Mapping | None,
             limits: AppLimits) -> JobPlan:
    """Check a job before the GPU is involved: the video against the limits, the options, the prompts
    against the video, the model's tasks, the weights file, the GPU budget."""
    if not video:
        raise AppInputError("no video: give a video file")
    info = limits.check_video(video)
    parsed = parse_options(options)
    if isinstance(prompts, str) and not prompts.strip():
        raise AppInputError('no prompts: give the prompts JSON, e.g. {"objects": [{"id": 1, "task": "mask", '
                            '"prompts": [{"frame": 0, "points": [[100, 80]]}]}]}')
    request = prepare_request(video, prompts, model=parsed.model, motion_aware=parsed.motion_aware)
    check_request(request)
    seconds = estimate_gpu_seconds(info.num_frames, len(request.objects), parsed.model)
    if seconds > limits.max_gpu_seconds:
        raise AppInputError(f"{len(request.objects)} objects through {info.num_frames} frames need about "
                            f"{seconds} s of GPU time; the limit is {limits.max_gpu_seconds} s "
                            f"({env_name('max_gpu_seconds')}). Track fewer objects or a shorter video")
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return JobPlan(Path(video), text, parsed, info.num_frames, len(request.objects), seconds)


def describe_weights() -> str:
    """What the weights are, for the page header (never touches the network)."""
    try:
        source = weights_from_env()
    except ValueError as e:
        return f"**Weights: invalid setting** ({e}). Tracking will fail until it is fixed."
    if not source.is_trained:
        return (f"**Untrained test weights** ({env_name('weights')}={source.kind}): the masks, boxes and points "
                "are meaningless. Set SAM2PLUS_WEIGHTS=hub (default) or a checkpoint path for real results.")
    return f"Weights: {source.describe()}."


# --------------------------------------------------------------------------- prompts of one object


@dataclass
class PromptDraft:
    """One object's prompt on one frame, as edited: clicks and/or a box, or a mask."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # 1 positive, 0 negative
    box: Optional[tuple[float, float, float, float]] = None  # x1, y1, x2, y2
    mask: Optional[np.ndarray] = None  # HxW bool

    def is_empty(self) -> bool:
        return not self.points and self.box is None and self.mask is None

    def to_json(self, frame: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"frame": frame}
        if self.mask is not None:
            entry["mask"] = encode_rle(self.mask)
            return entry
        if self.points:
            entry["points"] = [[float(x), float(y)] for x, y in self.points]
            entry["labels"] = list(self.labels)
        if self.box is not None:
            entry["box"] = [float(v) for v in self.box]
        return entry


@dataclass
class ObjectState:
    obj_id: int
    name: str
    task: str = "mask"
    prompts: dict[int, PromptDraft] = field(default_factory=dict)  # frame -> prompt

    @property
    def color(self) -> Color:
        return color_for_id(self.obj_id)

    def frames(self) -> list[int]:
        return sorted(frame for frame, draft in self.prompts.items() if not draft.is_empty())

    def to_json(self) -> dict[str, Any]:
        frames = self.frames()
        if not frames:
            raise AppInputError(f"object {self.obj_id} ({self.name}) has no prompt yet: give it a click, a box or a "
                                "mask on some frame, or remove it")
        return {"id": self.obj_id, "task": self.task, "prompts": [self.prompts[f].to_json(f) for f in frames]}

    def where(self) -> str:
        frames = self.frames()
        if not frames:
            return "no prompt yet"
        plural = "s" if len(frames) > 1 else ""
        return f"prompt{plural} on frame{plural} " + ", ".join(map(str, frames))


def add_click(obj: ObjectState, frame: int, x: float, y: float, positive: bool) -> str:
    """Add a click to an object's prompt on a frame; returns a note for people ("" when none)."""
    draft = obj.prompts.setdefault(frame, PromptDraft())
    if obj.task == "box":
        raise AppInputError(f"{obj.name} has the box granularity: draw a box with the '{BOX}' tool")
    if obj.task == "point":
        if not positive:
            raise AppInputError(f"{obj.name} has the point granularity: it takes one positive click per frame")
        draft.points, draft.labels = [(x, y)], [1]
        return "the point granularity takes one point per frame: the click replaces the previous one"
    note = ""
    if draft.mask is not None:
        draft.mask = None
        note = "clicks cannot be combined with a mask on the same frame: the mask was replaced"
    if len(draft.points) >= PromptLimits().max_points_per_prompt:
        raise AppInputError(f"{obj.name} already has {len(draft.points)} clicks on frame {frame}, the most allowed")
    draft.points.append((x, y))
    draft.labels.append(1 if positive else 0)
    return note


def set_box(obj: ObjectState, frame: int, box: tuple[float, float, float, float]) -> str:
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    if x1 == x2 or y1 == y2:
        raise AppInputError("the two corners of a box must differ in both x and y")
    if obj.task == "point":
        raise AppInputError(f"{obj.name} has the point granularity: give it one positive click")
    draft = obj.prompts.setdefault(frame, PromptDraft())
    note = ""
    if draft.mask is not None:
        draft.mask = None
        note = "a box cannot be combined with a mask on the same frame: the mask was replaced"
    if obj.task == "box":
        draft.points, draft.labels = [], []
    draft.box = (x1, y1, x2, y2)
    return note


def set_mask(obj: ObjectState, frame: int, mask: np.ndarray) -> str:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise AppInputError("the mask is empty: paint over the object (or upload a PNG with nonzero object pixels)")
    if obj.task == "point":
        raise AppInputError(f"{obj.name} has the point granularity: give it one positive click, not a mask")
    if obj.task == "box":
        set_box(obj, frame, mask_bbox(mask))
        return "the box granularity takes a box: the mask's bounding box was used"
    obj.prompts[frame] = PromptDraft(mask=mask)
    return ""


def convert_task(obj: ObjectState, task: str) -> str:
    """Give an object another granularity, keeping the prompts that fit it; returns a note."""
    if task not in TASKS:
        raise AppInputError(f"unknown granularity {task!r}; choose one of {', '.join(TASKS)}")
    dropped: list[int] = []
    if task != "mask":
        for frame, draft in list(obj.prompts.items()):
            converted = _convert_draft(draft, task)
            if converted is None:
                dropped.append(frame)
                del obj.prompts[frame]
            else:
                obj.prompts[frame] = converted
    obj.task = task
    if not dropped:
        return ""
    return f"prompts that the {task} granularity cannot take were removed (frames {', '.join(map(str, dropped))})"


def _convert_draft(draft: PromptDraft, task: str) -> Optional[PromptDraft]:
    if task == "box":
        box = draft.box if draft.box is not None else (mask_bbox(draft.mask) if draft.mask is not None else None)
        return None if box is None else PromptDraft(box=box)
    positives = [p for p, label in zip(draft.points, draft.labels) if label == 1]
    return PromptDraft(points=positives[:1], labels=[1]) if positives else None


def undo(obj: ObjectState, frame: int) -> None:
    """Remove the last click of a frame, else its box, else its mask."""
    draft = obj.prompts.get(frame)
    if draft is None or draft.is_empty():
        raise AppInputError(f"{obj.name} has no prompt on frame {frame}")
    if draft.points:
        draft.points.pop()
        draft.labels.pop()
    elif draft.box is not None:
        draft.box = None
    else:
        draft.mask = None
    if draft.is_empty():
        del obj.prompts[frame]


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def mask_from_editor(value: Optional[Mapping[str, Any]], size: tuple[int, int]) -> np.ndarray:
    """The painted pixels of a gr.ImageEditor value (numpy layers, RGBA) as an HxW bool mask."""
    layers = [np.asarray(layer) for layer in (value or {}).get("layers") or [] if layer is not None]
    if not layers:
        raise AppInputError("nothing is painted: paint over the object with the brush first")
    painted = np.zeros(size, bool)
    for layer in layers:
        has_alpha = layer.ndim == 3 and layer.shape[2] == 4
        alpha = layer[..., 3] if has_alpha else layer.reshape(layer.shape[:2] + (-1,)).max(-1)
        painted |= _fit(alpha > 0, size)
    return painted


def mask_from_png(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """An uploaded mask image as an HxW bool mask: nonzero pixels (or, with transparency, opaque ones)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError) as e:
        raise AppInputError(f"the mask file cannot be read as an image: {e}") from None
    if (image.height, image.width) != tuple(size):
        raise AppInputError(f"the mask is {image.width}x{image.height} but the video is {size[1]}x{size[0]}; "
                            "give a mask of the video's size")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            return alpha > 0
    array = np.asarray(image if image.mode in ("P", "L", "1", "I", "I;16", "F") else image.convert("RGB"))
    return array.reshape(array.shape[:2] + (-1,)).max(-1) > 0


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(size):
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return resized > 0


# --------------------------------------------------------------------------- drawing prompts


def draw_prompts(image: np.ndarray, objects: list[ObjectState], frame: int,
                 corner: Optional[tuple[int, int, float, float]] = None, scale: int = 1) -> np.ndarray:
    """Draw every object's prompt on `frame` (clicks, boxes, mask outlines) and a pending box corner, on an
    image `scale` times the video's size."""
    radius = max(4, round(min(image.shape[:2]) / 60))

    def at(x: float, y: float) -> tuple[int, int]:
        return int(round(x * scale)), int(round(y * scale))

    for obj in objects:
        draft = obj.prompts.get(frame)
        if draft is None:
            continue
        if draft.mask is not None:
            contours, _ = cv2.findContours(draft.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            contours = [c * scale for c in contours]
            cv2.drawContours(image, contours, -1, (255, 255, 255), 3)
            cv2.drawContours(image, contours, -1, obj.color, 1)
        if draft.box is not None:
            x1, y1, x2, y2 = draft.box
            cv2.rectangle(image, at(x1, y1), at(x2 - 1, y2 - 1), (255, 255, 255), 3)
            cv2.rectangle(image, at(x1, y1), at(x2 - 1, y2 - 1), obj.color, 1)
        for (x, y), label in zip(draft.points, draft.labels):
            _draw_click(image, at(x, y), obj.color, label == 1, radius)
    if corner is not None and corner[1] == frame:
        obj = next((o for o in objects if o.obj_id == corner[0]), None)
        color = obj.color if obj else (255, 255, 255)
        center = at(corner[2], corner[3])
        cv2.drawMarker(image, center, (255, 255, 255), cv2.MARKER_CROSS, 4 * radius, 4)
        cv2.drawMarker(image, center, color, cv2.MARKER_CROSS, 4 * radius, 2)
    return image


def _draw_click(image: np.ndarray, center: tuple[int, int], color: Color, positive: bool, radius: int) -> None:
    fill = color if positive else (0, 0, 0)
    cv2.circle(image, center, radius + 2, (255, 255, 255), cv2.FILLED, cv2.LINE_AA)
    cv2.circle(image, center, radius, fill, cv2.FILLED, cv2.LINE_AA)
    arm = max(2, radius // 2)
    x, y = center
    cv2.line(image, (x - arm, y), (x + arm, y), (255, 255, 255), 2)
    if positive:
        cv2.line(image, (x, y - arm), (x, y + arm), (255, 255, 255), 2)


# --------------------------------------------------------------------------- the session


class StopSignal:
    """The Stop flag of a session: a file, so that a job in another process (ZeroGPU) sees it too."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def set(self) -> None:
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_set(self) -> bool:
        return self.path.exists()


@dataclass(frozen=True)
class JobFiles:
    overlay: Optional[Path] = None
    export: Optional[Path] = None
    results_json: Optional[Path] = None

    def downloads(self) -> list[str]:
        return [str(p) for p in (self.export, self.results_json, self.overlay) if p is not None]


@dataclass(frozen=True)
class JobResult:
    files: JobFiles
    summary: str  # TrackSummary.describe()
    stopped: bool
    frames_done: int
    frames_total: int
    first_frame: Optional[int]
    last_frame: Optional[int]


@dataclass(frozen=True)
class Preview:
    options: TrackOptions
    result: export.FrameResult


def work_root() -> Path:
    """Where sessions and API jobs keep their files (SAM2PLUS_APP_TMP, else the system's temp folder)."""
    root = Path(os.environ.get(env_name("app_tmp")) or tempfile.gettempdir()) / "sam2plus-app"
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_work_dir(kind: str, root: Optional[Path] = None) -> Path:
    folder = (root or work_root()) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-", dir=folder))


def sweep_work_dirs(kind: str, max_age: float, root: Optional[Path] = None) -> int:
    """Remove the work folders of `kind` older than `max_age` seconds; returns how many."""
    folder = (root or work_root()) / kind
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in folder.iterdir():
        try:
            if now - path.stat().st_mtime > max_age:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


@dataclass(eq=False)
class AppSession:
    """Everything one browser session knows; lives in a gr.State and is cleaned up by close()."""

    workdir: Path
    video: Path
    info: VideoInfo
    objects: dict[int, ObjectState] = field(default_factory=dict)
    selected: Optional[int] = None
    next_id: int = 1
    corner: Optional[tuple[int, int, float, float]] = None  # first box corner: object, frame, x, y
    previews: dict[tuple[int, int], Preview] = field(default_factory=dict)  # (object, frame) -> preview
    results: Optional[JobResult] = None
    tracking: bool = False
    jobs: int = 0
    closed: bool = False
    _close_after_job: bool = False
    _frames: Optional[FrameSource] = field(default=None, repr=False)
    _overlay: Optional[FrameSource] = field(default=None, repr=False)

    @classmethod
    def open(cls, video: str | os.PathLike, limits: AppLimits, root: Optional[Path] = None) -> "AppSession":
        """A session for an uploaded video (checked against the limits), with one empty object."""
        info = limits.check_video(video)
        workdir = new_work_dir("sessions", root)
        own = workdir / f"video{Path(video).suffix.lower()}"
        try:
            os.link(video, own)  # the upload cache may be cleaned before the session ends
        except OSError:
            shutil.copyfile(video, own)
        session = cls(workdir=workdir, video=own, info=info)
        session.add_object()
        return session

    @property
    def stop(self) -> StopSignal:
        return StopSignal(self.workdir / "stop")

    def close(self) -> None:
        """Delete the session's files; during a job: stop it, and close when it ends (end_job)."""
        if self.tracking:
            self.stop.set()
            self._close_after_job = True
            return
        for source in (self._frames, self._overlay):
            if source is not None:
                source.close()
        self._frames = self._overlay = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.closed = True

    # ------------------------------------------------------------------ objects
    @property
    def current(self) -> ObjectState:
        if self.selected is None or self.selected not in self.objects:
            raise AppInputError("no object is selected: add an object first")
        return self.objects[self.selected]

    def add_object(self, name: str = "") -> ObjectState:
        obj = ObjectState(self.next_id, name.strip() or f"object {self.next_id}")
        self.objects[obj.obj_id] = obj
        self.next_id += 1
        self.selected = obj.obj_id
        self.corner = None
        return obj

    def select(self, obj_id: int) -> ObjectState:
        if obj_id not in self.objects:
            raise AppInputError(f"there is no object {obj_id}")
        self.selected = obj_id
        self.corner = None
        return self.objects[obj_id]

    def rename(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise AppInputError("an object's name cannot be empty")
        self.current.name = name

    def remove_selected(self) -> ObjectState:
        obj = self.objects.pop(self.current.obj_id)
        self.previews = {key: p for key, p in self.previews.items() if key[0] != obj.obj_id}
        self.selected = next(reversed(self.objects), None) if self.objects else None
        self.corner = None
        return obj

    def set_task(self, task: str) -> str:
        obj = self.current
        note = convert_task(obj, task)
        self._forget_previews(obj.obj_id)
        return note

    # ------------------------------------------------------------------ prompts
    def check_frame(self, frame: int) -> int:
        frame = int(frame)
        if not 0 <= frame < self.info.num_frames:
            raise AppInputError(f"frame {frame} is outside the video (0..{self.info.num_frames - 1})")
        return frame

    def check_point(self, x: float, y: float) -> tuple[float, float]:
        if not (0 <= x <= self.info.width and 0 <= y <= self.info.height):
            raise AppInputError(f"({x:g}, {y:g}) is outside the {self.info.width}x{self.info.height} frame")
        return float(x), float(y)

    def click_view(self, tool: str, frame: int, x: float, y: float) -> str:
        """A click at pixel (x, y) of the frame view (see view_scale)."""
        return self.click(tool, frame, x / self.view_scale, y / self.view_scale)

    def click(self, tool: str, frame: int, x: float, y: float) -> str:
        """A click at video pixel (x, y) with a tool; returns a note for people."""
        if self.tracking:
            raise AppInputError("tracking is running: wait for it to finish or press Stop")
        frame, (x, y) = self.check_frame(frame), self.check_point(x, y)
        obj = self.current
        if tool in (POSITIVE, NEGATIVE):
            self.corner = None
            note = add_click(obj, frame, x, y, tool == POSITIVE)
        elif tool == BOX:
            if self.corner is None or self.corner[:2] != (obj.obj_id, frame):
                self.corner = (obj.obj_id, frame, x, y)
                return "first corner set: click the opposite corner"
            first = self.corner
            self.corner = None
            note = set_box(obj, frame, (first[2], first[3], x, y))
        else:
            raise AppInputError(f"the '{tool}' tool does not take clicks on the frame: use the editor below it")
        self._edited(obj.obj_id, frame)
        return note

    def apply_mask(self, frame: int, mask: np.ndarray) -> str:
        if self.tracking:
            raise AppInputError("tracking is running: wait for it to finish or press Stop")
        frame, obj = self.check_frame(frame), self.current
        if mask.shape != self.info.size:
            raise AppInputError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the video {self.info.width}x"
                                f"{self.info.height}")
        note = set_mask(obj, frame, mask)
        self.corner = None
        self._edited(obj.obj_id, frame)
        return note

    def undo(self, frame: int) -> None:
        frame, obj = self.check_frame(frame), self.current
        if self.corner is not None and self.corner[:2] == (obj.obj_id, frame):
            self.corner = None
            return
        undo(obj, frame)
        self._edited(obj.obj_id, frame)

    def clear_frame(self, frame: int) -> None:
        frame, obj = self.check_frame(frame), self.current
        obj.prompts.pop(frame, None)
        self.corner = None
        self._edited(obj.obj_id, frame)

    def _edited(self, obj_id: int, frame: int) -> None:
        self.previews.pop((obj_id, frame), None)

    def _forget_previews(self, obj_id: int) -> None:
        self.previews = {key: p for key, p in self.previews.items() if key[0] != obj_id}

    # ------------------------------------------------------------------ JSON and previews
    def prompts_json(self) -> str:
        """The prompts JSON (sam2_plus/prompts.py) of every object, checked against the video."""
        if not self.objects:
            raise AppInputError("there is nothing to track: add an object and give it a click, a box or a mask")
        document = {"objects": [obj.to_json() for obj in self.objects.values()]}
        parse_prompts(document, self.info)
        return json.dumps(document)

    def preview_target(self, frame: int, options: TrackOptions) -> Optional[tuple[int, int]]:
        """(object, frame) when the selected object has a prompt on `frame` without an up-to-date preview."""
        obj = self.objects.get(self.selected) if self.selected is not None else None
        if obj is None or frame not in obj.frames():
            return None
        preview = self.previews.get((obj.obj_id, frame))
        return None if preview is not None and preview.options == options else (obj.obj_id, frame)

    def preview_json(self, obj_id: int, frame: int) -> str:
        """The prompts JSON of one object's prompt on one frame (the preview's input)."""
        obj = self.objects[obj_id]
        prompt = obj.prompts[frame].to_json(frame)
        return json.dumps({"objects": [{"id": obj_id, "task": obj.task, "prompts": [prompt]}]})

    def store_preview(self, obj_id: int, frame: int, options: TrackOptions, result: export.FrameResult) -> None:
        if obj_id in self.objects and frame in self.objects[obj_id].frames():
            self.previews[(obj_id, frame)] = Preview(options, result)

    # ------------------------------------------------------------------ tracking
    def plan_track(self, options: TrackOptions, limits: AppLimits) -> JobPlan:
        return plan_job(self.video, self.prompts_json(), options.to_json(), limits)

    def begin_job(self) -> Path:
        """Mark the session busy (prompt edits are refused) and return the folder for the job's outputs."""
        if self.tracking:
            raise AppInputError("tracking is already running")
        self.stop.clear()
        self.tracking = True
        return self.new_job_dir()

    def end_job(self, result: Optional[JobResult]) -> None:
        self.tracking = False
        self.stop.clear()
        if result is not None:
            self.set_results(result)
        if self._close_after_job:
            self.close()

    def new_job_dir(self) -> Path:
        """A folder for the next job's outputs; earlier jobs' files go (the app has its own copies)."""
        self.jobs += 1
        for old in self.workdir.glob("job-*"):
            if self.results is None or not _is_within(self.results.files, old):
                shutil.rmtree(old, ignore_errors=True)
        folder = self.workdir / f"job-{self.jobs}"
        folder.mkdir()
        return folder

    def set_results(self, result: JobResult) -> None:
        if self._overlay is not None:
            self._overlay.close()
            self._overlay = None
        self.results = result

    # ------------------------------------------------------------------ the frame view
    def frame(self, index: int) -> np.ndarray:
        if self._frames is None:
            self._frames = FrameSource(self.video, cache_bytes=VIEW_CACHE_BYTES)
        return self._frames[self.check_frame(index)]

    def tracked_frame(self, index: int) -> Optional[np.ndarray]:
        """The frame of the last results' overlay video, when that run reached it."""
        result = self.results
        if result is None or result.files.overlay is None or result.first_frame is None:
            return None
        if not result.first_frame <= index <= result.last_frame:
            return None
        if self._overlay is None:
            self._overlay = FrameSource(result.files.overlay, cache_bytes=VIEW_CACHE_BYTES)
        position = index - result.first_frame
        return self._overlay[position] if position < len(self._overlay) else None

    @property
    def view_scale(self) -> int:
        """How much the frame view enlarges the video (clicks on the view are divided by it)."""
        return max(1, MIN_VIEW_SIDE // max(self.info.width, self.info.height))

    def render_view(self, index: int, show_results: bool = True) -> np.ndarray:
        """The frame to prompt on, `view_scale` times the video's size: the last results (optional), each
        object's preview on this frame, and every prompt of this frame."""
        index = self.check_frame(index)
        base = self.tracked_frame(index) if show_results else None
        image = np.array(self.frame(index) if base is None else base, dtype=np.uint8, copy=True)
        for (obj_id, frame), preview in self.previews.items():
            if frame == index and obj_id in self.objects:
                image = TrackRenderer({obj_id: self.objects[obj_id].task}).render(image, preview.result)
        return draw_prompts(self.enlarge(image), list(self.objects.values()), index, self.corner, self.view_scale)

    def enlarge(self, image: np.ndarray) -> np.ndarray:
        scale = self.view_scale
        return image if scale == 1 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    def objects_html(self) -> str:
        """The object list with colour swatches, for people."""
        if not self.objects:
            return "<p>No objects: press <b>Add object</b>.</p>"
        rows = []
        for obj in self.objects.values():
            r, g, b = obj.color
            marker = " &#9664; selected" if obj.obj_id == self.selected else ""
            swatch = (f'<span style="display:inline-block;width:0.9em;height:0.9em;border-radius:3px;'
                      f'background:rgb({r},{g},{b});vertical-align:middle"></span>')
            rows.append(f"<li>{swatch} <b>{html.escape(obj.name)}</b> (id {obj.obj_id}) &middot; {obj.task} "
                        f"&middot; {obj.where()}{marker}</li>")
        return '<ul style="list-style:none;padding-left:0;margin:0">' + "".join(rows) + "</ul>"

    def object_choices(self) -> list[tuple[str, int]]:
        return [(f"{obj.name} (id {obj.obj_id})", obj.obj_id) for obj in self.objects.values()]


def _is_within(files: JobFiles, folder: Path) -> bool:
    return any(p is not None and folder in p.parents for p in (files.overlay, files.export, files.results_json))


# --------------------------------------------------------------------------- model runs


def preview_prompt(video: str | os.PathLike, prompts_json: str,
                   options_json: str | Mapping | None) -> export.FrameResult:
    """The result of one object's prompt on one frame: a fresh predictor session on the video holding only
    that prompt, as the tracking run computes that conditioning frame. Raises USER_ERRORS/AppInputError."""
    options = parse_options(options_json)
    info = probe(video)
    objects = parse_prompts(prompts_json, info)
    if len(objects) != 1 or len(objects[0].prompts) != 1:
        raise AppInputError("a preview takes exactly one object with one prompt")
    obj, prompt = objects[0], objects[0].prompts[0]
    check_model(options.model, {obj.obj_id: obj.task})
    check_motion_aware(options.motion_aware)
    predictor = get_predictor(options.model, motion_aware=options.motion_aware)
    with FrameSource(video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        state = predictor.init_state(frames)
        if prompt.mask is not None:
            result = predictor.add_new_mask(state, prompt.frame, obj.obj_id, prompt.mask, task=obj.task)
        else:
            result = predictor.add_new_points_or_box(state, prompt.frame, obj.obj_id, points=prompt.points,
                                                     labels=prompt.labels, box=prompt.box, task=obj.task)
    return to_export_result(result)


@dataclass(frozen=True)
class JobUpdate:
    """One event of a tracking job: progress, optionally a live frame, and at the end the result."""

    progress: Optional[TrackProgress] = None
    frame: Optional[np.ndarray] = None  # the latest tracked frame with its results drawn
    frame_idx: Optional[int] = None
    result: Optional[JobResult] = None


def job_outputs(job_dir: str | os.PathLike) -> TrackOutputs:
    folder = Path(job_dir)
    return TrackOutputs(overlay=folder / OUTPUT_NAMES["overlay"], export=folder / OUTPUT_NAMES["export"],
                        results_json=folder / OUTPUT_NAMES["json"])


def run_job(video: str, prompts_json: str, options_json: str, job_dir: str,
            stop_file: Optional[str] = None) -> Iterator[JobUpdate]:
    """Track through the service in a worker thread and stream its progress. Pure: files in, files out.

    Stop: the job ends at the next frame when `stop_file` exists, or when this generator is closed;
    either way the outputs hold the frames tracked so far and are complete files."""
    options = parse_options(options_json)
    request = prepare_request(video, prompts_json, model=options.model, motion_aware=options.motion_aware)
    outputs = job_outputs(job_dir)
    check_request(request, outputs)
    stop = StopSignal(Path(stop_file)) if stop_file else None
    closed = threading.Event()
    events: "queue.Queue[Any]" = queue.Queue()
    latest = _Latest()

    def work() -> None:
        try:
            summary = run_tracking(request, outputs, progress=events.put,
                                   should_stop=lambda: closed.is_set() or (stop is not None and stop.is_set()),
                                   on_result=latest.set)
            events.put(summary)
        except BaseException as error:  # handed to the consumer, raised there
            events.put(error)

    worker = threading.Thread(target=work, name="sam2plus-job", daemon=True)
    worker.start()
    try:
        yield from _stream(events, latest, request.video, request.tasks)
    finally:
        closed.set()
        worker.join()


class _Latest:
    """The newest tracked frame, set by the job's thread and read by the stream."""

    def __init__(self) -> None:
        self.value: Optional[export.FrameResult] = None

    def set(self, result: export.FrameResult) -> None:
        self.value = result


def _stream(events: "queue.Queue[Any]", latest: _Latest, video: Path,
            tasks: Mapping[int, str]) -> Iterator[JobUpdate]:
    renderer = TrackRenderer(tasks)
    last_progress = last_frame = 0.0
    with FrameSource(video, cache_bytes=VIEW_CACHE_BYTES) as frames:
        while True:
            item = events.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, TrackSummary):
                yield JobUpdate(result=_job_result(item))
                return
            now = time.monotonic()
            if item.phase == "tracking" and now - last_progress < PROGRESS_INTERVAL:
                continue
            last_progress = now
            result = latest.value
            if result is None or now - last_frame < LIVE_FRAME_INTERVAL:
                yield JobUpdate(progress=item)
                continue
            last_frame = now
            yield JobUpdate(progress=item, frame=renderer.render(frames[result.frame_idx], result),
                            frame_idx=result.frame_idx)


def _job_result(summary: TrackSummary) -> JobResult:
    written = summary.written
    files = JobFiles(written.get("overlay"), written.get("export"), written.get("json"))
    return JobResult(files, summary.describe(), summary.stopped, summary.frames_done, summary.frames_total,
                     summary.first_frame, summary.last_frame)


def describe_progress(progress: TrackProgress) -> str:
    if progress.phase == "loading":
        return "Loading the model…"
    if progress.phase == "prompting":
        return "Adding the prompts…"
    text = f"Tracking: {progress.frames_done} / {progress.frames_total} frames ({100 * progress.fraction:.0f} %)"
    if progress.frames_per_second:
        text += f", {progress.frames_per_second:.1f} frames/s"
    if progress.eta is not None:
        text += f", about {format_seconds(progress.eta)} left"
    return text


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"
