"""A dataset's scores from its ground truth and a tracker's predictions: each sequence and object scored by
`metrics` at the dataset's granularity, then the dataset's overall figures, aggregated as each benchmark does:

- masks (DAVIS, MOSE, SA-V): J, F and J&F per object; a sequence's are its objects' means; the dataset's J and
  F are the means over every object of every sequence (DAVIS 2017's "J-Mean" and "F-Mean"), J&F their mean.
- boxes (LaSOT, GOT-10k, TAG): one-pass evaluation of each object's track; the dataset's AUC, precision and
  normalised precision are the means over every track, its curves the mean curves (the toolkits' average of
  per-sequence success plots).
- points (TAP-Vid): the metrics over all points of a video; the dataset's are the means over videos (TAP-Vid's
  averaging); an object's row is its point alone.

These are the means `metrics.summarize_vos`, `summarize_sot` and `summarize_points` take; they are taken here
from the stored per-object values, so that a subset (an attribute's sequences) aggregates the same way and a
report can be re-aggregated without the arrays.

Where a frame holds several objects (masks or boxes), MOT/MOTS scores (HOTA, IDF1, MOTA) come from trackeval;
the dataset's are their means over sequences.
A sequence without predictions (tracking failed, or none in --score-only's folder) keeps its error and is left
out of the overall figures, which then say they are incomplete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

METRICS = {
    "mask": ("j_and_f", "j", "f"),
    "box": ("auc", "precision", "normalized_precision"),
    "point": ("average_jaccard", "delta_avg", "occlusion_accuracy"),
}
MOT_METRICS = ("HOTA", "IDF1", "MOTA")  # of metrics.mot_scores' fields, the ones reported
LABELS = {"j_and_f": "J&F", "j": "J", "f": "F", "auc": "AUC", "precision": "P@20", "normalized_precision": "P norm",
          "average_jaccard": "AJ", "delta_avg": "<δ avg", "occlusion_accuracy": "OA"}


# A sequence whose ground truth is its prompt alone (GOT-10k's test split) is tracked, and its predictions
# written, but it cannot be scored here; that is no failure of the run.
NO_TRUTH = "no ground truth after the prompt: submit its predictions to the benchmark's server"


@dataclass(frozen=True)
class Curves:
    """Box tracking's one-pass curves: the success rate at each overlap threshold, the precision at each
    centre-distance threshold (pixels)."""

    overlaps: np.ndarray
    success: np.ndarray
    pixels: np.ndarray
    precision: np.ndarray


@dataclass(frozen=True)
class ObjectScore:
    obj_id: int
    values: dict[str, float]  # the granularity's METRICS


@dataclass(frozen=True)
class SequenceScore:
    name: str
    values: dict[str, float] = field(default_factory=dict)  # empty when `error`
    objects: tuple[ObjectScore, ...] = ()
    attributes: tuple[str, ...] = ()
    curves: Optional[Curves] = None  # boxes: the mean of its objects' curves
    mot: Optional[dict[str, float]] = None  # several objects a frame: HOTA, IDF1, MOTA
    error: Optional[str] = None  # why it has no scores

    @property
    def scored(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class DatasetScores:
    layout: str
    granularity: str
    sequences: tuple[SequenceScore, ...]
    overall: dict[str, float]  # over the scored sequences
    curves: Optional[Curves] = None
    attributes: dict[str, dict[str, float]] = field(default_factory=dict)  # attribute -> overall of its sequences
    mot: Optional[dict[str, float]] = None  # mean of the sequences' MOT scores

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.granularity]

    @property
    def failed(self) -> list[SequenceScore]:
        return [s for s in self.sequences if not s.scored]

    @property
    def complete(self) -> bool:
        return not self.failed

    @property
    def errors(self) -> list[SequenceScore]:
        """The sequences not scored for a fault: not tracked, no or unusable predictions."""
        return [s for s in self.failed if s.error != NO_TRUTH]


# --------------------------------------------------------------------------- the dataset


def score_dataset(layout: str, granularity: str, sequences: Sequence[SequenceScore]) -> DatasetScores:
    scored = [s for s in sequences if s.scored]
    attributes = sorted({a for s in scored for a in s.attributes})
    by_attribute = {a: overall_values(granularity, [s for s in scored if a in s.attributes]) for a in attributes}
    mot = [s.mot for s in scored if s.mot is not None]
    return DatasetScores(layout, granularity, tuple(sequences), overall_values(granularity, scored),
                         mean_curves([s.curves for s in scored if s.curves is not None]), by_attribute,
                         mean_values(mot) if mot else None)


def overall_values(granularity: str, sequences: Sequence[SequenceScore]) -> dict[str, float]:
    """The benchmark's overall figures of `sequences` (see the module's text); empty when there are none."""
    if granularity == "point":
        return mean_values([s.values for s in sequences])
    objects = [o.values for s in sequences for o in s.objects]
    if granularity == "box":
        return mean_values(objects)
    if not objects:
        return {}
    j, f = (float(np.mean([o[k] for o in objects])) for k in ("j", "f"))
    return jf_values(j, f)


def mean_values(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def mean_curves(curves: Sequence[Curves]) -> Optional[Curves]:
    if not curves:
        return None
    first = curves[0]
    return Curves(first.overlaps, np.mean(np.stack([c.success for c in curves]), axis=0),
                  first.pixels, np.mean(np.stack([c.precision for c in curves]), axis=0))


def jf_values(j: float, f: float) -> dict[str, float]:
    return {"j_and_f": (j + f) / 2, "j": j, "f": f}
