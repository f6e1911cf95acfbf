"""Benchmark metrics: pure functions on numpy arrays, typed results, no I/O. Scores are fractions in [0, 1].

Which library does the work, and why a metric is written here:

- **VOS** (DAVIS 2017 / MOSE / SA-V): region similarity J and boundary accuracy F as DAVIS defines them. No kept
  library computes them per frame on arrays (``davis2017-evaluation`` is not a package; TrackEval's ``JAndF``
  matches tracker ids to ground truth by assignment, which the semi-supervised protocol does not do), so they are
  written here. The boundary dilation is **OpenCV**'s ``cv2.dilate`` with a disk structuring element built here
  (the pixels within the radius, the element ``skimage.morphology.disk`` gives, without depending on
  scikit-image); the one-pixel boundary map follows DAVIS's ``seg2bmap`` definition.
- **SOT** (one-pass evaluation): written here because the kept toolkits are MATLAB (LaSOT), tied to their own
  dataset readers (``got10k`` runs trackers itself; it has no normalised precision), or torch scripts
  (SAM2-Plus's ``sot_benchmark``).
- **TAP-Vid**: written here because tapnet (``compute_tapvid_metrics``) is not a package.
- **Multi-object** HOTA, IDF1, MOTA: **TrackEval**'s metric classes on the same per-frame data its MOTChallenge
  reader builds; only the boxes or masks are turned into ids and similarities here.

Protocol facts each function follows are in its docstring.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np

# --------------------------------------------------------------------------------------------------- VOS


@dataclass(frozen=True)
class VosScores:
    """One sequence: the means over its objects of each object's mean J and F over the evaluated frames."""

    j: float
    f: float
    j_and_f: float
    per_object: dict[int, tuple[float, float]]  # object id -> (J, F)
    num_frames: int = 0  # frames scored (annotated frames less the first and the last)


@dataclass(frozen=True)
class VosSummary:
    """A dataset: every object of every sequence weighs the same (DAVIS's and SA-V's global score)."""

    j: float
    f: float
    j_and_f: float
    num_objects: int


def region_similarity(truth: np.ndarray, pred: np.ndarray) -> float:
    """Jaccard index of two boolean masks; 1 when both are empty (DAVIS's ``db_eval_iou``)."""
    truth, pred = _bool_pair(truth, pred)
    union = np.count_nonzero(truth | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(truth & pred) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """DAVIS's one-pixel boundary (``seg2bmap``): pixels that differ from the right, lower or lower-right
    neighbour, so the line lies half a pixel towards the origin. The last row and column compare only with
    neighbours inside the image, which repeating the edge row and column gives."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, ((0, 1), (0, 1)), mode="edge")
    return (mask != padded[:-1, 1:]) | (mask != padded[1:, :-1]) | (mask != padded[1:, 1:])


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """The matching tolerance in pixels: ``bound_th`` of the image diagonal rounded up, or ``bound_th`` itself
    when it is 1 or more (DAVIS)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"a tolerance in pixels must be whole, got {bound_th}")
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def disk(radius: int) -> np.ndarray:
    """The structuring element of the pixels within ``radius`` of the centre (uint8, side 2 * radius + 1)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)


def boundary_f(truth: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS's boundary F: precision = predicted boundary pixels within the tolerance of the true boundary,
    recall the other way, F = 2PR / (P + R). No boundary in either: 1; in only one of them: 0."""
    truth, pred = _bool_pair(truth, pred)
    truth_edge, pred_edge = boundary_map(truth), boundary_map(pred)
    n_truth, n_pred = np.count_nonzero(truth_edge), np.count_nonzero(pred_edge)
    if n_truth == 0 and n_pred == 0:
        return 1.0
    if n_truth == 0 or n_pred == 0:
        return 0.0  # precision or recall is 0 (DAVIS: P=1, R=0 or P=0, R=1)
    kernel = disk(boundary_radius(truth.shape, bound_th))
    truth_near = cv2.dilate(truth_edge.astype(np.uint8), kernel).astype(bool)
    pred_near = cv2.dilate(pred_edge.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(pred_edge & truth_near) / n_pred
    recall = np.count_nonzero(truth_edge & pred_near) / n_truth
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def vos_scores(
    truth_frames: Iterable[Optional[np.ndarray]],
    pred_frames: Iterable[Optional[np.ndarray]],
    obj_ids: Iterable[int],
    *,
    skip_first_and_last: bool = True,
    bound_th: float = 0.008,
) -> VosScores:
    """J, F and J&F of one sequence from its label maps (0 = background), frame by frame in order.

    Pass every frame's ground truth, the prompt frame included: ``None`` marks a frame without ground truth,
    which is skipped (SA-V annotates every fourth frame); of the annotated frames the first and the last are
    dropped, as DAVIS 2017's semi-supervised evaluator and SA-V's do. Each object is scored from the first
    evaluated frame where it appears in the truth or the prediction on; a frame where it is absent from the
    truth then scores 1 if the prediction is empty too and 0 otherwise. Objects that never appear in the
    evaluated truth are left out (SA-V's evaluator). Objects visible in the frame after the prompt, as in
    DAVIS 2017, score the same under DAVIS's evaluator, which scores every object on every frame.
    """
    ids = sorted({int(i) for i in obj_ids})
    frames: dict[int, list[tuple[float, float]]] = {i: [] for i in ids}
    in_truth: set[int] = set()
    count = 0
    for truth, pred in _evaluated_pairs(truth_frames, pred_frames, skip_first_and_last):
        count += 1
        for obj in ids:
            obj_truth, obj_pred = truth == obj, pred == obj
            present = bool(obj_truth.any())
            if present:
                in_truth.add(obj)
            if frames[obj] or present or obj_pred.any():
                frames[obj].append((region_similarity(obj_truth, obj_pred), boundary_f(obj_truth, obj_pred, bound_th)))
    per_object = {obj: _column_means(frames[obj]) for obj in ids if obj in in_truth}
    j, f = _column_means(list(per_object.values()))
    return VosScores(j=j, f=f, j_and_f=(j + f) / 2, per_object=per_object, num_frames=count)


def summarize_vos(sequences: Iterable[VosScores]) -> VosSummary:
    """The dataset's J, F and J&F: means over all objects of all sequences (DAVIS 2017, SA-V)."""
    objects = [pair for seq in sequences for pair in seq.per_object.values()]
    j, f = _column_means(objects)
    return VosSummary(j=j, f=f, j_and_f=(j + f) / 2, num_objects=len(objects))


def _evaluated_pairs(
    truth_frames: Iterable[Optional[np.ndarray]], pred_frames: Iterable[Optional[np.ndarray]], skip: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    annotated = _annotated_pairs(truth_frames, pred_frames)
    if not skip:
        yield from annotated
        return
    next(annotated, None)  # the first annotated frame holds the prompt
    held = next(annotated, None)
    for pair in annotated:
        yield held
        held = pair
    # the last annotated frame, still held, is not scored


def _annotated_pairs(
    truth_frames: Iterable[Optional[np.ndarray]], pred_frames: Iterable[Optional[np.ndarray]]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for index, (truth, pred) in enumerate(zip(truth_frames, pred_frames, strict=True)):
        if truth is None:
            continue
        if pred is None:
            raise ValueError(f"frame {index} has ground truth but no prediction")
        truth, pred = np.asarray(truth), np.asarray(pred)
        if truth.shape != pred.shape:
            raise ValueError(f"frame {index}: ground truth {truth.shape} and prediction {pred.shape} differ")
        yield truth, pred


def _bool_pair(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, pred = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    if truth.shape != pred.shape or truth.ndim != 2:
        raise ValueError(f"masks must be 2-D and of one shape, got {truth.shape} and {pred.shape}")
    return truth, pred


def _column_means(rows: Sequence[tuple[float, float]]) -> tuple[float, float]:
    if not rows:
        return math.nan, math.nan
    means = np.mean(np.asarray(rows, dtype=float), axis=0)
    return float(means[0]), float(means[1])


# --------------------------------------------------------------------------------------------------- SOT

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)  # OTB's and LaSOT's 0:0.05:1
CENTER_THRESHOLDS = np.arange(51, dtype=float)  # pixels, 0..50
NORM_CENTER_THRESHOLDS = np.arange(51, dtype=float) / 100  # 0..0.5 of the true box's size
PRECISION_PIXELS = 20


@dataclass(frozen=True, eq=False)
class SotScores:
    """One-pass evaluation of one object (or the mean of sequences' curves: ``summarize_sot``).

    ``success_curve[k]``: fraction of frames whose IoU exceeds ``IOU_THRESHOLDS[k]``; ``auc`` its mean.
    ``precision_curve[k]``: fraction of frames whose centre error is at most ``CENTER_THRESHOLDS[k]`` pixels;
    ``precision`` at 20 px. ``normalized_precision_curve``: the same with the error normalised by the true
    box's width and height, over ``NORM_CENTER_THRESHOLDS``; ``normalized_precision`` is its mean, the area
    LaSOT ranks by, ``normalized_precision_at_02`` its value at 0.2, the figure pytracking (and so SAM2-Plus's
    ``sot_benchmark``) prints.
    """

    auc: float
    precision: float
    normalized_precision: float
    success_curve: np.ndarray
    precision_curve: np.ndarray
    normalized_precision_curve: np.ndarray
    normalized_precision_at_02: float
    num_frames: int  # frames in the denominator

    @property
    def success_rate_50(self) -> float:
        """OP50: the success curve at IoU 0.5."""
        return float(self.success_curve[10])

    @property
    def success_rate_75(self) -> float:
        """OP75: the success curve at IoU 0.75."""
        return float(self.success_curve[15])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of [T, 4] xyxy boxes. The toolkits' inclusive-pixel convention (x2 = x + w - 1, areas
    w * h, intersections + 1) gives the same value: the 1s cancel."""
    width = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    height = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = _area(a) + _area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def center_errors(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise centre distance in pixels, and the same with the offset divided by the true width and
    height (LaSOT's normalised distance)."""
    offset = _centers(pred) - _centers(truth)
    size = truth[:, 2:] - truth[:, :2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.hypot(offset[:, 0], offset[:, 1]), np.hypot(*(offset / size).T)


def sot_scores(truth_boxes: np.ndarray, pred_boxes: np.ndarray, *, absent_counts: bool = True) -> SotScores:
    """One-pass evaluation of one object from [T, 4] xyxy boxes (NaN where absent), as LaSOT's toolkit and
    pytracking (SAM2-Plus's ``sot_benchmark``) compute it.

    - The first frame holds the prompt: its prediction is the ground truth.
    - A prediction that is absent (NaN) or has no area takes the previous frame's box (both toolkits;
      ``got10k``'s OTB experiment would count it a failure instead).
    - A frame where the target is absent (a NaN or empty true box) stays in the denominator and fails every
      threshold (LaSOT: its absent frames are removed from the counts, not from the frame total);
      ``absent_counts=False`` leaves such frames out (GOT-10k's ``cover == 0``).
    - Success: IoU strictly above the threshold; precision: error at most the threshold.
    """
    truth, pred = _sot_boxes(truth_boxes), _sot_boxes(pred_boxes)
    if truth.shape != pred.shape:
        raise ValueError(f"ground truth {truth.shape} and prediction {pred.shape} differ")
    pred = _carry_forward(truth, pred)
    present = _valid_boxes(truth)
    total = len(truth) if absent_counts else int(present.sum())
    ious = box_iou(truth[present], pred[present])
    errors, norm_errors = center_errors(truth[present], pred[present])
    success = _rate(ious[:, None] > IOU_THRESHOLDS[None, :], total)
    precision = _rate(errors[:, None] <= CENTER_THRESHOLDS[None, :], total)
    norm_precision = _rate(norm_errors[:, None] <= NORM_CENTER_THRESHOLDS[None, :], total)
    return _sot_result(success, precision, norm_precision, total)


def summarize_sot(sequences: Iterable[SotScores]) -> SotScores:
    """A dataset: each sequence's curves weigh the same (LaSOT, OTB, pytracking), the scores read off the mean
    curves."""
    seqs = list(sequences)
    if not seqs:
        raise ValueError("no sequences to summarise")
    mean = [np.mean([getattr(s, name) for s in seqs], axis=0) for name in _CURVES]
    return _sot_result(*mean, sum(s.num_frames for s in seqs))


_CURVES = ("success_curve", "precision_curve", "normalized_precision_curve")


def _sot_result(success: np.ndarray, precision: np.ndarray, norm_precision: np.ndarray, total: int) -> SotScores:
    return SotScores(
        auc=float(np.mean(success)),
        precision=float(precision[PRECISION_PIXELS]),
        normalized_precision=float(np.mean(norm_precision)),
        success_curve=success,
        precision_curve=precision,
        normalized_precision_curve=norm_precision,
        normalized_precision_at_02=float(norm_precision[20]),
        num_frames=total,
    )


def _sot_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.array(boxes, dtype=float)
    if boxes.ndim == 3 and boxes.shape[1] == 1:
        boxes = boxes[:, 0]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [T, 4] xyxy, got {boxes.shape}")
    return boxes


def _valid_boxes(boxes: np.ndarray) -> np.ndarray:
    finite = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _carry_forward(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    pred = pred.copy()
    if len(truth) and _valid_boxes(truth[:1])[0]:
        pred[0] = truth[0]
    valid = _valid_boxes(pred)
    for index in range(1, len(pred)):
        if not valid[index]:
            pred[index] = pred[index - 1]
    return pred


def _rate(hits: np.ndarray, total: int) -> np.ndarray:
    if total == 0:
        return np.full(hits.shape[1], np.nan)
    return hits.sum(axis=0) / total


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _centers(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


# --------------------------------------------------------------------------------------------------- TAP-Vid

POINT_THRESHOLDS = (1, 2, 4, 8, 16)  # pixels at 256 x 256
POINT_RESOLUTION = 256


@dataclass(frozen=True)
class PointScores:
    """TAP-Vid's metrics of one video (query-first); ``within`` and ``jaccard`` per ``POINT_THRESHOLDS``."""

    occlusion_accuracy: float
    delta_avg: float  # <delta^x_avg: mean of ``within``
    average_jaccard: float  # mean of ``jaccard``
    within: tuple[float, ...] = field(default=())
    jaccard: tuple[float, ...] = field(default=())


def point_scores(
    truth_points: np.ndarray,
    truth_occluded: np.ndarray,
    pred_points: np.ndarray,
    pred_occluded: np.ndarray,
    size: tuple[int, int],
) -> PointScores:
    """Occlusion accuracy, <delta^x_avg and average Jaccard of one video, as tapnet's
    ``compute_tapvid_metrics`` computes them in query-first mode.

    Points are [T, N, 2] (x, y) pixels of a ``size`` = (height, width) frame, scaled to 256 x 256. Each track's
    query is its first visible frame; only the frames after it are scored, and tracks never visible are left
    out. Counts are summed over all points and frames of the video. A point is within x when its squared
    distance is below x squared. <delta^x_avg ignores the predicted occlusion; a Jaccard true positive is
    within x and visible in both; false positives are predicted visible but occluded or too far; the
    denominator is the visible truth plus the false positives. A NaN predicted position is never within.
    """
    truth_occluded, pred_occluded = np.asarray(truth_occluded, bool), np.asarray(pred_occluded, bool)
    truth_points, pred_points = np.asarray(truth_points, float), np.asarray(pred_points, float)
    _check_point_shapes(truth_points, truth_occluded, pred_points, pred_occluded)
    visible, pred_visible = ~truth_occluded, ~pred_occluded
    scored = _after_query(visible)
    scale = np.array([POINT_RESOLUTION / size[1], POINT_RESOLUTION / size[0]])
    with np.errstate(invalid="ignore"):
        squared = np.sum(np.square((pred_points - truth_points) * scale), axis=-1)
    occlusion_accuracy = _ratio(np.sum((pred_occluded == truth_occluded) & scored), np.sum(scored))
    within, jaccard = [], []
    for threshold in POINT_THRESHOLDS:
        with np.errstate(invalid="ignore"):
            close = squared < threshold**2
        correct = close & visible & scored
        within.append(_ratio(np.sum(correct), np.sum(visible & scored)))
        false_positive = pred_visible & (~visible | ~close) & scored
        jaccard.append(_ratio(np.sum(correct & pred_visible), np.sum(visible & scored) + np.sum(false_positive)))
    return PointScores(
        occlusion_accuracy=occlusion_accuracy,
        delta_avg=float(np.mean(within)),
        average_jaccard=float(np.mean(jaccard)),
        within=tuple(within),
        jaccard=tuple(jaccard),
    )


def summarize_points(videos: Iterable[PointScores]) -> PointScores:
    """A dataset: the plain mean over videos (tapnet)."""
    scores = list(videos)
    if not scores:
        raise ValueError("no videos to summarise")
    mean = {name: float(np.mean([getattr(s, name) for s in scores])) for name in _POINT_SCALARS}
    within = tuple(float(v) for v in np.mean([s.within for s in scores], axis=0))
    jaccard = tuple(float(v) for v in np.mean([s.jaccard for s in scores], axis=0))
    return PointScores(**mean, within=within, jaccard=jaccard)


_POINT_SCALARS = ("occlusion_accuracy", "delta_avg", "average_jaccard")


def _after_query(visible: np.ndarray) -> np.ndarray:
    """[T, N]: frames strictly after each track's first visible frame (tapnet's query-first evaluation)."""
    query = np.argmax(visible, axis=0)
    frames = np.arange(visible.shape[0])[:, None]
    return (frames > query[None, :]) & visible.any(axis=0)[None, :]


def _check_point_shapes(truth: np.ndarray, occluded: np.ndarray, pred: np.ndarray, pred_occ: np.ndarray) -> None:
    if truth.ndim != 3 or truth.shape[2] != 2 or truth.shape != pred.shape:
        raise ValueError(f"points must be [T, N, 2] and alike, got {truth.shape} and {pred.shape}")
    if occluded.shape != truth.shape[:2] or pred_occ.shape != truth.shape[:2]:
        raise ValueError(f"occlusion flags must be [T, N] = {truth.shape[:2]}, got {occluded.shape}, {pred_occ.shape}")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else math.nan


# --------------------------------------------------------------------------------------------------- MOT / MOTS

MOT_FIELDS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW")


def mot_scores(
    truth_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    truth_ids: Optional[Sequence[int]] = None,
    pred_ids: Optional[Sequence[int]] = None,
) -> dict[str, float]:
    """HOTA (mean over TrackEval's alphas 0.05..0.95), DetA, AssA, LocA, MOTA, MOTP, IDF1, IDP, IDR and IDSW of
    box tracks through TrackEval, box IoU as MOTChallenge's 2D-box similarity.

    Boxes are [T, N, 4] and [T, M, 4] xyxy, NaN where a track is absent; the ids name the columns (default
    0..N-1) and may repeat where one track spans columns that never share a frame.
    """
    return _mot_summary(_mot_raw(_box_tracks(truth_boxes, truth_ids), _box_tracks(pred_boxes, pred_ids), _box_ious))


def mots_scores(
    truth_frames: Iterable[np.ndarray], pred_frames: Iterable[np.ndarray], obj_ids: Iterable[int]
) -> dict[str, float]:
    """The same for mask tracks (MOTS) from label maps: the truth's objects are ``obj_ids``, the prediction's
    every non-zero label; mask IoU is the similarity."""
    ids = sorted({int(i) for i in obj_ids})
    truth_tracks, pred_tracks = [], []
    for truth, pred in zip(truth_frames, pred_frames, strict=True):
        truth, pred = np.asarray(truth), np.asarray(pred)
        truth_tracks.append(_label_tracks(truth, [i for i in ids if np.any(truth == i)]))
        pred_tracks.append(_label_tracks(pred, [int(i) for i in np.unique(pred) if i != 0]))
    return _mot_summary(_mot_raw(truth_tracks, pred_tracks, _mask_ious))


def combine_mot(sequences: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Box tracks of several sequences scored together as TrackEval combines sequences (counts summed)."""
    raws = [_mot_raw(_box_tracks(truth, None), _box_tracks(pred, None), _box_ious) for truth, pred in sequences]
    combined = {}
    for metric in _trackeval_metrics():
        name = metric.get_name()
        combined[name] = metric.combine_sequences({str(n): raw[name] for n, raw in enumerate(raws)})
    return _mot_summary(combined)


TRACKEVAL_INSTALL = "pip install --no-deps trackeval==1.3.0"  # its declared opencv-python would replace the headless


def trackeval_missing() -> Optional[str]:
    """Why the multi-object scores cannot be computed here (TrackEval not installed), or None."""
    if importlib.util.find_spec("trackeval") is None:
        return f"the multi-object scores (HOTA, IDF1, MOTA) need TrackEval: {TRACKEVAL_INSTALL}"
    return None


def _trackeval_metrics() -> tuple:
    from trackeval.metrics import CLEAR, HOTA, Identity

    return HOTA(), CLEAR({"PRINT_CONFIG": False}), Identity({"PRINT_CONFIG": False})


# One frame's tracks: (ids, detections) with detections a [K, 4] box array or a [K, H, W] bool array.
_Frame = tuple[list[int], np.ndarray]


def _box_tracks(boxes: np.ndarray, ids: Optional[Sequence[int]]) -> list[_Frame]:
    boxes = np.asarray(boxes, dtype=float)
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise ValueError(f"track boxes must be [T, N, 4], got {boxes.shape}")
    ids = list(range(boxes.shape[1])) if ids is None else [int(i) for i in ids]
    if len(ids) != boxes.shape[1]:
        raise ValueError(f"{len(ids)} ids for {boxes.shape[1]} columns")
    frames = []
    for frame in boxes:
        present = np.isfinite(frame).all(axis=1)
        frame_ids = [ids[k] for k in np.flatnonzero(present)]
        if len(set(frame_ids)) != len(frame_ids):
            raise ValueError("an id is on two boxes of one frame")
        frames.append((frame_ids, frame[present]))
    return frames


def _label_tracks(labels: np.ndarray, ids: list[int]) -> _Frame:
    return ids, np.stack([labels == i for i in ids]) if ids else np.zeros((0, *labels.shape), bool)


def _box_ious(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    from trackeval.datasets._base_dataset import _BaseDataset

    return _BaseDataset._calculate_box_ious(truth, pred, box_format="x0y0x1y1")


def _mask_ious(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    inter = np.einsum("ahw,bhw->ab", truth.astype(np.int64), pred.astype(np.int64))
    areas_t, areas_p = truth.sum(axis=(1, 2)), pred.sum(axis=(1, 2))
    union = areas_t[:, None] + areas_p[None, :] - inter
    return np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)


def _mot_raw(truth: list[_Frame], pred: list[_Frame], similarity: Callable) -> dict[str, dict]:
    """TrackEval's per-sequence results of HOTA, CLEAR and Identity: ids renumbered 0..K-1 as its readers do."""
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} ground truth frames and {len(pred)} predicted")
    truth_index = {i: k for k, i in enumerate(sorted({i for ids, _ in truth for i in ids}))}
    pred_index = {i: k for k, i in enumerate(sorted({i for ids, _ in pred for i in ids}))}
    data = {
        "num_timesteps": len(truth),
        "num_gt_ids": len(truth_index),
        "num_tracker_ids": len(pred_index),
        "num_gt_dets": sum(len(ids) for ids, _ in truth),
        "num_tracker_dets": sum(len(ids) for ids, _ in pred),
        "gt_ids": [np.array([truth_index[i] for i in ids], dtype=int) for ids, _ in truth],
        "tracker_ids": [np.array([pred_index[i] for i in ids], dtype=int) for ids, _ in pred],
        "similarity_scores": [similarity(t, p) for (_, t), (_, p) in zip(truth, pred)],
    }
    return {metric.get_name(): metric.eval_sequence(data) for metric in _trackeval_metrics()}


def _mot_summary(raw: dict[str, dict]) -> dict[str, float]:
    hota, clear, identity = raw["HOTA"], raw["CLEAR"], raw["Identity"]
    values = {name: float(np.mean(hota[name])) for name in ("HOTA", "DetA", "AssA", "LocA")}
    values.update({name: float(clear[name]) for name in ("MOTA", "MOTP", "IDSW")})
    values.update({name: float(identity[name]) for name in ("IDF1", "IDP", "IDR")})
    return {name: values[name] for name in MOT_FIELDS}
