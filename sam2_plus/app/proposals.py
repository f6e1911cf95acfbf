"""Find objects: the automatic mask generator on one frame (`find_on_frame`, the GPU part, pure), its masks as
numbered proposals (`FoundObjects`) drawn as outlines on the frame view (`draw_proposals`); a click on one, or
Add all, makes proposals objects (`AppSession.adopt_proposal`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from ..media.decode import FrameSource
from ..media.render import color_for_id
from ..weights import WeightsSource
from .errors import AppInputError
from .predictors import mask_generator_for, tracking_predictor

# points per side of the generator's grid, by the page's density choice
DENSITIES = {"coarse": 8, "normal": 16, "fine": 32}
DEFAULT_DENSITY = "normal"
FIND_GPU_SECONDS = 60  # one image encoder pass and up to 32x32 clicks decoded


@dataclass(frozen=True)
class FindRequest:
    """One Find objects call, checked: a frame of a video file, the model and the density (picklable)."""

    video: Path
    frame: int
    model: str
    weights: WeightsSource
    density: str = DEFAULT_DENSITY
    device: Optional[str] = None

    @property
    def points_per_side(self) -> int:
        return DENSITIES[self.density]


def check_density(density: str) -> str:
    if density not in DENSITIES:
        raise AppInputError(f"unknown density {density!r}; choose one of {', '.join(DENSITIES)}")
    return density


@dataclass(frozen=True)
class Proposal:
    """One mask the generator found: its number on the frame view (1 = the highest predicted IoU)."""

    number: int
    mask: np.ndarray  # HxW bool
    score: float  # the model's predicted IoU

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class FoundObjects:
    """A Find objects result on one frame: the proposals not yet made objects."""

    frame: int
    density: str
    proposals: list[Proposal] = field(default_factory=list)
    seconds: float = 0.0  # the model's time

    def at(self, x: float, y: float) -> Optional[Proposal]:
        """The smallest proposal holding pixel (x, y) (the most specific one under the click), if any."""
        row, col = int(y), int(x)
        holding = [p for p in self.proposals if 0 <= row < p.mask.shape[0] and 0 <= col < p.mask.shape[1]
                   and p.mask[row, col]]
        return min(holding, key=lambda p: p.area, default=None)

    def take(self, number: int) -> Proposal:
        found = next((p for p in self.proposals if p.number == number), None)
        if found is None:
            raise AppInputError(f"there is no proposal {number} on frame {self.frame}")
        self.proposals.remove(found)
        return found


def proposals_from(records: list[dict[str, Any]]) -> list[Proposal]:
    """The generator's records (binary masks) as proposals numbered by predicted IoU, best first."""
    ordered = sorted(records, key=lambda r: -float(r["predicted_iou"]))
    return [Proposal(i + 1, np.asarray(r["segmentation"], bool), float(r["predicted_iou"]))
            for i, r in enumerate(ordered) if np.asarray(r["segmentation"]).any()]


def find_on_frame(request: FindRequest) -> FoundObjects:
    """The generator on the request's frame (the GPU part of Find objects)."""
    with FrameSource(request.video) as frames:
        image = np.ascontiguousarray(frames[request.frame])
    predictor = tracking_predictor(request.model, request.device, request.weights)
    generator = mask_generator_for(predictor, request.points_per_side)
    started = time.perf_counter()
    records = generator.generate(image)
    return FoundObjects(request.frame, request.density, proposals_from(records), time.perf_counter() - started)


def draw_proposals(image: np.ndarray, proposals: list[Proposal], scale: int = 1) -> np.ndarray:
    """Each proposal's outline in a colour of its own and its number at its centre, on an image `scale` times
    the frame's size."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.5, min(image.shape[:2]) / 900)
    for proposal in proposals:
        color = color_for_id(proposal.number + 40)  # other colours than the first objects'
        contours, _ = cv2.findContours(proposal.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = [c * scale for c in contours]
        cv2.drawContours(image, contours, -1, (255, 255, 255), 3)
        cv2.drawContours(image, contours, -1, color, 2)
        ys, xs = np.nonzero(proposal.mask)
        at = (int(xs.mean() * scale), int(ys.mean() * scale))
        text = str(proposal.number)
        (w, h), _ = cv2.getTextSize(text, font, size, 2)
        origin = (at[0] - w // 2, at[1] + h // 2)
        cv2.putText(image, text, origin, font, size, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(image, text, origin, font, size, (255, 255, 255), 2, cv2.LINE_AA)
    return image
