"""The models a job runs on, passed in: a `ModelProvider` hands out predictors by (model, device, weights). The
service, the app's session and server, and its GPU functions take one; the real one is `ModelCache` (each
network built once per process and shared by every predictor over it), `shared_models()` the process's own.
Tests pass stand-ins that satisfy the two small protocols here instead of patching a module.

    models = shared_models()
    predictor = models.video_predictor("sam2++", device="cuda", weights=None, motion_aware=False)
    image = models.image_predictor("sam2.1-tiny")  # over the same network (sam2_plus/image/predictor.py)
    detector = models.detector("IDEA-Research/grounding-dino-tiny", device="cuda")  # discovery's text mode
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional, Protocol, runtime_checkable

import torch

from .build import build_model, default_device, predictor_over
from .config import canonical_model_name, feature_problem
from .discovery.detector import TextDetector, load_detector
from .discovery.finder import Finder, build_finder
from .discovery.settings import DiscoverySettings
from .errors import TrackError
from .image.api import ImagePredictorAPI
from .image.predictor import ImagePredictor, image_predictor_over
from .modeling.sam2_model import SAM2Model
from .prompt_rules import FramePrompt
from .video.predictor import VideoPredictor
from .video.results import FrameResult
from .weights import WeightsSource, weights_from_env

MODEL_CACHE_SIZE = 2  # networks kept besides preloaded ones (a large model holds ~1 GB)


@runtime_checkable
class TrackingPredictor(Protocol):
    """What a tracking job and a preview ask of a predictor (sam2_plus.video.predictor.VideoPredictor; stand-ins
    in tests): a session on a video, a checked prompt of the prompts JSON added, the session propagated."""

    device: torch.device

    def init_state(self, video: Any) -> Any: ...

    def add_prompt(self, session: Any, obj_id: int, task: str, prompt: FramePrompt) -> FrameResult: ...

    def propagate_in_video(self, session: Any, start_frame_idx: Optional[int] = None,
                           max_frame_num_to_track: Optional[int] = None,
                           reverse: bool = False) -> Iterator[FrameResult]: ...


@runtime_checkable
class StreamingPredictor(TrackingPredictor, Protocol):
    """A predictor that also tracks a stream, frames pushed one at a time (the live camera;
    sam2_plus/video/streaming.py): prompts go on a pushed frame through add_prompt, as on a video."""

    def init_stream(self, history: int = 30) -> Any: ...

    def push_frame(self, session: Any, frame: Any) -> FrameResult: ...


@runtime_checkable
class ModelProvider(Protocol):
    """Hands out the predictor of (model, device, weights) and discovery's text detector of (checkpoint, device);
    raises CheckpointError when the weights are unavailable."""

    def video_predictor(self, model: str, device: Optional[str] = None, weights: Optional[WeightsSource] = None,
                        motion_aware: bool = False) -> TrackingPredictor: ...

    def image_predictor(self, model: str, device: Optional[str] = None,
                        weights: Optional[WeightsSource] = None) -> ImagePredictorAPI: ...

    def finder(self, settings: DiscoverySettings, model: str, device: Optional[str] = None,
               weights: Optional[WeightsSource] = None) -> Finder: ...

    def detector(self, checkpoint: str, device: Optional[str] = None) -> TextDetector: ...


def resolve_device(device: Optional[str]) -> torch.device:
    """`device` checked (TrackError for an unknown one or CUDA without a GPU); None: CUDA when available."""
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise TrackError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TrackError(f"device {device!r}: CUDA is not available on this machine; use cpu")
    return resolved


@dataclass(frozen=True)
class ModelKey:
    """One network: which model, on which device, with which weights."""

    model: str  # canonical name
    device: str
    weights: WeightsSource

    @classmethod
    def of(cls, model: str, device: Optional[str] = None, weights: Optional[WeightsSource] = None) -> "ModelKey":
        return cls(canonical_model_name(model), str(resolve_device(device)), weights or weights_from_env())


class ModelCache:
    """The real ModelProvider: networks built once per ModelKey (the checkpoint read once) and shared by every
    predictor over them, plain, motion-aware and image. Preloaded networks stay for the life of the process; of
    the others, the last `capacity` used are kept. The process's own (`shared_models()`) crosses to another
    process (a ZeroGPU worker, forked from this one) as a reference to that process's own, which it inherited."""

    def __init__(self, capacity: int = MODEL_CACHE_SIZE) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._models: "OrderedDict[ModelKey, SAM2Model]" = OrderedDict()
        self._pinned: set[ModelKey] = set()
        self._predictors: dict[tuple[ModelKey, bool], VideoPredictor] = {}
        self._detectors: dict[tuple[str, str], TextDetector] = {}

    def video_predictor(self, model: str, device: Optional[str] = None, weights: Optional[WeightsSource] = None,
                        motion_aware: bool = False) -> VideoPredictor:
        """The predictor for (model, device, weights, motion_aware), one per key, over the key's one network."""
        return self.predictor(ModelKey.of(model, device, weights), bool(motion_aware))

    def finder(self, settings: DiscoverySettings, model: str, device: Optional[str] = None,
               weights: Optional[WeightsSource] = None) -> Finder:
        """What finds a job's objects on its keyframes (sam2_plus/discovery): over a new image predictor of the
        key's network that resizes frames as the video loader does (bicubic: a frame found on without the tracker's
        features gives what it gives with them), with the settings' detector for the text mode (loaded now: an
        unavailable one fails before any tracking)."""
        detector = self.detector(settings.detector, device) if settings.mode == "text" else None
        with self._lock:
            images = ImagePredictor(self._finder_model(ModelKey.of(model, device, weights)), resample="bicubic")
        return build_finder(settings, images, detector)

    def image_predictor(self, model: str, device: Optional[str] = None,
                        weights: Optional[WeightsSource] = None) -> ImagePredictorAPI:
        """A new image predictor (SAM 2's set_image / predict) over the key's one network (EdgeTAM's: its own
        image predictor): it holds the image it was given, so each caller gets its own."""
        with self._lock:
            return image_predictor_over(self._model(ModelKey.of(model, device, weights)))

    def detector(self, checkpoint: str, device: Optional[str] = None) -> TextDetector:
        """The open-vocabulary detector of `checkpoint` (a Hub repository id or a model folder) on `device`, loaded
        once per (checkpoint, device) and kept until `clear`; DetectorUnavailable (a CheckpointError) without its
        weights."""
        key = (checkpoint, str(resolve_device(device)))
        with self._lock:
            detector = self._detectors.get(key)
            if detector is None:
                detector = load_detector(*key)
                self._detectors[key] = detector
            return detector

    def predictor(self, key: ModelKey, motion_aware: bool = False) -> VideoPredictor:
        with self._lock:
            net = self._model(key)
            predictor = self._predictors.get((key, motion_aware))
            if predictor is None:
                predictor = predictor_over(net, motion_aware=motion_aware)
                self._predictors[(key, motion_aware)] = predictor
            return predictor

    def preload(self, key: ModelKey) -> None:
        """Build the network now and keep it (ZeroGPU: before the server starts, see sam2_plus/app/hardware.py)."""
        with self._lock:
            self._model(key)
            self._pinned.add(key)

    def keys(self) -> list[ModelKey]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._pinned.clear()
            self._predictors.clear()
            self._detectors.clear()

    def __reduce__(self):
        if self is not _SHARED:
            raise TypeError("only the process's shared ModelCache crosses to another process (as a reference)")
        return shared_models, ()

    def _finder_model(self, key: ModelKey) -> SAM2Model:
        """The key's network for discovery's finder, which needs SAM 2's own."""
        problem = feature_problem(key.model, finds=True)
        if problem:
            raise TrackError(problem)
        return self._model(key)

    def _model(self, key: ModelKey) -> SAM2Model:
        net = self._models.get(key)
        if net is not None:
            self._models.move_to_end(key)
            return net
        self._evict_for_one_more()  # free memory before building the next
        net = build_model(key.model, checkpoint=key.weights, device=key.device)
        self._models[key] = net
        return net

    def _evict_for_one_more(self) -> None:
        evictable = [k for k in self._models if k not in self._pinned]
        while evictable and len(evictable) >= self.capacity:
            key = evictable.pop(0)
            del self._models[key]
            for motion_aware in (False, True):
                self._predictors.pop((key, motion_aware), None)


_SHARED = ModelCache()


def shared_models() -> ModelCache:
    """The process's own ModelCache: the default provider of the service, the CLI and the app."""
    return _SHARED
