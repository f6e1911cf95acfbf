"""The review timeline of the app: one row per object over the video's frames (its presence score as a line
in the object's colour, the frames where it is visible as a band under it, its flagged frames as marks in
the colour of the reason), the frame on show as a cursor, and a legend. An object removed during the run
has its row greyed out from the frame it left, labelled "removed"; an object the job found by itself has a
"new" mark on its row at its first frame. `TimelineLayout` maps frames to pixels and back, so a click on the
image selects a frame (a flagged one when the click lands on its mark).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..media.render import color_for_id
from ..review import REASONS, ObjectTimeline, ReviewReport

REASON_COLOURS = {  # RGB; one per reason, distinct from each other at a glance
    "lost": (220, 40, 40),
    "reappeared": (30, 150, 60),
    "low_confidence": (235, 160, 0),
    "area_jump": (140, 70, 210),
    "position_jump": (0, 130, 220),
    "far_from_motion": (220, 60, 170),
}
BACKGROUND = (255, 255, 255)
ROW_BACKGROUND = (244, 244, 246)
REMOVED = (210, 210, 214)  # a row's part after its object was removed
NEW = (0, 110, 190)  # the mark of a found object's first frame
INK = (60, 60, 60)
FONT = cv2.FONT_HERSHEY_SIMPLEX
SMALL = 0.5  # font scale of the axis and the legend
LABEL = 0.55  # font scale of the object names


@dataclass(frozen=True)
class TimelineLayout:
    """Where things are on the timeline image (pixels)."""

    num_frames: int
    rows: int
    width: int = 900
    label_width: int = 120  # the object names, left of the rows
    row_height: int = 44
    axis_height: int = 26  # frame numbers under the rows
    legend_height: int = 44  # two lines
    margin: int = 10
    snap: int = 6  # a click within this many pixels of a flag's mark selects the flagged frame

    @property
    def height(self) -> int:
        return 2 * self.margin + self.rows * self.row_height + self.axis_height + self.legend_height

    @property
    def plot_left(self) -> int:
        return self.label_width

    @property
    def plot_right(self) -> int:
        return self.width - self.margin

    def x_of(self, frame: int) -> int:
        span = max(1, self.num_frames - 1)
        return int(round(self.plot_left + (self.plot_right - self.plot_left) * frame / span))

    def frame_at(self, x: float) -> int:
        span = max(1, self.num_frames - 1)
        fraction = (float(x) - self.plot_left) / max(1, self.plot_right - self.plot_left)
        return int(np.clip(round(fraction * span), 0, self.num_frames - 1))

    def row_top(self, row: int) -> int:
        return self.margin + row * self.row_height


def timeline_layout(report: ReviewReport, num_frames: int) -> TimelineLayout:
    return TimelineLayout(num_frames=max(1, int(num_frames)), rows=max(1, len(report.objects)))


def frame_at_click(report: ReviewReport, num_frames: int, x: float) -> int:
    """The frame a click at `x` on the timeline image selects: the nearest flagged frame when its mark is
    within `snap` pixels, else the frame under the click."""
    layout = timeline_layout(report, num_frames)
    flagged = report.flagged_frames
    if flagged:
        nearest = min(flagged, key=lambda frame: abs(layout.x_of(frame) - x))
        if abs(layout.x_of(nearest) - x) <= layout.snap:
            return nearest
    return layout.frame_at(x)


def render_timeline(report: ReviewReport, num_frames: int, names: Mapping[int, str],
                    current: Optional[int] = None, removed: Optional[Mapping[int, int]] = None,
                    new: Optional[Mapping[int, int]] = None) -> np.ndarray:
    """The timeline image (RGB uint8) of `report` over `num_frames` frames; `names` label the rows; `removed`:
    objects removed during the run -> the first frame without them; `new`: objects the job found by itself ->
    their first frame."""
    layout = timeline_layout(report, num_frames)
    image = np.full((layout.height, layout.width, 3), BACKGROUND, np.uint8)
    for row, timeline in enumerate(report.objects):
        _draw_row(image, layout, row, timeline, names.get(timeline.obj_id, f"object {timeline.obj_id}"))
        if removed and timeline.obj_id in removed:
            _draw_removed(image, layout, row, removed[timeline.obj_id])
    _draw_axis(image, layout)
    if current is not None:
        x = layout.x_of(int(np.clip(current, 0, layout.num_frames - 1)))
        bottom = layout.row_top(layout.rows)
        cv2.line(image, (x, layout.margin - 4), (x, bottom + 4), INK, 2)
    for row, timeline in enumerate(report.objects):  # over the cursor
        _draw_flags(image, layout, row, timeline)
        if new and timeline.obj_id in new:
            _draw_new(image, layout, row, new[timeline.obj_id])
    _draw_legend(image, layout)
    return image


def _draw_row(image: np.ndarray, layout: TimelineLayout, row: int, timeline: ObjectTimeline, name: str) -> None:
    top = layout.row_top(row)
    bottom = top + layout.row_height - 6
    colour = color_for_id(timeline.obj_id)
    cv2.rectangle(image, (layout.plot_left, top), (layout.plot_right, bottom), ROW_BACKGROUND, cv2.FILLED)
    label_y = top + layout.row_height // 2
    cv2.putText(image, _fit(name, layout.label_width - 14), (6, label_y), FONT, LABEL, colour, 2, cv2.LINE_AA)
    band_top = bottom - 5
    half = max(1, (layout.x_of(1) - layout.x_of(0)) // 2)
    for frame, visible in zip(timeline.frames, timeline.visible):
        if visible:
            x = layout.x_of(frame)
            left, right = max(layout.plot_left, x - half), min(layout.plot_right, x + half)
            cv2.rectangle(image, (left, band_top), (right, bottom), colour, cv2.FILLED)
    plot_top, plot_bottom = top + 8, band_top - 3  # presence 1 at the top, 0 at the bottom
    points = [(layout.x_of(frame), int(round(plot_bottom - (plot_bottom - plot_top) * score)))
              for frame, score in zip(timeline.frames, timeline.scores) if math.isfinite(score)]
    if len(points) > 1:
        cv2.polylines(image, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
    elif points:
        cv2.circle(image, points[0], 3, colour, cv2.FILLED)


def _draw_removed(image: np.ndarray, layout: TimelineLayout, row: int, frame: int) -> None:
    """The part of a row after its object was removed: greyed, with "removed" written in it."""
    top = layout.row_top(row)
    bottom = top + layout.row_height - 6
    left = layout.x_of(int(np.clip(frame, 0, layout.num_frames - 1)))
    cv2.rectangle(image, (left, top), (layout.plot_right, bottom), REMOVED, cv2.FILLED)
    cv2.line(image, (left, top), (left, bottom), INK, 1)
    if layout.plot_right - left > 60:
        cv2.putText(image, "removed", (left + 6, top + layout.row_height // 2 + 2), FONT, SMALL, INK, 1, cv2.LINE_AA)


def _draw_new(image: np.ndarray, layout: TimelineLayout, row: int, frame: int) -> None:
    """A found object's first frame: a line across its row and "new" beside it (left of it near the end)."""
    top = layout.row_top(row)
    bottom = top + layout.row_height - 6
    x = layout.x_of(int(np.clip(frame, 0, layout.num_frames - 1)))
    cv2.line(image, (x, top), (x, bottom), NEW, 2)
    width = cv2.getTextSize("new", FONT, SMALL, 1)[0][0]
    left = x + 4 if x + 4 + width <= layout.plot_right else x - 4 - width
    cv2.putText(image, "new", (left, top + 14), FONT, SMALL, NEW, 1, cv2.LINE_AA)


def _draw_flags(image: np.ndarray, layout: TimelineLayout, row: int, timeline: ObjectTimeline) -> None:
    top = layout.row_top(row)
    for flag in timeline.flags:
        x = layout.x_of(flag.frame)
        mark = np.array([(x - 5, top), (x + 5, top), (x, top + 8)], np.int32)
        cv2.fillConvexPoly(image, mark, REASON_COLOURS.get(flag.reason, INK), cv2.LINE_AA)


def _draw_axis(image: np.ndarray, layout: TimelineLayout) -> None:
    y = layout.row_top(layout.rows) + 4
    step = _tick_step(layout.num_frames, (layout.plot_right - layout.plot_left) // 60)
    for frame in range(0, layout.num_frames, step):
        x = layout.x_of(frame)
        cv2.line(image, (x, y), (x, y + 4), INK, 1)
        cv2.putText(image, str(frame), (x - 5 * len(str(frame)), y + 20), FONT, SMALL, INK, 1, cv2.LINE_AA)
    cv2.putText(image, "frame", (6, y + 20), FONT, SMALL, INK, 1, cv2.LINE_AA)


def _draw_legend(image: np.ndarray, layout: TimelineLayout) -> None:
    first = layout.height - layout.legend_height
    cv2.putText(image, "line: presence score, band: visible frames; flags:", (6, first + 12), FONT, SMALL, INK, 1,
                cv2.LINE_AA)
    x, y = 6, first + 34
    for reason in REASONS:
        mark = np.array([(x, y - 10), (x + 12, y - 10), (x + 6, y)], np.int32)
        cv2.fillConvexPoly(image, mark, REASON_COLOURS[reason], cv2.LINE_AA)
        label = reason.replace("_", " ")
        cv2.putText(image, label, (x + 16, y), FONT, SMALL, INK, 1, cv2.LINE_AA)
        x += 16 + cv2.getTextSize(label, FONT, SMALL, 1)[0][0] + 22


def _tick_step(num_frames: int, max_ticks: int) -> int:
    """A round step (1, 2, 5, 10, 20, 50, ...) that gives at most `max_ticks` ticks."""
    needed = max(1, math.ceil(num_frames / max(1, max_ticks)))
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= needed:
                return step * factor
        step *= 10


def _fit(text: str, width: int) -> str:
    """`text`, shortened to fit `width` pixels (OpenCV's fonts have no ellipsis character)."""
    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, FONT, LABEL, 2)[0][0] <= width

    if fits(text):
        return text
    while text and not fits(text + ".."):
        text = text[:-1]
    return text + ".."


def describe_flags_on(report: ReviewReport, frame: int, names: Mapping[int, str]) -> str:
    """One line for people: what is flagged on `frame`, or where the next and previous flags are."""
    found = report.flags_on(frame)
    if found:
        parts = []
        for obj_id, flags in found.items():
            reasons = ", ".join(_describe_flag(flag) for flag in flags)
            parts.append(f"{names.get(obj_id, f'object {obj_id}')}: {reasons}")
        return f"Frame {frame} is flagged. " + "; ".join(parts) + "."
    if not report.flagged_frames:
        return "No frame is flagged."
    total = len(report.flagged_frames)
    return f"Frame {frame}: no flag. {total} flagged frame{'s' if total != 1 else ''}; step through them below."


def _describe_flag(flag) -> str:
    reason = flag.reason.replace("_", " ")
    if flag.value is None or not math.isfinite(flag.value):
        return reason
    return f"{reason} ({flag.value:.2f})"
