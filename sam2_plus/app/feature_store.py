"""Image features of the frames people prompt on, kept between previews: the first click on a frame runs the
image encoder, the next ones only the prompt encoder and the decoder.

The features travel with the preview's request and result (`PreviewOutput`), on the host, so the cache
works the same where the GPU function runs in another process (ZeroGPU): the app's process keeps them in
`FeatureStore`, a least-recently-used store bounded in bytes (SAM2PLUS_FEATURE_CACHE_MB).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch


@dataclass(frozen=True)
class FeaturesKey:
    """Which image features: one frame of one video file, by one model with its weights."""

    video: str
    frame: int
    model: str
    weights: str
    device: str


def features_key(request: Any, frame: int) -> FeaturesKey:
    """The key of a checked preview request's frame (`service.TrackRequest`). The file's size and time go into
    it, so that a replaced file never meets old features."""
    video = Path(request.video)
    stat = video.stat()
    identity = f"{video.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return FeaturesKey(identity, int(frame), request.model, repr(request.weights), str(request.device))


@dataclass(frozen=True)
class CachedFeatures:
    """A frame's image-encoder output, on the host."""

    key: FeaturesKey
    backbone: dict

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in tensors_in(self.backbone))


def to_device(value: Any, device: torch.device | str) -> Any:
    """`value` (tensors in dicts, lists and tuples) with every tensor on `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def tensors_in(value: Any):
    """Every tensor in `value` (tensors in dicts, lists and tuples)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors_in(v)


class FeatureStore:
    """Least-recently-used `CachedFeatures`, at most `max_bytes` in all (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: "OrderedDict[FeaturesKey, CachedFeatures]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: FeaturesKey) -> Optional[CachedFeatures]:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, features: Optional[CachedFeatures]) -> None:
        if features is None or features.nbytes > self.max_bytes:
            return
        with self._lock:
            self._items[features.key] = features
            self._items.move_to_end(features.key)
            while self.nbytes > self.max_bytes:
                self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(item.nbytes for item in self._items.values())

    def __len__(self) -> int:
        return len(self._items)
