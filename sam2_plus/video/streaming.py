"""Streaming: frames pushed one at a time, as a camera gives them, with no video file and no frame count known
ahead (`VideoPredictor.init_stream` / `push_frame`).

A stream is an ordinary `TrackingSession` whose frames are a `LiveFrames`: the last `history` pushed frames are
held (prompts and image features need a frame's pixels), older ones are let go. The memory rules treat a stream
as a video of unbounded length (`STREAM_LENGTH`): the reference's rules read the video's length only to cap how
far back object pointers reach, which for any video of at least `max_obj_ptrs_in_encoder` frames (16) is that
cap, so a stream tracks exactly as the video predictor does on a video of 16 frames or more. Tracked frames no
later frame reads are always forgotten, whatever `keep_all_memory` says, so memory stays flat.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import numpy as np

from ..media.decode import MediaError
from ..prompts import PromptError
from .session import TrackingSession

DEFAULT_HISTORY = 30  # frames a stream holds for prompts (about a second of a camera)


class LiveFrames:
    """A stream's frames: appended one at a time, the last `history` held (`frames[i]`, HxWx3 uint8 RGB)."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 1:
            raise ValueError(f"a stream holds at least 1 frame; history={history!r}")
        self.history = int(history)
        self.count = 0  # frames pushed so far; the next one gets this index
        self.size: Optional[tuple[int, int]] = None  # (height, width) of the first frame; every frame has it
        self._held: deque[np.ndarray] = deque(maxlen=self.history)

    def append(self, frame) -> int:
        """Take the next frame (checked: HxWx3 uint8, the first frame's size); returns its index."""
        frame = checked_frame(frame, self.size)
        if self.size is None:
            self.size = (int(frame.shape[0]), int(frame.shape[1]))
        self._held.append(frame)
        self.count += 1
        return self.count - 1

    def held(self) -> range:
        """The indices of the frames still held."""
        return range(self.count - len(self._held), self.count)

    def check_held(self, frame_idx: int) -> None:
        held = self.held()
        if frame_idx not in held:
            raise PromptError(f"frame {frame_idx} of the stream is no longer held: a stream keeps its last "
                              f"{self.history} frames ({held.start}..{held.stop - 1})")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, frame_idx: int) -> np.ndarray:
        self.check_held(frame_idx)
        return self._held[frame_idx - self.held().start]


def frame_problem(frame, size: Optional[tuple[int, int]], noun: str = "a pushed frame",
                  restart: str = "start a new stream") -> str:
    """Why `frame` cannot be a stream's next frame ("" when it can): it must be an HxWx3 uint8 RGB array of at
    least 2x2 pixels and, once the stream has one, of `size` (H, W). `noun` names the frame and `restart` says
    what to do for another size, in the caller's words."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", "")
        got = f"{type(frame).__name__} {tuple(shape) if shape is not None else ''} {dtype}".split()
        return f"{noun} must be an HxWx3 uint8 RGB numpy array, got {' '.join(got)}"
    if min(frame.shape[:2]) < 2:
        return f"{noun} of {frame.shape[1]}x{frame.shape[0]} pixels is too small"
    if size is not None and frame.shape[:2] != tuple(size):
        return (f"{noun} is {frame.shape[1]}x{frame.shape[0]}, but the frames so far are {size[1]}x{size[0]}: "
                f"{restart} for another size")
    return ""


def checked_frame(frame, size: Optional[tuple[int, int]]) -> np.ndarray:
    """A pushed frame as a read-only copy; MediaError with `frame_problem`'s reason when it cannot be one."""
    problem = frame_problem(frame, size)
    if problem:
        raise MediaError(problem)
    frame = np.array(frame)  # the caller may reuse its buffer (a camera does)
    frame.flags.writeable = False
    return frame


def push(session: TrackingSession, frame) -> int:
    """Append a frame to a stream's session; returns its index. The first frame gives the stream its size. What
    objects remember of frames no prompt can reach any more is let go."""
    frames: LiveFrames = session.frames
    frame_idx = frames.append(frame)
    session.num_frames = frames.count
    session.video_height, session.video_width = frames.size
    oldest = frames.held().start
    for obj in session.objects.values():
        for t in [t for t in obj.frames_tracked if t < oldest]:
            del obj.frames_tracked[t]
    return frame_idx
