"""Video predictor: the public tracking API (close to SAM 2's) over an explicit session object.

    pred = build_video_predictor("sam2++", task="box")
    session = pred.init_state("video.mp4")
    pred.add_new_points_or_box(session, frame_idx=0, obj_id=1, box=[x1, y1, x2, y2])
    for result in pred.propagate_in_video(session):
        result.frame_idx, result.obj_ids, result.mask_logits, result.boxes, result.points

Every prompt call and every propagated frame returns a `FrameResult`. Coordinates are pixels of the
source video; masks come back at video resolution.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .modeling.sam2_model import NO_OBJ_SCORE, FrameFeatures, MemoryContext, PointPrompt, SAM2Model, gaussian_heatmap
from .postprocess import fill_holes_in_mask_scores
from .prompts import PromptError
from .tracker import FrameOutput, ObjectTrack, StepResult, memory_layout, select_memory, stack_memories, track_frame

# "auto": bfloat16 on CUDA, float32 on the CPU; "float32": exact everywhere; "bfloat16": fast everywhere
PRECISIONS = ("auto", "float32", "bfloat16")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnknownObjectError(KeyError):
    """An object id the session does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class FrameResult:
    """All objects' results on one frame."""

    frame_idx: int
    obj_ids: list[int]
    mask_logits: torch.Tensor  # [N, H, W] float32 at video resolution
    object_scores: torch.Tensor  # [N] object presence logits (> 0: present)
    boxes: Optional[torch.Tensor]  # [N, 4] xyxy video pixels
    points: Optional[torch.Tensor]  # [N, 2] (x, y) video pixels
    tasks: list[str] = field(default_factory=list)
    # motion-aware: [N] Kalman IoU of each object's chosen mask (NaN where the filter did not score it)
    motion_scores: Optional[torch.Tensor] = None

    @property
    def masks(self) -> torch.Tensor:
        """[N, H, W] bool."""
        return self.mask_logits > 0

    @property
    def visible(self) -> torch.Tensor:
        """[N] bool: the object is present and has at least one mask pixel."""
        return (self.object_scores > 0) & self.masks.flatten(1).any(dim=1)


@dataclass
class TrackingSession:
    """Everything the predictor knows about one video: frames, objects, their prompts and memory."""

    frames: Any  # indexable: frames[i] -> HxWx3 uint8 RGB
    num_frames: int
    video_height: int
    video_width: int
    device: torch.device
    storage_device: torch.device
    objects: "OrderedDict[int, ObjectTrack]" = field(default_factory=OrderedDict)
    # image features of the most recently visited frame (repeated prompts on a frame reuse them)
    cached_frame_idx: Optional[int] = None
    cached_backbone: Optional[dict] = None
    cached_task_features: dict = field(default_factory=dict)
    maskmem_pos_enc: Optional[torch.Tensor] = None  # identical for every frame and object
    # frame index -> Future of its model input, prepared on a helper thread while the model works
    prefetched: dict[int, Future] = field(default_factory=dict)

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    def track(self, obj_id: int) -> ObjectTrack:
        try:
            return self.objects[obj_id]
        except KeyError:
            raise UnknownObjectError(f"unknown object id {obj_id!r}; this session has {self.obj_ids}") from None


def _as_int_id(obj_id) -> int:
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
        raise PromptError(f"object ids are integers, got {obj_id!r}")
    return int(obj_id)


class VideoPredictor:
    """Tracks objects given as masks, boxes or points, and reports masks, boxes and points."""

    def __init__(
        self,
        model: SAM2Model,
        task: str = "mask",
        postprocessing: bool = False,
        fill_hole_area: Optional[int] = None,
        non_overlap_masks: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        clear_non_cond_mem_for_multi_obj: bool = False,
        keep_all_memory: bool = False,
        precision: str = "auto",
        max_batch_objects: Optional[int] = None,
        compile_image_encoder: bool = False,
    ):
        self.model = model
        self.task = model.check_task(task)
        self.postprocessing = postprocessing
        self.fill_hole_area = (8 if postprocessing else 0) if fill_hole_area is None else fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.clear_non_cond_mem_for_multi_obj = clear_non_cond_mem_for_multi_obj
        # False: while propagating, forget tracked frames no later frame reads (memory stays flat in video length)
        self.keep_all_memory = keep_all_memory
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        if max_batch_objects is not None and max_batch_objects < 1:
            raise ValueError(f"max_batch_objects must be at least 1, got {max_batch_objects}")
        self._max_batch_objects = max_batch_objects
        self._prefetcher: Optional[ThreadPoolExecutor] = None
        if compile_image_encoder:
            model.compile_image_encoder()

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def max_batch_objects(self) -> int:
        """How many objects are tracked together in one batch (1: one at a time, as the reference does).
        By default 16 on CUDA, where a batch saves launches, and 1 on the CPU, where batches measured no
        faster: the work is the same, and the larger elementwise passes fall out of cache."""
        if self._max_batch_objects is not None:
            return self._max_batch_objects
        return 16 if self.device.type == "cuda" else 1

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(self, video, offload_video_to_cpu: bool = True, offload_state_to_cpu: bool = False) -> TrackingSession:
        """Open a video: a file, a folder of JPEG/PNG frames, a single image, or a list of HxWx3 uint8
        RGB arrays. Frames are decoded on demand, so memory does not grow with the video's length."""
        from .media.decode import FrameSource

        frames = video if isinstance(video, FrameSource) else FrameSource(video)
        if len(frames) == 0:
            raise ValueError("the video has no frames")
        first = frames[0]
        device = self.device
        return TrackingSession(
            frames=frames,
            num_frames=len(frames),
            video_height=int(first.shape[0]),
            video_width=int(first.shape[1]),
            device=device,
            storage_device=torch.device("cpu") if offload_state_to_cpu else device,
        )

    @torch.inference_mode()
    def reset_state(self, session: TrackingSession) -> None:
        """Remove every object, prompt and result."""
        session.objects.clear()

    def _object(self, session: TrackingSession, obj_id, task: Optional[str]) -> ObjectTrack:
        obj_id = _as_int_id(obj_id)
        task = self.model.check_task(task or self.task) if task is not None else None
        track = session.objects.get(obj_id)
        if track is None:
            track = ObjectTrack(obj_id=obj_id, task=task or self.task)
            session.objects[obj_id] = track
        elif task is not None and task != track.task:
            raise PromptError(
                f"object {obj_id} is tracked with task {track.task!r}; remove it before prompting it as {task!r}")
        return track

    def _check_frame(self, session: TrackingSession, frame_idx) -> int:
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise PromptError(f"frame index must be an integer, got {frame_idx!r}")
        if not 0 <= frame_idx < session.num_frames:
            raise PromptError(f"frame index {frame_idx} is outside the video (0..{session.num_frames - 1})")
        return int(frame_idx)

    @property
    def uses_bfloat16(self) -> bool:
        """Whether matrix work runs in bfloat16: "auto" means on CUDA (as the reference's inference tools
        run) and not on the CPU, where float32 reproduces the reference's numbers."""
        if self.precision == "auto":
            return self.device.type == "cuda"
        return self.precision == "bfloat16"

    def _autocast(self):
        if self.uses_bfloat16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ features
    def _features(self, session: TrackingSession, frame_idx: int, task: str) -> FrameFeatures:
        if session.cached_frame_idx != frame_idx:
            image = self._model_input(session, frame_idx)
            session.cached_backbone = self.model.encode_image(image)
            session.cached_frame_idx = frame_idx
            session.cached_task_features = {}
        feats = session.cached_task_features.get(task)
        if feats is None:
            feats = self.model.frame_features(session.cached_backbone, task)
            session.cached_task_features[task] = feats
        return feats

    def _model_input(self, session: TrackingSession, frame_idx: int) -> torch.Tensor:
        """[1, 3, S, S] normalised image (bicubic resize like PIL, ImageNet mean/std) on the model's device."""
        from .media.decode import normalize_for_model

        prefetched = session.prefetched.pop(frame_idx, None)
        image = self._host_input(session, frame_idx) if prefetched is None else prefetched.result()
        # from pinned memory (on CUDA) the upload runs asynchronously: the host goes on preparing work
        return normalize_for_model(image.to(self.device, non_blocking=self.device.type == "cuda"))

    def _host_input(self, session: TrackingSession, frame_idx: int) -> torch.Tensor:
        """Decode and resize a frame on the host (uint8 [1, 3, S, S]); pinned when it goes to a GPU, which then
        normalises it (a quarter of the bytes of float32 to upload, and the arithmetic off the host)."""
        from .media.decode import resize_for_model

        image = resize_for_model(session.frames[frame_idx], self.image_size).unsqueeze(0)
        return image.pin_memory() if self.device.type == "cuda" else image

    def _prefetch(self, session: TrackingSession, frame_idx: int, keep: int = 2) -> None:
        """Start preparing a frame's model input on a helper thread (see `_pipelined`). At most `keep`
        frames wait; older ones (frames that needed no input, e.g. all objects prompted there) go."""
        if frame_idx in session.prefetched:
            return
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2plus-prefetch")
        session.prefetched[frame_idx] = self._prefetcher.submit(self._host_input, session, frame_idx)
        while len(session.prefetched) > keep:
            session.prefetched.pop(next(iter(session.prefetched)))

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        session: TrackingSession,
        frame_idx: int,
        obj_id: int,
        points=None,
        labels=None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box=None,
        task: Optional[str] = None,
    ) -> FrameResult:
        """Clicks and/or a box for one object on one frame (pixels of the source video).

        mask task: any clicks (label 1 positive, 0 negative) and/or a box; box task: a box, optionally
        with clicks; point task: exactly one positive point (encoded as SAM 2++'s Gaussian heatmap)."""
        frame_idx = self._check_frame(session, frame_idx)
        track = self._object(session, obj_id, task)
        try:
            prompt = self._point_prompt(session, track.task, points, labels, box, normalize_coords)
        except PromptError:
            self._drop_if_unprompted(session, track)
            raise
        if track.task == "point":
            clear_old_points = True
        if box is not None and not clear_old_points:
            self._drop_if_unprompted(session, track)
            raise PromptError("a box must be the first prompt of a frame; use clear_old_points=True")
        old = track.point_inputs.get(frame_idx)
        if not clear_old_points and old is not None:
            prompt = old.concat(prompt)
        track.point_inputs[frame_idx] = prompt
        mask = None
        if track.task == "point":
            x, y = prompt.coords[0, 0].tolist()
            tc = self.model.tracker_cfg
            mask = gaussian_heatmap(x, y, self.image_size, tc.point_gaussian_radius, tc.point_gaussian_sigma)
            mask = mask[None, None].to(self.device)
            track.mask_inputs[frame_idx] = mask
        else:
            track.mask_inputs.pop(frame_idx, None)
        return self._run_prompt(session, track, frame_idx, prompt, mask, use_prev_logits=True)

    @torch.inference_mode()
    def add_new_mask(self, session: TrackingSession, frame_idx: int, obj_id: int, mask,
                     task: Optional[str] = None) -> FrameResult:
        """A mask (HxW, nonzero = object) for one object on one frame, at video resolution.

        For the box task the mask's bounding box is the box prompt; the point task takes points. An empty
        mask is refused on a new frame and marks the object absent on an already tracked frame."""
        frame_idx = self._check_frame(session, frame_idx)
        track = self._object(session, obj_id, task)
        try:
            if track.task == "point":
                raise PromptError("the point task takes one point per object, not a mask")
            mask_t = self._mask_tensor(session, mask)
            if frame_idx not in track.frames_tracked and not bool(mask_t.any()):
                raise PromptError(f"the mask for object {track.obj_id} on frame {frame_idx} is empty; "
                                  "an empty mask can only mark a tracked object as absent on a tracked frame")
        except PromptError:
            self._drop_if_unprompted(session, track)
            raise
        if track.task == "box":
            box = _mask_bbox(mask_t[0, 0] > 0.5)  # in model coordinates: mask_t is image_size x image_size
            if box is None:
                self._drop_if_unprompted(session, track)
                raise PromptError("the mask is empty: a box needs at least one mask pixel")
            coords = torch.tensor(box, dtype=torch.float32).reshape(1, 2, 2).to(self.device)
            prompt = PointPrompt(coords, torch.tensor([[2, 3]], dtype=torch.int32, device=self.device))
            track.point_inputs[frame_idx] = prompt
        else:
            prompt = None
            track.point_inputs.pop(frame_idx, None)
        track.mask_inputs[frame_idx] = mask_t
        return self._run_prompt(session, track, frame_idx, prompt, mask_t, use_prev_logits=False)

    def _drop_if_unprompted(self, session: TrackingSession, track: ObjectTrack) -> None:
        """A rejected first prompt must not leave an empty object behind."""
        if not track.point_inputs and not track.mask_inputs and not track.cond_outputs and not track.pending_cond:
            session.objects.pop(track.obj_id, None)

    def _point_prompt(self, session, task, points, labels, box, normalize_coords) -> PointPrompt:
        if labels is not None and points is None:
            raise PromptError("labels were given without points")
        if points is None and box is None:
            raise PromptError("give points or a box")
        w, h = session.video_width, session.video_height
        pts = np.zeros((0, 2), np.float32) if points is None else _as_array(points, np.float32, "points")
        if pts.ndim == 1 and pts.size == 2:
            pts = pts[None]
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise PromptError(f"points must have shape [N, 2] (x, y), got {list(pts.shape)}")
        if labels is None:
            lbl = np.ones(len(pts), np.int32)
        else:
            lbl = _as_array(labels, np.int32, "labels").reshape(-1)
        if len(lbl) != len(pts):
            raise PromptError(f"{len(pts)} points but {len(lbl)} labels")
        if not np.isin(lbl, (0, 1)).all():
            raise PromptError(f"labels must be 1 (positive) or 0 (negative), got {lbl.tolist()}")
        if not np.isfinite(pts).all():
            raise PromptError("point coordinates must be finite numbers")
        if normalize_coords and len(pts) and (
                (pts[:, 0] < 0).any() or (pts[:, 0] > w).any() or (pts[:, 1] < 0).any() or (pts[:, 1] > h).any()):
            raise PromptError(f"points {pts.tolist()} lie outside the {w}x{h} frame")
        if task == "point":
            if box is not None:
                raise PromptError("the point task takes one point per object, not a box")
            if len(pts) != 1 or lbl[0] != 1:
                raise PromptError("the point task takes exactly one positive point per object and frame")
        if task == "box" and box is None:
            raise PromptError("the box task needs a box (x1, y1, x2, y2)")
        if box is not None:
            b = _as_array(box, np.float32, "box").reshape(-1)
            if b.size != 4 or not np.isfinite(b).all():
                raise PromptError(f"a box is 4 numbers x1, y1, x2, y2, got {np.asarray(box).tolist()}")
            if normalize_coords and ((b[[0, 2]] < 0).any() or (b[[0, 2]] > w).any()
                                     or (b[[1, 3]] < 0).any() or (b[[1, 3]] > h).any()):
                raise PromptError(f"box {b.tolist()} lies outside the {w}x{h} frame")
            # corners in any order name the same box (the prompts JSON parser sorts them too)
            b = np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])], np.float32)
            pts = np.concatenate([b.reshape(2, 2), pts], axis=0)
            lbl = np.concatenate([np.array([2, 3], np.int32), lbl])
        coords = torch.from_numpy(pts)[None]
        if normalize_coords:
            coords = coords / torch.tensor([w, h], dtype=torch.float32)
        coords = coords * self.image_size
        return PointPrompt(coords.to(self.device), torch.from_numpy(lbl)[None].to(self.device))

    def _mask_tensor(self, session: TrackingSession, mask) -> torch.Tensor:
        m = mask.detach().cpu() if torch.is_tensor(mask) else torch.from_numpy(_as_array(mask, None, "mask"))
        if m.dim() == 3 and m.shape[0] == 1:
            m = m[0]
        if m.dim() != 2:
            raise PromptError(f"a mask is a 2-D HxW array, got shape {list(m.shape)}")
        if tuple(m.shape) != (session.video_height, session.video_width):
            raise PromptError(
                f"mask size {m.shape[1]}x{m.shape[0]} differs from the video's "
                f"{session.video_width}x{session.video_height}")
        m = m.bool().to(torch.float32)[None, None].to(self.device)
        if m.shape[-2:] != (self.image_size, self.image_size):
            m = F.interpolate(m, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
            m = (m >= 0.5).float()
        return m

    def _run_prompt(self, session: TrackingSession, track: ObjectTrack, frame_idx: int,
                    prompt: Optional[PointPrompt], mask: Optional[torch.Tensor], use_prev_logits: bool) -> FrameResult:
        is_init = frame_idx not in track.frames_tracked
        reverse = track.frames_tracked.get(frame_idx, False)
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        prev_logits = None
        if use_prev_logits:
            prev = (track.pending(is_cond).get(frame_idx) or track.cond_outputs.get(frame_idx)
                    or track.non_cond_outputs.get(frame_idx))
            if prev is not None:
                prev_logits = torch.clamp(prev.pred_masks.to(self.device), -32.0, 32.0)
        memory = None
        if not is_init:
            if not track.cond_outputs:
                raise PromptError(f"object {track.obj_id} has no prompted frame left to correct from; "
                                  "prompt it as a new object")
            memory = self._select_memory(session, track, frame_idx, reverse)
        with self._autocast():
            feats = self._features(session, frame_idx, track.task)
            step = self._track_step(session, [track], frame_idx, None, feats, memory, points=prompt, mask=mask,
                                    prev_mask_logits=prev_logits, is_init_cond_frame=is_init, run_mem_encoder=False)
        track.pending(is_cond)[frame_idx] = self._frame_output(session, step, is_mask_from_pts=True)
        return self._consolidated_result(session, frame_idx, is_cond)

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video(
        self,
        session: TrackingSession,
        start_frame_idx: Optional[int] = None,
        max_frame_num_to_track: Optional[int] = None,
        reverse: bool = False,
    ) -> Iterator[FrameResult]:
        """Track every object through the video from `start_frame_idx` (default: the earliest prompted
        frame), forward or in reverse, over at most `max_frame_num_to_track` further frames."""
        self._commit_prompts(session)
        if start_frame_idx is None:
            start_frame_idx = min(t for tr in session.objects.values() for t in tr.cond_outputs)
        start_frame_idx = self._check_frame(session, start_frame_idx)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = session.num_frames
        if max_frame_num_to_track < 0:
            raise ValueError("max_frame_num_to_track must be >= 0")
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, session.num_frames - 1)
            order = range(start_frame_idx, end + 1)
        pipelined = self._pipelined()
        in_transit: Optional[ResultInTransit] = None
        for k, frame_idx in enumerate(order):
            if pipelined and k + 1 < len(order):
                self._prefetch(session, order[k + 1])
            try:
                outputs = self._track_objects_on_frame(session, frame_idx, reverse)
            except Exception:
                if in_transit is not None:  # a failure loses no frame that was already tracked
                    yield in_transit.receive()
                raise
            sent = self._send_result(session, frame_idx, outputs)
            if not pipelined:
                yield sent.receive()
                continue
            if in_transit is not None:
                yield in_transit.receive()
            in_transit = sent
        if in_transit is not None:
            yield in_transit.receive()

    def _pipelined(self) -> bool:
        """Whether propagation overlaps host and device work: the next frame is decoded and resized on a
        helper thread while the model works on this one, and a frame's results are handed out once the
        next frame is tracked, so their copy to the host does not hold up the GPU. On a GPU only: on
        the CPU the model already uses every core, and results come at once."""
        return self.device.type == "cuda"

    def _track_objects_on_frame(self, session: TrackingSession, frame_idx: int, reverse: bool) -> list[FrameOutput]:
        """Every object's output on one propagated frame, in the session's object order. Objects
        prompted on the frame keep their prompt's output; the others are tracked in batches."""
        tracks = list(session.objects.values())
        outputs: dict[int, FrameOutput] = {}
        batches: dict[tuple, list[tuple[ObjectTrack, MemoryContext]]] = {}
        for track in tracks:
            out = track.cond_outputs.get(frame_idx)
            if out is not None:
                if self.clear_non_cond_mem_around_input:
                    self._clear_non_cond_mem_around(session, track, frame_idx)
                outputs[track.obj_id] = out
                continue
            memory = self._select_memory(session, track, frame_idx, reverse)
            batches.setdefault(self._batch_key(track, memory), []).append((track, memory))
        for members in batches.values():
            for start in range(0, len(members), self.max_batch_objects):
                chunk = members[start:start + self.max_batch_objects]
                for (track, _), out in zip(chunk, self._track_batch(session, chunk, frame_idx, reverse)):
                    track.non_cond_outputs[frame_idx] = out
                    outputs[track.obj_id] = out
        for track in tracks:
            track.frames_tracked[frame_idx] = reverse
            if not self.keep_all_memory:
                self._evict_unreachable(track, frame_idx, reverse)
        return [outputs[track.obj_id] for track in tracks]

    def _batch_key(self, track: ObjectTrack, memory: MemoryContext) -> tuple:
        """Objects with equal keys are tracked in one batch: same task and same memory layout. The memory
        encoder's non-overlap constraint would mix the objects of a batch, so with it each object is
        tracked alone, as the reference does."""
        if self.model.tracker_cfg.non_overlap_masks_for_mem_enc:
            return ("object", track.obj_id)
        return ("batch", track.task, memory_layout(memory))

    def _track_batch(self, session: TrackingSession, members: list[tuple[ObjectTrack, MemoryContext]],
                     frame_idx: int, reverse: bool) -> list[FrameOutput]:
        """Track objects of one task and memory layout on a frame in one batch; their outputs in order."""
        tracks = [track for track, _ in members]
        memory = stack_memories([m for _, m in members])
        with self._autocast():
            feats = self._features(session, frame_idx, tracks[0].task).expand(len(tracks))
            step = self._track_step(session, tracks, frame_idx, reverse, feats, memory, run_mem_encoder=True)
        return [self._frame_output(session, s, is_mask_from_pts=False) for s in step.split()]

    # ------------------------------------------------------------------ memory eviction
    def memory_reach(self) -> int:
        """How many frames back a tracked frame reads memories and object pointers."""
        tc = self.model.tracker_cfg
        stride = tc.memory_temporal_stride_for_eval
        return max(tc.max_obj_ptrs_in_encoder, self.model.num_maskmem * stride + 1)

    def _frames_read_near(self, track: ObjectTrack, anchor: int, direction: int) -> set[int]:
        """Tracked frames a frame next to `anchor`, tracking away from it in `direction` (+1 forward, -1
        reverse), may read: those behind it within `memory_reach`."""
        reach = self.memory_reach()
        return {t for t in track.non_cond_outputs if 0 <= (anchor - t) * direction <= reach}

    def _evict_unreachable(self, track: ObjectTrack, frame_idx: int, reverse: bool) -> None:
        """Drop the tracked outputs that neither the continuation of this propagation nor a propagation
        from a prompted frame (in either direction) reads. Prompted frames are always kept.

        What is dropped is only what the reference would still hold for a later prompt on an old tracked
        frame or a propagation started from an arbitrary unprompted frame; `keep_all_memory=True` keeps it."""
        reach = self.memory_reach()
        direction = -1 if reverse else 1
        far = [t for t in track.non_cond_outputs if (frame_idx - t) * direction > reach]
        if not far:
            return
        keep = self._frames_read_near(track, frame_idx, direction)
        for cond in track.cond_outputs:
            keep |= self._frames_read_near(track, cond, 1) | self._frames_read_near(track, cond, -1)
        for t in far:
            if t not in keep:
                del track.non_cond_outputs[t]

    def _select_memory(self, session: TrackingSession, track: ObjectTrack, frame_idx: int,
                       reverse: bool) -> MemoryContext:
        """The memory one object's (non-initial) frame attends to."""
        return select_memory(track, frame_idx, session.num_frames, reverse, self.model.tracker_cfg,
                             self.model.num_maskmem)

    def _track_step(self, session: TrackingSession, tracks: list[ObjectTrack], frame_idx: int,
                    reverse: Optional[bool], feats: FrameFeatures, memory: Optional[MemoryContext],
                    **kwargs) -> StepResult:
        """Run the model on a frame for a batch of objects of one task; reverse is None for a prompt, else
        the propagation direction."""
        return track_frame(self.model, tracks[0].task, feats, memory, session.num_frames, **kwargs)

    def _commit_prompts(self, session: TrackingSession) -> None:
        """Encode the memory of prompted frames and move them into the memory banks."""
        if not session.objects:
            raise RuntimeError("no object has a prompt yet; add points, a box or a mask first")
        for track in session.objects.values():
            for is_cond in (False, True):
                pending = track.pending(is_cond)
                for frame_idx, out in pending.items():
                    if out.maskmem_features is None:
                        self._encode_prompt_memory(session, track, frame_idx, out)
                    (track.cond_outputs if is_cond else track.non_cond_outputs)[frame_idx] = out
                    if self.clear_non_cond_mem_around_input:
                        self._clear_non_cond_mem_around(session, track, frame_idx)
                pending.clear()
            if not track.cond_outputs:
                raise RuntimeError(f"object {track.obj_id} has no prompt; add points, a box or a mask for it")
            for frame_idx in track.cond_outputs:
                track.non_cond_outputs.pop(frame_idx, None)

    def _encode_prompt_memory(self, session: TrackingSession, track: ObjectTrack, frame_idx: int,
                              out: FrameOutput) -> None:
        high_res = F.interpolate(out.pred_masks.to(self.device), size=(self.image_size, self.image_size),
                                 mode="bilinear", align_corners=False)
        with self._autocast():
            feats = self._features(session, frame_idx, track.task)
            features, pos_enc = self.model.encode_memory(track.task, feats, high_res, out.object_score_logits.to(
                self.device), is_mask_from_pts=out.is_mask_from_pts)
        out.maskmem_features = features.to(torch.bfloat16).to(session.storage_device)
        out.maskmem_pos_enc = self._shared_pos_enc(session, pos_enc)

    def _clear_non_cond_mem_around(self, session: TrackingSession, track: ObjectTrack, frame_idx: int) -> None:
        """Forget the tracked (non-prompted) memories near a corrected frame, which may contradict it.

        Like SAM 2, this applies to single-object sessions unless clear_non_cond_mem_for_multi_obj."""
        if len(session.objects) > 1 and not self.clear_non_cond_mem_for_multi_obj:
            return
        r = self.model.tracker_cfg.memory_temporal_stride_for_eval
        span = r * self.model.num_maskmem
        for t in range(frame_idx - span, frame_idx + span + 1):
            track.non_cond_outputs.pop(t, None)

    def _shared_pos_enc(self, session: TrackingSession, pos_enc: torch.Tensor) -> torch.Tensor:
        if session.maskmem_pos_enc is None:
            session.maskmem_pos_enc = pos_enc[0:1].clone()
        return session.maskmem_pos_enc

    def _frame_output(self, session: TrackingSession, step: StepResult, is_mask_from_pts: bool) -> FrameOutput:
        head = step.head
        pred_masks = head.low_res_masks
        if self.fill_hole_area > 0:
            pred_masks = fill_holes_in_mask_scores(pred_masks, self.fill_hole_area)
        storage = session.storage_device
        out = FrameOutput(
            pred_masks=pred_masks.to(storage),
            obj_ptr=head.obj_ptr,
            object_score_logits=head.object_score_logits,
            boxes_norm=head.boxes_norm,
            is_mask_from_pts=is_mask_from_pts,
            best_iou=(head.ious.max(dim=-1).values if head.best_index is None
                      else head.ious.gather(-1, head.best_index[:, None])[:, 0]),
            kf_score=step.kf_score,
        )
        if step.maskmem_features is not None:
            out.maskmem_features = step.maskmem_features.to(torch.bfloat16).to(storage)
            out.maskmem_pos_enc = self._shared_pos_enc(session, step.maskmem_pos_enc)
        return out

    # ------------------------------------------------------------------ outputs
    def _consolidated_result(self, session: TrackingSession, frame_idx: int, is_cond: bool) -> FrameResult:
        """Every object's newest output on a frame (objects without one come back absent)."""
        outputs = []
        for track in session.objects.values():
            out = (track.pending(is_cond).get(frame_idx) or track.cond_outputs.get(frame_idx)
                   or track.non_cond_outputs.get(frame_idx))
            outputs.append(out)
        return self._result(session, frame_idx, outputs)

    def _result(self, session: TrackingSession, frame_idx: int, outputs: Sequence[Optional[FrameOutput]]) -> FrameResult:
        return self._send_result(session, frame_idx, outputs).receive()

    def _send_result(self, session: TrackingSession, frame_idx: int,
                     outputs: Sequence[Optional[FrameOutput]]) -> "ResultInTransit":
        """Start bringing a frame's results to the host: everything is computed on the model's device,
        and from a GPU copied without waiting (`ResultInTransit.receive` waits)."""
        h, w = session.video_height, session.video_width
        tracks = list(session.objects.values())
        n, device = len(outputs), self.device
        low_res = torch.full((n, 1, self.image_size // 4, self.image_size // 4), NO_OBJ_SCORE,
                             dtype=torch.float32, device=device)
        scores = torch.full((n,), NO_OBJ_SCORE, dtype=torch.float32, device=device)
        head_boxes = {}  # object index -> the box head's xyxy in video pixels (box task)
        for i, out in enumerate(outputs):
            if out is None:
                continue
            low_res[i] = out.pred_masks.to(device)[0]
            scores[i] = out.object_score_logits.reshape(-1)[0].to(device)
            if out.boxes_norm is not None and tracks[i].task == "box":
                x1, y1, x2, y2 = out.boxes_norm.reshape(4).to(device).float().unbind()
                head_boxes[i] = torch.stack([x1 * w, y1 * h, x2 * w, y2 * h])  # scalars: nothing to upload
        logits = low_res if low_res.shape[-2:] == (h, w) else F.interpolate(
            low_res, size=(h, w), mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            from .modeling.sam2_model import apply_non_overlapping_constraints

            logits = apply_non_overlapping_constraints(logits)
        logits = logits[:, 0].float()
        flat_argmax = logits.flatten(1).argmax(dim=1) if n else torch.zeros(0, dtype=torch.long, device=device)
        points = torch.stack([flat_argmax % w, flat_argmax // w], dim=1).float()
        boxes, _ = _mask_boxes(logits > 0)
        for i, box in head_boxes.items():
            boxes[i] = box
        tensors = dict(logits=logits, scores=scores, boxes=boxes, points=points)
        event = None
        if device.type == "cuda":
            tensors = {k: v.to("cpu", non_blocking=True) for k, v in tensors.items()}
            event = torch.cuda.Event()
            event.record()
        return ResultInTransit(frame_idx, [t.obj_id for t in tracks], [t.task for t in tracks], tensors, event,
                               _motion_scores(outputs))

    # ------------------------------------------------------------------ editing
    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, session: TrackingSession, frame_idx: int, obj_id: int,
                                   need_output: bool = True) -> Optional[FrameResult]:
        """Remove an object's prompts on a frame; a prompted frame becomes an ordinary tracked frame."""
        frame_idx = self._check_frame(session, frame_idx)
        track = session.track(obj_id)
        track.point_inputs.pop(frame_idx, None)
        track.mask_inputs.pop(frame_idx, None)
        track.pending_cond.pop(frame_idx, None)
        track.pending_non_cond.pop(frame_idx, None)
        out = track.cond_outputs.pop(frame_idx, None)
        if out is not None:
            track.non_cond_outputs[frame_idx] = out
            track.frames_tracked.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in t.pending_cond for t in session.objects.values())
        return self._consolidated_result(session, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(self, session: TrackingSession, obj_id: int, strict: bool = True,
                      need_output: bool = True) -> tuple[list[int], list[FrameResult]]:
        """Remove an object and all it knows. Returns the remaining object ids and, for the frames where
        the object had prompts, the other objects' updated results."""
        if obj_id not in session.objects:
            if strict:
                session.track(obj_id)  # raises UnknownObjectError
            return session.obj_ids, []
        track = session.objects.pop(obj_id)
        prompted = sorted(set(track.point_inputs) | set(track.mask_inputs))
        updated = []
        if need_output and session.objects:
            for frame_idx in prompted:
                is_cond = any(frame_idx in t.pending_cond for t in session.objects.values())
                updated.append(self._consolidated_result(session, frame_idx, is_cond))
        return session.obj_ids, updated


def _as_array(value, dtype, name: str) -> np.ndarray:
    try:
        arr = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        return arr.astype(dtype) if dtype is not None else arr
    except (TypeError, ValueError) as e:
        raise PromptError(f"{name} must be numeric: {e}") from None


def _mask_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """xyxy boxes [N, 4] float32 (x2, y2 exclusive; zeros where empty) of [N, H, W] bool masks, and [N]
    whether each mask has a pixel. On the masks' device, without a host synchronisation."""
    rows, cols = masks.any(dim=2).int(), masks.any(dim=1).int()  # argmax returns the first maximum
    h, w = masks.shape[-2:]
    boxes = torch.stack([cols.argmax(dim=1), rows.argmax(dim=1), w - cols.flip(1).argmax(dim=1),
                         h - rows.flip(1).argmax(dim=1)], dim=1).float()
    nonempty = rows.any(dim=1)
    return torch.where(nonempty[:, None], boxes, 0.0), nonempty


def _mask_bbox(mask: torch.Tensor) -> Optional[tuple[float, float, float, float]]:
    """xyxy of a [H, W] bool mask (x2, y2 exclusive), or None when empty."""
    boxes, nonempty = _mask_boxes(mask[None])
    return tuple(boxes[0].tolist()) if bool(nonempty[0]) else None


@dataclass
class ResultInTransit:
    """A frame's results on their way from the model's device to the host."""

    frame_idx: int
    obj_ids: list[int]
    tasks: list[str]
    tensors: dict  # logits, scores, boxes, points: the FrameResult's tensors
    event: Optional[Any] = None  # a CUDA event recorded after the copies
    motion_scores: Optional[torch.Tensor] = None  # on the host already

    def receive(self) -> FrameResult:
        if self.event is not None:
            self.event.synchronize()
        t = self.tensors
        return FrameResult(self.frame_idx, self.obj_ids, t["logits"], t["scores"], t["boxes"], t["points"],
                           self.tasks, self.motion_scores)


def _motion_scores(outputs: Sequence[Optional[FrameOutput]]) -> Optional[torch.Tensor]:
    """[N] Kalman IoUs of the outputs (NaN where not scored), or None when none was scored."""
    scores = [None if out is None else out.kf_score for out in outputs]
    if all(score is None for score in scores):
        return None
    return torch.tensor([float("nan") if score is None else score for score in scores], dtype=torch.float32)
