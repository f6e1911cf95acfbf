"""The benchmark metrics (sam2_plus/evaluate/metrics.py) on constructed data: the truth scored against itself,
hand-computed cases (worked in the comments), and independent implementations as test-only oracles: TrackEval's
DAVIS J&F code (``trackeval.metrics.JAndF``, with scikit-image's disk), scikit-image's disk, ``got10k``'s
one-pass curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam2_plus.evaluate import metrics as m

# --------------------------------------------------------------------------------------------------- VOS


def _square(shape=(40, 40), top=10, left=10, side=10) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_region_similarity_of_a_one_pixel_shift():
    # 10x10 square moved one column right: 10 x 9 = 90 shared pixels, union 100 + 100 - 90 = 110.
    assert m.region_similarity(_square(), _square(left=11)) == pytest.approx(90 / 110, abs=1e-15)


def test_region_similarity_of_empty_masks():
    empty = np.zeros((8, 8), bool)
    assert m.region_similarity(empty, empty) == 1.0
    assert m.region_similarity(_square((8, 8), 2, 2, 3), empty) == 0.0
    assert m.region_similarity(empty, _square((8, 8), 2, 2, 3)) == 0.0


def test_boundary_map_of_a_square():
    # Square rows/cols 10..19. Inside pixels that differ from their right/lower/lower-right neighbour: column 19
    # and row 19 (10 + 10 - 1 = 19). Outside ones: column 9 rows 9..19 and row 9 cols 9..19 (11 + 11 - 1 = 21).
    bmap = m.boundary_map(_square())
    expected = np.zeros((40, 40), bool)
    expected[10:20, 19] = expected[19, 10:20] = True
    expected[9:20, 9] = expected[9, 9:20] = True
    assert bmap.sum() == 40 and np.array_equal(bmap, expected)


def test_boundary_f_of_a_one_pixel_shift_within_the_default_tolerance():
    # 40x40 image: 0.008 * hypot(40, 40) = 0.45, rounded up to 1 pixel. Shifting the square one column right
    # puts every boundary pixel of each mask within one pixel (4-neighbours) of the other's: P = R = F = 1.
    assert m.boundary_radius((40, 40)) == 1
    assert m.boundary_f(_square(), _square(left=11)) == 1.0


def test_boundary_f_of_a_two_pixel_shift_with_a_one_pixel_tolerance():
    # Truth: square cols 10..19; prediction: cols 12..21; tolerance 1 px (bound_th=1: the 4-neighbour cross).
    # Truth boundary: col 19 rows 10..19, row 19 cols 10..19, col 9 rows 9..19, row 9 cols 9..19 (40 pixels).
    # Prediction boundary: col 21 rows 10..19, row 19 cols 12..21, col 11 rows 9..19, row 9 cols 11..21 (40).
    # Precision (prediction pixels within 1 of the truth's): col 21: none; row 19 cols 12..20: 9 (on row 19 or
    # next to (19,19)); col 11: rows 9, 10, 18, 19 (on or next to rows 9 / 19 of the truth) = 4; row 9 cols
    # 12..20: 9. 22 / 40.
    # Recall (truth pixels within 1 of the prediction's): col 19: rows 10, 18, 19 = 3; row 19 cols 10..18: 9;
    # col 9: none; row 9 cols 10..19: 10. 22 / 40. F = 2PR / (P + R) = 22 / 40 = 0.55.
    assert m.boundary_f(_square(), _square(left=12), bound_th=1) == pytest.approx(0.55, abs=1e-15)
    assert m.region_similarity(_square(), _square(left=12)) == pytest.approx(80 / 120, abs=1e-15)


def test_boundary_f_of_empty_masks():
    empty = np.zeros((20, 20), bool)
    assert m.boundary_f(empty, empty) == 1.0
    assert m.boundary_f(_square((20, 20), 5, 5, 4), empty) == 0.0
    assert m.boundary_f(empty, _square((20, 20), 5, 5, 4)) == 0.0


def test_boundary_radius_rejects_a_fractional_pixel_tolerance():
    assert m.boundary_radius((480, 854)) == 8  # 0.008 * 979.7 = 7.84 -> 8
    assert m.boundary_radius((480, 854), 3) == 3
    with pytest.raises(ValueError):
        m.boundary_radius((480, 854), 1.5)


def test_disk_equals_scikit_image():
    morphology = pytest.importorskip("skimage.morphology")
    for radius in range(0, 13):
        assert np.array_equal(m.disk(radius), morphology.disk(radius).astype(np.uint8)), radius


def _random_masks(rng, shape, count):
    """Masks of one to three random rectangles or ellipses, some touching the borders, one empty."""
    masks = np.zeros((count, *shape), bool)
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    for mask in masks[1:]:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            ry, rx = rng.integers(1, height // 2), rng.integers(1, width // 2)
            if rng.random() < 0.5:
                mask[max(cy - ry, 0):cy + ry, max(cx - rx, 0):cx + rx] = True
            else:
                mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decoder under numpy 2
@pytest.mark.parametrize("shape, bound_th", [((60, 80), 0.008), ((120, 213), 0.008), ((48, 64), 3)])
def test_j_and_f_equal_trackevals_davis_code(shape, bound_th):
    """TrackEval's JAndF carries DAVIS's own J and F code: the same values on random mask pairs."""
    pytest.importorskip("skimage.morphology")
    mask_utils = pytest.importorskip("pycocotools.mask")
    from trackeval.metrics import JAndF

    rng = np.random.default_rng(31)
    truth, pred = _random_masks(rng, shape, 12), _random_masks(rng, shape, 12)
    pred[3] = truth[3]
    encode = lambda mask: mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))  # noqa: E731
    truth_rle = [[encode(t)] for t in truth]
    pred_rle = [[encode(p)] for p in pred]
    theirs_f = JAndF._compute_f(truth_rle, pred_rle, 0, 0, bound_th)
    theirs_j = JAndF._compute_j(truth_rle, pred_rle, 1, 1, len(truth))[0, 0]
    ours_f = [m.boundary_f(t, p, bound_th) for t, p in zip(truth, pred)]
    ours_j = [m.region_similarity(t, p) for t, p in zip(truth, pred)]
    np.testing.assert_allclose(ours_f, theirs_f, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours_j, theirs_j, rtol=0, atol=1e-12)
    assert 0 < np.mean(ours_f) < 1  # the pairs are neither all equal nor all disjoint


def test_boundary_map_equals_davis_seg2bmap():
    from trackeval.metrics import JAndF

    rng = np.random.default_rng(5)
    for mask in _random_masks(rng, (37, 53), 10):
        assert np.array_equal(m.boundary_map(mask), JAndF._seg2bmap(mask.copy()))


def _labels(shape, *objects):
    """A label map from (id, mask) pairs."""
    labels = np.zeros(shape, np.uint8)
    for obj, mask in objects:
        labels[mask] = obj
    return labels


def test_vos_scores_of_the_truth_against_itself():
    shape = (40, 40)
    frames = [_labels(shape, (1, _square(left=5 + t)), (2, _square(top=25, left=25, side=8))) for t in range(6)]
    frames[3] = None  # a frame without ground truth
    scores = m.vos_scores(frames, [f if f is not None else np.zeros(shape, np.uint8) for f in frames], [1, 2])
    assert (scores.j, scores.f, scores.j_and_f) == (1.0, 1.0, 1.0)
    assert scores.per_object == {1: (1.0, 1.0), 2: (1.0, 1.0)}
    assert scores.num_frames == 3  # five annotated frames less the first and the last


def test_vos_scores_hand_computed():
    shape = (40, 40)
    sq, far = _square(), _square(top=25, left=25, side=8)
    small = _square(top=2, left=25, side=5)
    # Annotated frames a0..a4 (a0 the prompt, a4 the last: neither scored), with a frame without truth between
    # a1 and a2. Objects:
    #  1: square everywhere; the prediction is empty on a2 (an empty predicted frame): J = F = (1 + 0 + 1) / 3.
    #  2: in the truth on a1..a3, never predicted (a missed object): J = F = 0.
    #  3: enters the truth on a3, missed there: scored from a3 only (where it enters the truth or the prediction),
    #     J = F = 0; scoring a1 and a2 too, where it is absent from both, would give (1 + 1 + 0) / 3.
    #  4: in the truth on a1 only; predicted on a1 and a2 (a false positive where the truth lacks it), not on a3:
    #     frames 1, 0, 1 (absent from both on a3 scores 1): J = F = 2 / 3.
    #  5: only in the prompt frame a0: never in the scored truth, so not reported.
    # Sequence J = F = (2/3 + 0 + 0 + 2/3) / 4 = 1/3.
    truth = [
        _labels(shape, (1, sq), (5, small)),
        _labels(shape, (1, sq), (2, far), (4, small)),
        None,
        _labels(shape, (1, sq), (2, far)),
        _labels(shape, (1, sq), (2, far), (3, small)),
        _labels(shape, (2, far)),
    ]
    pred = [
        _labels(shape, (1, sq)),
        _labels(shape, (1, sq), (4, small)),
        _labels(shape, (3, far)),  # no truth here: ignored
        _labels(shape, (4, small)),
        _labels(shape, (1, sq)),
        _labels(shape, (3, sq)),  # the last annotated frame: not scored
    ]
    scores = m.vos_scores(truth, pred, [1, 2, 3, 4, 5])
    assert set(scores.per_object) == {1, 2, 3, 4}
    for obj, expected in {1: 2 / 3, 2: 0.0, 3: 0.0, 4: 2 / 3}.items():
        assert scores.per_object[obj] == pytest.approx((expected, expected), abs=1e-12), obj
    assert scores.j == pytest.approx(1 / 3, abs=1e-12) and scores.f == pytest.approx(1 / 3, abs=1e-12)
    assert scores.j_and_f == pytest.approx(1 / 3, abs=1e-12)
    assert scores.num_frames == 3


def test_vos_scores_with_every_annotated_frame():
    shape = (40, 40)
    # Two frames; the prediction misses frame 0 and matches frame 1: with skipping nothing is scored, without it
    # J = F = (0 + 1) / 2.
    truth = [_labels(shape, (1, _square())), _labels(shape, (1, _square()))]
    pred = [np.zeros(shape, np.uint8), _labels(shape, (1, _square()))]
    skipped = m.vos_scores(truth, pred, [1])
    assert skipped.per_object == {} and math.isnan(skipped.j_and_f) and skipped.num_frames == 0
    assert m.vos_scores(truth, pred, [1], skip_first_and_last=False).per_object == {1: (0.5, 0.5)}


def test_vos_scores_rejects_mismatches():
    frame = np.zeros((10, 10), np.uint8)
    with pytest.raises(ValueError):
        m.vos_scores([frame] * 3, [frame, np.zeros((10, 11), np.uint8), frame], [1])
    with pytest.raises(ValueError):
        m.vos_scores([frame] * 3, [frame, None, frame], [1])
    with pytest.raises(ValueError):
        m.vos_scores([frame] * 3, [frame] * 2, [1])


def test_summarize_vos_weighs_objects_not_sequences():
    a = m.VosScores(j=0.5, f=0.7, j_and_f=0.6, per_object={1: (0.4, 0.6), 2: (0.6, 0.8)})
    b = m.VosScores(j=1.0, f=1.0, j_and_f=1.0, per_object={1: (1.0, 1.0)})
    # Objects (0.4, 0.6), (0.6, 0.8), (1, 1): J = 2/3, F = 0.8, J&F = (2/3 + 0.8) / 2 = 11/15.
    summary = m.summarize_vos([a, b])
    assert summary.num_objects == 3
    assert (summary.j, summary.f, summary.j_and_f) == pytest.approx((2 / 3, 0.8, 11 / 15), abs=1e-12)


# --------------------------------------------------------------------------------------------------- SOT


def _random_boxes(rng, frames):
    """[T, 4] xyxy: a box that wanders, and a prediction near it (sometimes far off)."""
    xy = rng.uniform(0, 300, (frames, 2))
    wh = rng.uniform(5, 120, (frames, 2))
    truth = np.concatenate([xy, xy + wh], axis=1)
    jitter = rng.normal(0, 1, (frames, 4)) * rng.uniform(0.5, 40, (frames, 1))
    pred = truth + jitter
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    return truth, pred


def test_sot_scores_of_the_truth_against_itself():
    truth, _ = _random_boxes(np.random.default_rng(0), 50)
    scores = m.sot_scores(truth, truth)
    # Success counts IoU strictly above each of 0, 0.05, ..., 1 (LaSOT, OTB, got10k, pytracking): IoU 1 passes
    # 20 of the 21 thresholds, so a perfect tracker's AUC is 20/21 under these toolkits, not 1.
    assert scores.auc == pytest.approx(20 / 21, abs=1e-15)
    assert np.array_equal(scores.success_curve, np.r_[np.ones(20), 0.0])
    assert scores.precision == 1.0 and scores.normalized_precision == 1.0
    assert scores.normalized_precision_at_02 == 1.0 and scores.num_frames == 50


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sot_curves_equal_got10k(seed):
    metrics = pytest.importorskip("got10k.utils.metrics")
    otb = pytest.importorskip("got10k.experiments.otb")
    rng = np.random.default_rng(seed)
    truth, pred = _random_boxes(rng, 300)
    to_xywh = lambda b: np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)  # noqa: E731
    anno, boxes = to_xywh(truth), to_xywh(pred)
    boxes[0] = anno[0]  # got10k's report does this too: the first frame is the prompt
    experiment = object.__new__(otb.ExperimentOTB)  # its constructor reads the OTB dataset; the curves need none
    experiment.nbins_iou, experiment.nbins_ce = 21, 51
    succ, prec = experiment._calc_curves(metrics.rect_iou(boxes, anno), metrics.center_error(boxes, anno))
    ours = m.sot_scores(truth, pred)
    np.testing.assert_array_equal(ours.success_curve, succ)
    np.testing.assert_array_equal(ours.precision_curve, prec)
    assert ours.auc == pytest.approx(np.mean(succ), abs=1e-15)
    assert ours.precision == prec[20]
    assert 0.05 < ours.auc < 0.9 and 0.05 < ours.precision < 0.95  # neither trivial end


def test_sot_normalized_precision_hand_computed():
    # Truth: 100 x 50 box at the origin in 5 frames. Predicted centre offsets (x, y) in pixels: (99, 99) on the
    # prompt frame (replaced by the truth: 0), (10, 0), (0, 10), (30, 0), (60, 0): normalised errors 0, 0.1,
    # 0.2, 0.3, 0.6. Of the 51 thresholds 0, 0.01, ..., 0.5 they pass 51, 41, 31, 21, 0: the mean curve is
    # 144 / (51 * 5); at 0.2: 3 of 5. Pixel errors 0, 10, 10, 30, 60: at 20 px 3 of 5.
    truth = np.tile([0.0, 0.0, 100.0, 50.0], (5, 1))
    offsets = np.array([[99, 99], [10, 0], [0, 10], [30, 0], [60, 0]], float)
    pred = truth + np.tile(offsets, 2)
    scores = m.sot_scores(truth, pred)
    assert scores.normalized_precision == pytest.approx(144 / 255, abs=1e-15)
    assert scores.normalized_precision_at_02 == 0.6 and scores.precision == 0.6


def test_sot_absent_prediction_keeps_the_previous_box():
    # Truth: a 10 x 10 box at x = 0, except frame 2 where it is at x = 5. The tracker says absent (NaN) on frame
    # 2, so frame 1's box (x = 0) stands: IoU = 5 * 10 / (100 + 100 - 50) = 1/3. IoUs 1, 1, 1/3, 1: IoU 1
    # passes 20 thresholds, 1/3 passes 0..0.30 (7). AUC = (3 * 20 + 7) / (4 * 21) = 67/84. Centre error 5 px.
    truth = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
    truth[2] = [5, 0, 15, 10]
    pred = truth.copy()
    pred[2] = np.nan
    scores = m.sot_scores(truth, pred)
    assert scores.auc == pytest.approx(67 / 84, abs=1e-15)
    assert scores.precision_curve[4] == 0.75 and scores.precision_curve[5] == 1.0


def test_sot_absent_truth_counts_as_failure_as_lasot_does():
    # 5 frames, the target absent on frame 3 (NaN truth): LaSOT keeps the frame in the denominator and it fails
    # every threshold, so the truth against itself scores 4/5 of the perfect values: AUC = 4/5 * 20/21.
    truth, _ = _random_boxes(np.random.default_rng(4), 5)
    truth[3] = np.nan
    scores = m.sot_scores(truth, truth)
    assert scores.auc == pytest.approx(16 / 21, abs=1e-15)
    assert scores.precision == 0.8 and scores.normalized_precision == pytest.approx(0.8, abs=1e-15)
    left_out = m.sot_scores(truth, truth, absent_counts=False)
    assert left_out.auc == pytest.approx(20 / 21, abs=1e-15) and left_out.num_frames == 4


def test_summarize_sot_averages_the_curves():
    rng = np.random.default_rng(6)
    seqs = [m.sot_scores(*_random_boxes(rng, n)) for n in (20, 40, 60)]
    summary = m.summarize_sot(seqs)
    assert summary.auc == pytest.approx(np.mean([s.auc for s in seqs]), abs=1e-12)
    assert summary.precision == pytest.approx(np.mean([s.precision for s in seqs]), abs=1e-12)
    assert summary.num_frames == 120


# --------------------------------------------------------------------------------------------------- TAP-Vid


def test_point_scores_of_the_truth_against_itself():
    rng = np.random.default_rng(7)
    points = rng.uniform(0, 200, (12, 5, 2))
    occluded = rng.random((12, 5)) < 0.3
    scores = m.point_scores(points, occluded, points, occluded, (200, 300))
    assert (scores.occlusion_accuracy, scores.delta_avg, scores.average_jaccard) == (1.0, 1.0, 1.0)


def test_point_scores_hand_computed():
    # A 512 x 256 (H x W) video: x scales by 256/256 = 1, y by 256/512 = 1/2. Five frames, three tracks:
    #  A: visible throughout; query frame 0, scored frames 1..4. Predictions: frame 1 exact; frame 2 3 px off in
    #     x (3 at 256); frame 3 8 px off in y (4 at 256); frame 4 exact but predicted occluded.
    #  B: occluded on frames 0 and 1 (predicted visible and wrong there: before the query, not scored), visible on
    #     2 (the query) and 3 (predicted exactly), occluded on 4 (an occluded point), predicted visible there.
    #  C: never visible: no query, left out.
    # Scored: A1..A4, B3, B4 (6). Occlusion right on A1, A2, A3, B3: 4/6.
    # Visible truth among them: A1..A4, B3 (5); distances 0, 3, 4, 0, 0. "Within x" is strictly below x:
    #  x=1, 2: A1, A4, B3 -> 3/5; x=4: + A2 -> 4/5; x=8, 16: 5/5. <delta^x_avg = (.6 + .6 + .8 + 1 + 1) / 5 = .8.
    # Jaccard: true positives are within and predicted visible (A4 is predicted occluded: never one); false
    # positives are predicted visible but occluded (B4) or not within.
    #  x=1, 2: TP A1, B3 = 2, FP B4, A2, A3 = 3 -> 2 / (5 + 3); x=4: TP 3, FP B4, A3 -> 3 / 7;
    #  x=8, 16: TP 4, FP B4 -> 4 / 6. AJ = (1/4 + 1/4 + 3/7 + 2/3 + 2/3) / 5.
    truth = np.zeros((5, 3, 2))
    truth[:, 0] = [[100, 100]] * 5
    truth[:, 1] = [[30, 40]] * 5
    truth[:, 2] = [[50, 50]] * 5
    occluded = np.zeros((5, 3), bool)
    occluded[[0, 1, 4], 1] = True
    occluded[:, 2] = True
    pred = truth.copy()
    pred[0, 0] = [0, 0]  # the query frame: not scored
    pred[2, 0] = [103, 100]
    pred[3, 0] = [100, 108]
    pred[[0, 1], 1] = [[200, 200], [210, 220]]
    pred[4, 1] = [31, 40]
    pred_occluded = np.zeros((5, 3), bool)
    pred_occluded[4, 0] = True
    scores = m.point_scores(truth, occluded, pred, pred_occluded, (512, 256))
    assert scores.occlusion_accuracy == pytest.approx(4 / 6, abs=1e-15)
    assert scores.within == pytest.approx((0.6, 0.6, 0.8, 1.0, 1.0), abs=1e-15)
    assert scores.delta_avg == pytest.approx(0.8, abs=1e-15)
    assert scores.jaccard == pytest.approx((0.25, 0.25, 3 / 7, 2 / 3, 2 / 3), abs=1e-15)
    assert scores.average_jaccard == pytest.approx((0.5 + 3 / 7 + 4 / 3) / 5, abs=1e-15)


def test_point_scores_nan_prediction_is_never_within():
    truth = np.array([[[10.0, 10.0]], [[10.0, 10.0]]])
    occluded = np.zeros((2, 1), bool)
    pred = truth.copy()
    pred[1] = np.nan
    scores = m.point_scores(truth, occluded, pred, occluded, (256, 256))
    assert scores.delta_avg == 0.0 and scores.average_jaccard == 0.0 and scores.occlusion_accuracy == 1.0


def test_summarize_points_is_the_mean_over_videos():
    a = m.PointScores(0.5, 0.4, 0.3, (0.4,) * 5, (0.3,) * 5)
    b = m.PointScores(1.0, 1.0, 1.0, (1.0,) * 5, (1.0,) * 5)
    summary = m.summarize_points([a, b])
    assert (summary.occlusion_accuracy, summary.delta_avg, summary.average_jaccard) == pytest.approx((0.75, 0.7, 0.65))


# --------------------------------------------------------------------------------------------------- MOT


def _two_tracks(frames=10):
    """[T, 2, 4]: two 10 x 10 boxes far apart, still."""
    boxes = np.zeros((frames, 2, 4))
    boxes[:, 0] = [0, 0, 10, 10]
    boxes[:, 1] = [50, 50, 60, 60]
    return boxes


def test_mot_scores_of_the_truth_against_itself():
    scores = m.mot_scores(_two_tracks(), _two_tracks())
    assert {name: scores[name] for name in ("HOTA", "DetA", "AssA", "MOTA", "IDF1")} == dict.fromkeys(
        ("HOTA", "DetA", "AssA", "MOTA", "IDF1"), 1.0
    )
    assert scores["IDSW"] == 0.0


def test_mot_scores_of_an_id_switch():
    # Two tracks over 10 frames; the predicted ids swap at frame 5. Every box is matched (IoU 1): TP 20, FP = FN = 0.
    # CLEAR: 2 id switches, MOTA = (20 - 0 - 2) / 20 = 0.9.
    # Identity: the best one-to-one id pairing holds 5 frames per track: IDTP 10, IDFP = IDFN = 10,
    # IDF1 = 2 * 10 / (2 * 10 + 10 + 10) = 0.5.
    # HOTA: DetA = 1; each true-positive pair (gt, pred) shares 5 frames of the 5 + 5 + 5 the two ids span
    # together: AssA = 5 / 15 = 1/3 at every alpha; HOTA = sqrt(1 * 1/3).
    truth = _two_tracks()
    pred = truth.copy()
    pred[5:] = truth[5:, ::-1]
    scores = m.mot_scores(truth, pred)
    assert scores["IDSW"] == 2.0 and scores["MOTA"] == pytest.approx(0.9, abs=1e-15)
    assert scores["IDF1"] == pytest.approx(0.5, abs=1e-15)
    assert scores["DetA"] == pytest.approx(1.0, abs=1e-15) and scores["AssA"] == pytest.approx(1 / 3, abs=1e-12)
    assert scores["HOTA"] == pytest.approx(math.sqrt(1 / 3), abs=1e-12)


def test_mot_scores_of_a_missed_object():
    # The prediction holds track 0 only: TP 10, FN 10. MOTA = 10 / 20 = 0.5; IDF1 = 2 * 10 / (20 + 10 + 0) = 2/3;
    # DetA = 10 / (10 + 10) = 0.5, AssA = 1, HOTA = sqrt(0.5).
    truth = _two_tracks()
    pred = truth.copy()
    pred[:, 1] = np.nan
    scores = m.mot_scores(truth, pred)
    assert scores["MOTA"] == pytest.approx(0.5, abs=1e-15) and scores["IDF1"] == pytest.approx(2 / 3, abs=1e-15)
    assert scores["HOTA"] == pytest.approx(math.sqrt(0.5), abs=1e-12)


def test_mot_scores_of_a_one_pixel_shift():
    # Every predicted box is one pixel right of the truth: IoU = 90 / 110 = 0.818. CLEAR matches at IoU >= 0.5:
    # MOTA = 1, MOTP = 9/11. HOTA matches at each alpha 0.05, ..., 0.95 that the IoU reaches: 16 of 19 (up to
    # 0.80); each of those scores 1, the other three 0: HOTA = 16/19.
    truth = _two_tracks()
    pred = truth + [1, 0, 1, 0]
    scores = m.mot_scores(truth, pred)
    assert scores["MOTA"] == 1.0 and scores["MOTP"] == pytest.approx(9 / 11, abs=1e-12)
    assert scores["HOTA"] == pytest.approx(16 / 19, abs=1e-12)


def test_mot_scores_ids_join_columns():
    # The prediction's track 0 is split over two columns (frames 0..4 and 5..9) sharing id 7: one track, no switch.
    truth = _two_tracks()
    pred = np.full((10, 3, 4), np.nan)
    pred[:5, 0], pred[5:, 2], pred[:, 1] = truth[:5, 0], truth[5:, 0], truth[:, 1]
    assert m.mot_scores(truth, pred, pred_ids=[7, 8, 7])["IDF1"] == 1.0
    assert m.mot_scores(truth, pred)["IDSW"] == 1.0  # as three tracks: one switch
    with pytest.raises(ValueError):
        m.mot_scores(truth, np.concatenate([pred, pred], axis=1), pred_ids=[1, 2, 3, 1, 2, 3])


def test_mots_scores_of_masks():
    shape = (40, 40)
    truth = [_labels(shape, (1, _square()), (2, _square(top=25, left=25, side=8))) for _ in range(6)]
    assert m.mots_scores(truth, truth, [1, 2])["HOTA"] == 1.0
    # Object 2 missed throughout: as with boxes, MOTA = 0.5 and IDF1 = 2/3.
    missed = [_labels(shape, (1, _square())) for _ in range(6)]
    scores = m.mots_scores(truth, missed, [1, 2])
    assert scores["MOTA"] == pytest.approx(0.5, abs=1e-15) and scores["IDF1"] == pytest.approx(2 / 3, abs=1e-15)


def test_combine_mot_sums_counts_over_sequences():
    # A perfect sequence (TP 20) and one missing a track (TP 10, FN 10): MOTA = 30 / 40 = 0.75 (not the mean of
    # 1 and 0.5 by sequence, which it happens to equal here), IDF1 = 2 * 30 / (2 * 30 + 10) = 6/7.
    truth = _two_tracks()
    missed = truth.copy()
    missed[:, 1] = np.nan
    scores = m.combine_mot([(truth, truth), (truth, missed)])
    assert scores["MOTA"] == pytest.approx(0.75, abs=1e-15) and scores["IDF1"] == pytest.approx(6 / 7, abs=1e-15)
