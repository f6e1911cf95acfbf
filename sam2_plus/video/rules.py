"""The rules of tracking that motion-aware tracking changes, with SAM 2's as the default.

Every session has its own `TrackingRules` (they may keep state per object). The predictor asks them at these
points and knows nothing else about motion-aware tracking (sam2_plus/video/motion.py plugs in here):

- `step(objects, frame_idx, reverse)`: the `StepRules` of one model step (a frame, a batch of objects of one
  task; reverse is None for a prompt): when an object is present and which candidate mask it gets, and,
  after a propagated step, what it gave (`StepRules.tracked`);
- `memory_frames(...)`: which tracked frames a frame attends to (None: SAM 2's, `tracker.memory_frame_indices`);
- `also_read(obj, anchor, direction)`: tracked frames a frame near `anchor` may read besides those within the
  memory's reach, which eviction must keep;
- `restart(obj_id)`: the object's prompts on a frame were cleared; `forget(obj_id)`: it was removed;
- `motion_scores(obj_ids, frame_idx)`: what the rules scored the objects' masks on a frame (None: nothing),
  reported with the frame's results.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from ..modeling.sam2_model import HeadOutput, MaskChoice
from .tracker import TrackedObject


class StepRules(MaskChoice):
    """One model step's rules: SAM 2's (`MaskChoice`), and nothing to remember of what the step gave."""

    def tracked(self, head: HeadOutput) -> None:
        """A propagated step's results (batch row k: the step's object k), kept as those frames' outputs."""


SAM2_STEP = StepRules()


class TrackingRules:
    """SAM 2's rules of tracking (see the module's doc); subclasses change some of them."""

    def step(self, objects: Sequence[TrackedObject], frame_idx: int, reverse: Optional[bool]) -> StepRules:
        return SAM2_STEP

    def memory_frames(self, obj: TrackedObject, frame_idx: int, num_frames: int, reverse: bool,
                      unselected: dict) -> Optional[list[tuple[int, int]]]:
        """(t_pos, frame) of the tracked memories a frame reads, t_pos ascending (1 = oldest); None: SAM 2's."""
        return None

    def also_read(self, obj: TrackedObject, anchor: int, direction: int) -> set[int]:
        """Tracked frames a frame next to `anchor`, tracking away from it in `direction` (+1 forward, -1
        reverse), may read beyond the memory's reach."""
        return set()

    def restart(self, obj_id: int) -> None:
        """The object's prompts on a frame were cleared."""

    def forget(self, obj_id: int) -> None:
        """The object was removed."""

    def motion_scores(self, obj_ids: Sequence[int], frame_idx: int) -> Optional[torch.Tensor]:
        """[N] float32 on the host: each object's motion score on the frame (NaN where none), or None."""
        return None
