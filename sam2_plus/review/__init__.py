"""Review of a tracking run: flagged frames per object (`flags`) and per-object timelines (`timeline`)."""

from .flags import REASONS, Flag, Observation, ReviewThresholds, centre_shift, flag_sequence, flag_track, flags_for
from .timeline import (
    ObjectTimeline, ObservationLog, ReviewReport, ReviewTracker, observation, read_review, review_results,
)

__all__ = [
    "REASONS", "Flag", "Observation", "ReviewThresholds", "centre_shift", "flag_sequence", "flag_track", "flags_for",
    "ObjectTimeline", "ObservationLog", "ReviewReport", "ReviewTracker", "observation", "read_review", "review_results",
]
