"""Find objects on the page: the objects the Find panel's finder found on a frame (find_panel.py, `found_on_frame`)
kept with their masks, scores and phrases (`FoundObjects`), drawn as numbered outlines on the frame view
(`draw_proposals`); a click on one, or Add all, makes proposals objects (`AppSession.adopt_proposal_at`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..discovery.found import Found
from ..media.render import color_for_id
from .errors import AppInputError

DEFAULT_DENSITY = "normal"


@dataclass(frozen=True)
class Proposal:
    """One mask the generator found, with its number on the frame view."""

    number: int
    mask: np.ndarray  # HxW bool
    score: float  # the model's predicted IoU (Everything) or the detector's score (By text)
    label: str = ""  # By text: the phrase it was found by

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class FoundObjects:
    """A Find objects result on one frame: the proposals not yet made objects."""

    frame: int
    what: str  # what was looked for: the density of Everything, or the phrases
    proposals: list[Proposal] = field(default_factory=list)

    def at(self, x: float, y: float) -> Proposal | None:
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


def found_on_frame(found: Sequence[Found], frame: int, what: str) -> FoundObjects:
    """The finder's masks on `frame` as proposals numbered from 1 in their order (largest first)."""
    return FoundObjects(frame, what, [Proposal(number, f.mask, float(f.score), f.label)
                                      for number, f in enumerate(found, start=1)])


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
