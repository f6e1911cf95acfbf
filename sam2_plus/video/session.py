"""One video's tracking session (`TrackingSession`): its frames, objects, prompts and memory. The predictor makes
and drives it; the stepper reads and fills it (both import it from here, below them)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..prompts import PromptError
from .features import FeatureCache
from .prompt_inputs import frame_index
from .results import VideoFrame
from .rules import TrackingRules
from .tracker import TrackedObject

STREAM_LENGTH = 2**31 - 1  # the length the memory rules assume for a stream: unbounded (see streaming.py)


class UnknownObjectError(KeyError):
    """An object id the session does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class TrackingSession:
    """Everything the predictor knows about one video: frames, objects, their prompts and memory."""

    frames: Any  # indexable: frames[i] -> HxWx3 uint8 RGB
    num_frames: int
    video_height: int
    video_width: int
    device: torch.device
    storage_device: torch.device
    features: FeatureCache  # image features of the frame visited last, and the frames being prepared
    rules: TrackingRules  # SAM 2's, or motion-aware tracking's with its state per object
    objects: "OrderedDict[int, TrackedObject]" = field(default_factory=OrderedDict)
    maskmem_pos_enc: Optional[torch.Tensor] = None  # identical for every frame and object
    # frames are pushed one at a time (sam2_plus/video/streaming.py): num_frames counts those pushed so far
    streaming: bool = False

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    @property
    def tracking_length(self) -> int:
        """The video length the memory rules assume: the frame count, or unbounded for a stream."""
        return STREAM_LENGTH if self.streaming else self.num_frames

    def frame_index(self, frame_idx) -> int:
        """A frame index given to the API, checked: a frame of the video; for a stream, one it still holds."""
        if self.streaming and self.num_frames == 0:
            raise PromptError("the stream has no frame yet: push a frame before prompting on it")
        index = frame_index(frame_idx, self.num_frames)
        if self.streaming:
            self.frames.check_held(index)
        return index

    def tracked_object(self, obj_id: int) -> TrackedObject:
        try:
            return self.objects[obj_id]
        except KeyError:
            raise UnknownObjectError(f"unknown object id {obj_id!r}; this session has {self.obj_ids}") from None

    def video_frame(self) -> VideoFrame:
        """The frame a result is drawn to: size, object order and tasks."""
        objects = list(self.objects.values())
        return VideoFrame(self.video_height, self.video_width, [o.obj_id for o in objects], [o.task for o in objects])
