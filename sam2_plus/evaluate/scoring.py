"""Each sequence scored by `metrics` at its dataset's granularity (the aggregation: scores.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import one_line
from . import metrics
from .datasets import EvalSequence, Prediction, read_predictions
from .scores import MOT_METRICS, NO_TRUTH, Curves, ObjectScore, SequenceScore, jf_values, mean_curves, mean_values


def score_all(sequences: Sequence[EvalSequence], pred_dir: Path, missing: Mapping[str, str] = {},
              scored: Callable[[SequenceScore], None] = lambda score: None) -> list[SequenceScore]:
    """Every sequence's scores from its predictions in `pred_dir` (the dataset's format); a sequence named in
    `missing` (with why), or whose predictions cannot be read, keeps its error. `scored` hears of each."""
    scores = []
    for seq in sequences:
        if seq.name in missing:
            score = failed_sequence(seq, missing[seq.name])
        elif len(annotated_frames(seq)) < 2:
            score = failed_sequence(seq, NO_TRUTH)
        else:
            try:
                score = score_sequence(seq, read_predictions(seq, pred_dir))
            except (OSError, ValueError, KeyError) as e:  # no file, or one that does not fit the ground truth
                score = failed_sequence(seq, f"predictions: {one_line(e)}")
        scored(score)
        scores.append(score)
    return scores


def score_sequence(seq: EvalSequence, prediction: Prediction) -> SequenceScore:
    """`seq`'s scores from the tracker's `prediction` (shapes of its ground truth)."""
    scorer = {"mask": _score_masks, "box": _score_boxes, "point": _score_points}[seq.granularity]
    score = scorer(seq, prediction)
    mot = _mot(seq, prediction) if len(seq.truth.obj_ids) > 1 and seq.granularity != "point" else None
    return SequenceScore(seq.name, score.values, score.objects, tuple(seq.attributes), score.curves, mot)


def failed_sequence(seq: EvalSequence, error: str) -> SequenceScore:
    return SequenceScore(seq.name, attributes=tuple(seq.attributes), error=error)


def annotated_frames(seq: EvalSequence) -> list[int]:
    frames = seq.truth.annotated
    return list(range(seq.num_frames)) if frames is None else sorted(int(t) for t in frames)


def _score_masks(seq: EvalSequence, prediction: Prediction) -> SequenceScore:
    annotated = set(annotated_frames(seq))
    frames = range(seq.num_frames)  # the metric drops the first (prompt) and last annotated frames itself
    vos = metrics.vos_scores((seq.truth.masks(t) if t in annotated else None for t in frames),
                             (prediction.masks(t) if t in annotated else None for t in frames), seq.truth.obj_ids)
    objects = tuple(ObjectScore(obj_id, jf_values(j, f)) for obj_id, (j, f) in sorted(vos.per_object.items()))
    return SequenceScore(seq.name, {"j_and_f": vos.j_and_f, "j": vos.j, "f": vos.f}, objects)


def _score_boxes(seq: EvalSequence, prediction: Prediction) -> SequenceScore:
    frames = annotated_frames(seq)
    # GOT-10k leaves the frames without its target out; LaSOT and TAG count them as failures
    absent_counts = seq.layout != "got10k"
    tracks = [metrics.sot_scores(seq.truth.boxes[frames, i], prediction.boxes[frames, i], absent_counts=absent_counts)
              for i in range(len(seq.truth.obj_ids))]
    objects = tuple(ObjectScore(obj_id, _sot_values(s)) for obj_id, s in zip(seq.truth.obj_ids, tracks))
    curves = mean_curves([_curves(s) for s in tracks])
    return SequenceScore(seq.name, mean_values([o.values for o in objects]), objects, curves=curves)


def _curves(scores: "metrics.SotScores") -> Curves:
    return Curves(metrics.IOU_THRESHOLDS, np.asarray(scores.success_curve, dtype=float), metrics.CENTER_THRESHOLDS,
                  np.asarray(scores.precision_curve, dtype=float))


def _sot_values(scores: "metrics.SotScores") -> dict[str, float]:
    return {"auc": scores.auc, "precision": scores.precision, "normalized_precision": scores.normalized_precision}


def _score_points(seq: EvalSequence, prediction: Prediction) -> SequenceScore:
    frames = annotated_frames(seq)
    truth, pred = seq.truth, prediction

    def scores(columns) -> dict[str, float]:
        s = metrics.point_scores(truth.points[frames][:, columns], truth.occluded[frames][:, columns],
                                 pred.points[frames][:, columns], pred.occluded[frames][:, columns], seq.size)
        return {"average_jaccard": s.average_jaccard, "delta_avg": s.delta_avg,
                "occlusion_accuracy": s.occlusion_accuracy}

    objects = tuple(ObjectScore(obj_id, scores([i])) for i, obj_id in enumerate(truth.obj_ids))
    return SequenceScore(seq.name, scores(slice(None)), objects)


def _mot(seq: EvalSequence, prediction: Prediction) -> dict[str, float]:
    """HOTA, IDF1 and MOTA of the sequence's objects together (trackeval, through metrics)."""
    frames = annotated_frames(seq)
    if seq.granularity == "mask":
        scores = metrics.mots_scores((seq.truth.masks(t) for t in frames), (prediction.masks(t) for t in frames),
                                     seq.truth.obj_ids)
    else:
        scores = metrics.mot_scores(seq.truth.boxes[frames], prediction.boxes[frames], seq.truth.obj_ids,
                                    seq.truth.obj_ids)
    return {name: scores[name] for name in MOT_METRICS}
