"""Motion-aware tracking in the manner of SAMURAI (Yang et al., 2024), for any number of objects.

Each object gets a constant-velocity Kalman filter on its box, state (cx, cy, aspect, h) and their
velocities, in the model's input pixels. The filter does two things:

- candidate choice: once the filter has been stable for `stable_frames_threshold` frames, the mask among
  the decoder's multimask candidates is chosen by `w * IoU(predicted box, candidate box) + (1 - w) *
  predicted IoU` instead of the predicted IoU alone;
- memory admission: a tracked frame enters the memory bank of later frames only if its predicted IoU,
  object score and Kalman IoU pass thresholds (the frame right before the current one always does).

In addition the object counts as present from an object-score logit of `min_obj_score_logits` (-1)
instead of 0. Defaults follow SAMURAI's configs per model size (`MotionConfig.for_model`).

It plugs into the predictor as a session's `TrackingRules` (sam2_plus/video/rules.py): `MotionRules` keeps each
object's filter and the quality of its tracked frames, `MotionStep` settles one model step.

Differences from SAMURAI's code, which keeps one filter per model and assumes a prompt on frame 0 and
forward tracking: the state is per object; tracking in reverse mirrors the memory rule (frames after the
current one); frames that were never tracked (before a prompt in the middle of the video, or evicted)
simply do not count; a filter is restarted when tracking jumps (another direction, a new pass from an
earlier frame) and re-running the frame it saw last replays that frame's step; prompted frames stored
as ordinary memories (corrections) are always admitted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..modeling.sam2_model import Candidates, HeadOutput, SAM2Model
from .predictor import VideoPredictor
from .rules import StepRules, TrackingRules
from .tracker import FrameOutput, TrackedObject

Box = Sequence[float]  # x1, y1, x2, y2


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class MotionConfig:
    """SAMURAI's hyperparameters (its `configs/samurai/*.yaml`)."""

    kf_score_weight: float = 0.25  # w in the candidate score; SAMURAI uses 0.15 for the large model
    stable_frames_threshold: int = 15  # frames of good predictions before the filter takes part in the choice
    stable_ious_threshold: float = 0.3  # a chosen mask's predicted IoU below this restarts the filter
    min_obj_score_logits: float = -1.0  # object-presence gate of masks and object pointers
    memory_bank_iou_threshold: float = 0.5  # memory admission: predicted IoU must exceed this
    memory_bank_obj_score_threshold: float = 0.0  # ... and the object-score logit this
    memory_bank_kf_score_threshold: float = 0.0  # ... and the Kalman IoU this (where it was computed)

    @staticmethod
    def for_model(model_name: str) -> "MotionConfig":
        """SAMURAI's defaults for a model (SAM 2++ is Hiera-B+ based and gets the B+ values)."""
        return MotionConfig(kf_score_weight=MODEL_KF_SCORE_WEIGHT.get(model_name, 0.25))


MODEL_KF_SCORE_WEIGHT = {
    "sam2.1-tiny": 0.25,
    "sam2.1-small": 0.25,
    "sam2.1-base-plus": 0.25,
    "sam2.1-large": 0.15,
    "sam2++": 0.25,
}


# ---------------------------------------------------------------------------------------------- boxes
def xyxy_to_xyah(box: Box) -> list[float]:
    """(x1, y1, x2, y2) -> (cx, cy, width / height, height); a zero height counts as 1."""
    x1, y1, x2, y2 = box
    height = y2 - y1
    if height == 0:
        height = 1
    return [(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / height, height]


def xyah_to_xyxy(state: Sequence[float]) -> list[float]:
    cx, cy, aspect, height = state[:4]
    half_w, half_h = aspect * height / 2, height / 2
    return [cx - half_w, cy - half_h, cx + half_w, cy + half_h]


def box_iou(a: Box, b: Box) -> float:
    """IoU of two xyxy boxes (continuous coordinates); an all-zero `b` (no mask) scores 0."""
    if list(b) == [0, 0, 0, 0]:
        return 0.0
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union != 0 else 0.0


def mask_box(mask: torch.Tensor) -> list[int]:
    """Inclusive pixel bounds [x_min, y_min, x_max, y_max] of a [H, W] bool mask, [0, 0, 0, 0] if empty."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    if rows.numel() == 0:
        return [0, 0, 0, 0]
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]


# ---------------------------------------------------------------------------------------------- filter
class KalmanFilter:
    """Constant-velocity Kalman filter on (cx, cy, a, h, vcx, vcy, va, vh), observing (cx, cy, a, h).

    Noise is relative to the box height h (SORT/DeepSORT's model as SAMURAI uses it): position sigma
    h/20, velocity sigma h/160, with small fixed sigmas for the aspect ratio."""

    POS_WEIGHT = 1.0 / 20
    VEL_WEIGHT = 1.0 / 160

    def __init__(self):
        self.motion_mat = np.eye(8)
        self.motion_mat[:4, 4:] = np.eye(4)  # dt = 1 frame
        self.update_mat = np.eye(4, 8)

    def initiate(self, measurement: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        h = measurement[3]
        mean = np.concatenate([np.asarray(measurement, dtype=np.float64), np.zeros(4)])
        sigma = [2 * self.POS_WEIGHT * h, 2 * self.POS_WEIGHT * h, 1e-2, 2 * self.POS_WEIGHT * h,
                 10 * self.VEL_WEIGHT * h, 10 * self.VEL_WEIGHT * h, 1e-5, 10 * self.VEL_WEIGHT * h]
        return mean, np.diag(np.square(sigma))

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = mean[3]
        sigma = [self.POS_WEIGHT * h, self.POS_WEIGHT * h, 1e-2, self.POS_WEIGHT * h,
                 self.VEL_WEIGHT * h, self.VEL_WEIGHT * h, 1e-5, self.VEL_WEIGHT * h]
        f = self.motion_mat
        return f @ mean, np.linalg.multi_dot((f, cov, f.T)) + np.diag(np.square(sigma))

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The predicted measurement and its covariance (innovation noise: h/20 and 0.1 for the aspect)."""
        h = mean[3]
        sigma = [self.POS_WEIGHT * h, self.POS_WEIGHT * h, 1e-1, self.POS_WEIGHT * h]
        m = self.update_mat
        return m @ mean, np.linalg.multi_dot((m, cov, m.T)) + np.diag(np.square(sigma))

    def update(self, mean: np.ndarray, cov: np.ndarray, measurement: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        z_mean, z_cov = self.project(mean, cov)
        # gain K = P H^T S^-1, S symmetric positive definite
        gain = np.linalg.solve(z_cov, (cov @ self.update_mat.T).T).T
        innovation = np.asarray(measurement, dtype=np.float64) - z_mean
        return mean + gain @ innovation, cov - np.linalg.multi_dot((gain, z_cov, gain.T))


KALMAN = KalmanFilter()


# ---------------------------------------------------------------------------------------------- per object
@dataclass
class _FilterState:
    mean: Optional[np.ndarray] = None
    cov: Optional[np.ndarray] = None
    stable_frames: int = 0


@dataclass(frozen=True)
class FrameQuality:
    """What memory admission judges a tracked frame by, besides its object score."""

    iou: float  # predicted IoU of the chosen mask
    kf_score: Optional[float] = None  # Kalman IoU of the chosen mask; None before the filter was stable


class ObjectMotion:
    """One object's Kalman filter and SAMURAI's stable-frame rule, and the quality of its tracked frames.

    `step` is called once per decoded frame with multimask output. The filter follows one pass of
    tracking: it continues when a frame lies ahead of the last one in the same direction (frames skipped
    in between, e.g. prompted frames, are bridged by extra predictions); the frame seen last is replayed
    from the state before it (a repeated prompt, a pass resumed from its last frame); any other frame,
    and every new prompted frame, starts a new filter."""

    def __init__(self, cfg: MotionConfig):
        self.cfg = cfg
        self.quality: dict[int, FrameQuality] = {}  # tracked frame -> quality (a restarted filter keeps it)
        self.reset()

    def reset(self) -> None:
        self.state = _FilterState()
        self.last_frame: Optional[int] = None
        self.last_reverse: Optional[bool] = None  # None: the last step was a prompt
        self._before_last: Optional[tuple[_FilterState, int]] = None  # state and bridged frames before it

    def _skipped_frames(self, frame_idx: int, reverse: Optional[bool]) -> int:
        """Prepare the filter for `frame_idx` (reverse None: a prompt); returns how many frames since the
        last one it must bridge."""
        if self.last_frame is None:
            return 0
        if frame_idx == self.last_frame and reverse == self.last_reverse and self._before_last is not None:
            before, skipped = self._before_last
            self.state = replace(before)
            return skipped
        if reverse is not None and self.last_reverse in (None, reverse):
            ahead = (self.last_frame - frame_idx) if reverse else (frame_idx - self.last_frame)
            if ahead >= 1:
                return ahead - 1
        self.reset()
        return 0

    def step(self, frame_idx: int, reverse: Optional[bool], ious: torch.Tensor, box_of) -> tuple[int, Optional[float]]:
        """Choose among M candidates (SAMURAI's rule) and advance the filter.

        ious: [M] predicted IoUs; box_of(i): candidate i's xyxy box ([0, 0, 0, 0] when it has no mask).
        Returns the chosen index and its Kalman IoU (None until the filter is stable)."""
        skipped = self._skipped_frames(frame_idx, reverse)
        cfg, s = self.cfg, self.state
        self._before_last = (replace(s), skipped)
        self.last_frame, self.last_reverse = frame_idx, reverse
        kf_score = None
        if s.mean is None or s.stable_frames == 0:
            best = int(torch.argmax(ious))
            s.mean, s.cov = KALMAN.initiate(xyxy_to_xyah(box_of(best)))
            s.stable_frames += 1
        else:
            for _ in range(skipped):
                s.mean, s.cov = KALMAN.predict(s.mean, s.cov)
            s.mean, s.cov = KALMAN.predict(s.mean, s.cov)
            if s.stable_frames < cfg.stable_frames_threshold:
                best = int(torch.argmax(ious))
                if bool(ious[best] > cfg.stable_ious_threshold):
                    s.mean, s.cov = KALMAN.update(s.mean, s.cov, xyxy_to_xyah(box_of(best)))
                    s.stable_frames += 1
                else:
                    s.stable_frames = 0
            else:
                candidates = [box_of(i) for i in range(ious.shape[0])]
                predicted = xyah_to_xyxy(s.mean)
                kf_ious = torch.tensor([box_iou(predicted, b) for b in candidates], dtype=torch.float32)
                w = cfg.kf_score_weight
                weighted = w * kf_ious + (1 - w) * ious.float().cpu()
                best = int(torch.argmax(weighted))
                kf_score = float(kf_ious[best])
                if bool(ious[best] < cfg.stable_ious_threshold):
                    s.stable_frames = 0
                else:
                    s.mean, s.cov = KALMAN.update(s.mean, s.cov, xyxy_to_xyah(candidates[best]))
        return best, kf_score


class MotionStep(StepRules):
    """SAMURAI's rules for one model step of a batch of objects: its presence gate, each object's filter
    choosing among the candidates, and the quality of what a propagated step gave."""

    def __init__(self, motions: list[ObjectMotion], frame_idx: int, reverse: Optional[bool], image_size: int,
                 use_box_head: bool):
        self.motions, self.frame_idx, self.reverse = motions, frame_idx, reverse
        self.image_size, self.use_box_head = image_size, use_box_head
        self.presence_threshold = motions[0].cfg.min_obj_score_logits
        self.kf_scores: list[Optional[float]] = [None] * len(motions)

    def choose(self, candidates: Candidates) -> torch.Tensor:
        best = []
        for b, motion in enumerate(self.motions):
            idx, self.kf_scores[b] = motion.step(self.frame_idx, self.reverse, candidates.ious[b],
                                                 self._boxes_of(candidates, b))
            best.append(idx)
        return torch.tensor(best, dtype=torch.long, device=candidates.ious.device)

    def _boxes_of(self, candidates: Candidates, b: int):
        """box_of(i): object b's candidate i as an xyxy box in the model's pixels."""
        if self.use_box_head and candidates.boxes_norm is not None:
            # the box task reports the box head's box: track that (all zero when the object is absent)
            rows = [[min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
                    for x1, y1, x2, y2 in (candidates.boxes_norm[b].float() * self.image_size).tolist()]
            return rows.__getitem__
        masks = candidates.high_res_masks[b]
        return lambda i: mask_box(masks[i] > 0.0)

    def tracked(self, head: HeadOutput) -> None:
        for b, motion in enumerate(self.motions):
            motion.quality[self.frame_idx] = FrameQuality(float(head.iou[b]), self.kf_scores[b])


# ---------------------------------------------------------------------------------------------- memory
def admits(out: FrameOutput, quality: Optional[FrameQuality], cfg: MotionConfig) -> bool:
    """Whether a tracked frame may enter the memory bank (SAMURAI's thresholds). Prompted frames (user
    corrections kept as ordinary memories) always may."""
    if out.is_mask_from_pts:
        return True
    if quality is not None and not quality.iou > cfg.memory_bank_iou_threshold:
        return False
    if not float(out.object_score_logits.reshape(-1)[0]) > cfg.memory_bank_obj_score_threshold:
        return False
    kf_score = None if quality is None else quality.kf_score
    return kf_score is None or kf_score > cfg.memory_bank_kf_score_threshold


def admitted_memory_frames(obj: TrackedObject, frame_idx: int, num_frames: int, reverse: bool, unselected: dict,
                           admitted: Callable[[int], bool], num_maskmem: int,
                           max_admitted: int) -> list[tuple[int, int]]:
    """(t_pos, frame) of the non-conditioning memories a frame reads in motion-aware mode; `admitted(t)`
    says whether the tracked frame t passes admission.

    Going back from the frame before the current one (after it in reverse) down to frame 2 (up to frame
    num_frames - 3 in reverse), SAMURAI's range, collect up to `max_admitted` admitted frames, nearest
    first; frames without an output (never tracked, evicted, prompted) are passed over, while unselected
    conditioning frames count as admitted. The frame right before the current one is always used. The
    nearest num_maskmem - 1 of these get t_pos num_maskmem - 1 (nearest), num_maskmem - 2, ..."""
    if reverse:
        nearest, scan = frame_idx + 1, range(frame_idx + 1, num_frames - 2)
    else:
        nearest, scan = frame_idx - 1, range(frame_idx - 1, 1, -1)
    chosen: list[int] = []
    for t in scan:
        tracked = t in obj.non_cond_outputs
        if (tracked and admitted(t)) or (not tracked and t in unselected):
            chosen.append(t)
        if len(chosen) >= max_admitted:
            break
    if nearest not in chosen:
        chosen.insert(0, nearest)
    chosen = chosen[: num_maskmem - 1]
    return sorted(((num_maskmem - 1 - k, t) for k, t in enumerate(chosen)))


# ---------------------------------------------------------------------------------------------- rules
class MotionRules(TrackingRules):
    """SAMURAI's rules for one session: each object's `ObjectMotion`, the memory it admits, and what eviction
    must keep for it (`max_admitted`: how many admitted frames a frame looks back over)."""

    def __init__(self, cfg: MotionConfig, image_size: int, num_maskmem: int, max_admitted: int):
        self.cfg, self.image_size = cfg, image_size
        self.num_maskmem, self.max_admitted = num_maskmem, max_admitted
        self.objects: dict[int, ObjectMotion] = {}

    def motion(self, obj_id: int) -> ObjectMotion:
        if obj_id not in self.objects:
            self.objects[obj_id] = ObjectMotion(self.cfg)
        return self.objects[obj_id]

    def step(self, objects: Sequence[TrackedObject], frame_idx: int, reverse: Optional[bool]) -> MotionStep:
        for obj in objects:
            self._forget_untracked(obj)
        return MotionStep([self.motion(obj.obj_id) for obj in objects], frame_idx, reverse, self.image_size,
                          use_box_head=objects[0].task == "box")

    def memory_frames(self, obj: TrackedObject, frame_idx: int, num_frames: int, reverse: bool,
                      unselected: dict) -> list[tuple[int, int]]:
        return admitted_memory_frames(obj, frame_idx, num_frames, reverse, unselected, self._admitted(obj),
                                      self.num_maskmem, self.max_admitted)

    def also_read(self, obj: TrackedObject, anchor: int, direction: int) -> set[int]:
        """The nearest admitted frames behind `anchor`: admission can skip many frames, so the memories read
        may lie beyond the reach of plain tracking."""
        behind = sorted((t for t in obj.non_cond_outputs if (anchor - t) * direction > 0),
                        key=lambda t: (anchor - t) * direction)
        admitted = self._admitted(obj)
        return set([t for t in behind if admitted(t)][: self.num_maskmem - 1])

    def restart(self, obj_id: int) -> None:
        self.motion(obj_id).reset()

    def forget(self, obj_id: int) -> None:
        self.objects.pop(obj_id, None)

    def motion_scores(self, obj_ids: Sequence[int], frame_idx: int) -> Optional[torch.Tensor]:
        """The Kalman IoU of each object's mask chosen on the frame (NaN where the filter did not score it:
        prompted frames, before the filter is stable), or None where it scored none."""
        scores = [self._kf_score(obj_id, frame_idx) for obj_id in obj_ids]
        if all(score is None for score in scores):
            return None
        return torch.tensor([float("nan") if score is None else score for score in scores], dtype=torch.float32)

    def _kf_score(self, obj_id: int, frame_idx: int) -> Optional[float]:
        motion = self.objects.get(obj_id)
        quality = None if motion is None else motion.quality.get(frame_idx)
        return None if quality is None else quality.kf_score

    def _admitted(self, obj: TrackedObject) -> Callable[[int], bool]:
        quality = self.motion(obj.obj_id).quality
        return lambda t: admits(obj.non_cond_outputs[t], quality.get(t), self.cfg)

    def _forget_untracked(self, obj: TrackedObject) -> None:
        """Drop the quality of frames no longer in the memory bank (evicted), so that it stays as small."""
        quality = self.motion(obj.obj_id).quality
        if len(quality) > 2 * len(obj.non_cond_outputs) + 16:
            for t in [t for t in quality if t not in obj.non_cond_outputs]:
                del quality[t]


# ---------------------------------------------------------------------------------------------- predictor
class MotionAwarePredictor(VideoPredictor):
    """`VideoPredictor` whose sessions follow SAMURAI's rules (`MotionRules`): motion-aware candidate choice,
    memory admission and presence gate, one Kalman filter per object. `motion`: a MotionConfig (default:
    SAMURAI's values for the model)."""

    def __init__(self, model: SAM2Model, *args, motion: Optional[MotionConfig] = None, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.motion_cfg = motion or MotionConfig.for_model(model.cfg.name)

    def tracking_rules(self) -> MotionRules:
        max_admitted = self.model.tracker_cfg.max_obj_ptrs_in_encoder - 1
        return MotionRules(self.motion_cfg, self.image_size, self.model.num_maskmem, max_admitted)
