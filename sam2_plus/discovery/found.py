"""What discovery hands on: a found mask with its score and label, and a detector's box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Found:
    """A mask found on a keyframe, at video resolution."""

    mask: np.ndarray  # [H, W] bool
    score: float  # the detector's box score (text) or the predicted IoU (everything)
    label: str = ""  # the phrase it was found by (text mode)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True)
class Detection:
    """One box of an open-vocabulary detector, in pixels of the image it was given."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    label: str  # one of the phrases it was asked for
