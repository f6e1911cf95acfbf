"""Video predictor: the public tracking API (close to SAM 2's) over an explicit session object.

    pred = build_video_predictor("sam2++", task="box")
    session = pred.init_state("video.mp4")
    pred.add_new_points_or_box(session, frame_idx=0, obj_id=1, box=[x1, y1, x2, y2])
    for result in pred.propagate_in_video(session):
        result.frame_idx, result.obj_ids, result.mask_logits, result.boxes, result.points

A camera's frames are pushed one at a time instead (`init_stream`, `push_frame`: sam2_plus/video/streaming.py).
Every prompt call and every propagated or pushed frame returns a `FrameResult`. Coordinates are pixels of the
source video; masks come back at video resolution.

The predictor is the API over smaller pieces, one module each: `session` (one video's `TrackingSession`),
`prompt_inputs` (the API's prompts checked and turned into model inputs), `stepper` (the model on one frame for a batch of objects, outputs kept as
memory) with `features` (a session's image features, the next frames prepared on a helper thread),
`tracker` (an object's prompts and memory; the step itself), `rules` (SAM 2's rules of tracking, which
motion-aware tracking replaces per session), `eviction` (which tracked frames the memory keeps) and
`results` (a frame's results, brought to the host).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import torch

from .eviction import clear_around, evict_unreachable, memory_reach
from .features import FeatureCache
from ..media.decode import FrameSource
from ..modeling.sam2_model import MemoryContext, PointPrompt, SAM2Model
from .prompt_inputs import (box_of_mask, check_clicks, check_mask, check_mask_task, mask_input, object_id,
                            point_heatmap, point_prompt)
from ..prompt_rules import TASK_RULES, FramePrompt
from ..prompts import PromptError
from .results import FrameResult, ResultInTransit, send_result
from .rules import TrackingRules
from .session import TrackingSession, UnknownObjectError
from .stepper import FrameStepper
from .streaming import DEFAULT_HISTORY, LiveFrames, push
from .tracker import FrameOutput, TrackedObject

__all__ = ["FrameResult", "PromptError", "TrackingSession", "UnknownObjectError", "VideoPredictor"]


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
        self.stepper = FrameStepper(model, precision, self.fill_hole_area)
        self.precision = precision
        if max_batch_objects is not None and max_batch_objects < 1:
            raise ValueError(f"max_batch_objects must be at least 1, got {max_batch_objects}")
        self._max_batch_objects = max_batch_objects
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

    @property
    def uses_bfloat16(self) -> bool:
        """Whether matrix work runs in bfloat16 (`precision`; "auto": on CUDA, not on the CPU)."""
        return self.stepper.uses_bfloat16

    def tracking_rules(self) -> TrackingRules:
        """The rules a new session tracks by: SAM 2's (motion-aware tracking gives its own)."""
        return TrackingRules()

    def memory_reach(self) -> int:
        """How many frames back a tracked frame reads memories and object pointers."""
        return memory_reach(self.model.tracker_cfg, self.model.num_maskmem)

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(self, video, offload_video_to_cpu: bool = True, offload_state_to_cpu: bool = False) -> TrackingSession:
        """Open a video: a file, a folder of JPEG/PNG frames, a single image, or a list of HxWx3 uint8
        RGB arrays. Frames are decoded on demand, so memory does not grow with the video's length."""
        frames = video if isinstance(video, FrameSource) else FrameSource(video)
        if len(frames) == 0:
            raise ValueError("the video has no frames")
        first = frames[0]
        return TrackingSession(
            frames=frames,
            num_frames=len(frames),
            video_height=int(first.shape[0]),
            video_width=int(first.shape[1]),
            device=self.device,
            storage_device=torch.device("cpu") if offload_state_to_cpu else self.device,
            features=FeatureCache(frames),
            rules=self.tracking_rules(),
        )

    def init_stream(self, history: int = DEFAULT_HISTORY) -> TrackingSession:
        """Open a stream: a session with no video, whose frames come one at a time through `push_frame` (a
        camera). Prompts go on any of the last `history` pushed frames (sam2_plus/video/streaming.py)."""
        frames = LiveFrames(history)
        return TrackingSession(frames=frames, num_frames=0, video_height=0, video_width=0, device=self.device,
                               storage_device=self.device, features=FeatureCache(frames),
                               rules=self.tracking_rules(), streaming=True)

    @torch.inference_mode()
    def push_frame(self, session: TrackingSession, frame) -> FrameResult:
        """The next frame of a stream (HxWx3 uint8 RGB, the first frame's size), every object tracked on it:
        objects prompted since the last push are tracked from their prompts on. Its index is the count of frames
        pushed before it; with no object yet the result has none."""
        if not session.streaming:
            raise ValueError("push_frame takes a stream (init_stream); a video is tracked by propagate_in_video")
        frame_idx = push(session, frame)
        if not session.objects:
            return self._send_result(session, frame_idx, []).receive()
        self._commit_prompts(session)
        outputs = self._track_objects_on_frame(session, frame_idx, reverse=False)
        return self._send_result(session, frame_idx, outputs).receive()

    @torch.inference_mode()
    def reset_state(self, session: TrackingSession) -> None:
        """Remove every object, prompt and result."""
        session.objects.clear()
        session.rules = self.tracking_rules()

    @torch.inference_mode()
    def frame_backbone(self, session: TrackingSession, frame_idx: int) -> dict:
        """A frame's image-encoder output (the image predictor's `set_features` takes it): the one tracking
        computed when the frame was visited last or the one before, else computed now."""
        return self.stepper.encoder.backbone(session.features, session.frame_index(frame_idx))

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

        mask task: any clicks (label 1 positive, 0 negative) and/or a box; box task: exactly a box; point
        task: exactly one positive point (encoded as SAM 2++'s Gaussian heatmap); prompt_rules.TASK_RULES."""
        frame_idx = session.frame_index(frame_idx)
        obj = self._object(session, obj_id, task)
        with self._dropped_when_refused(session, obj):
            clicks = check_clicks(frame_idx, points, labels, box, obj.task, session.video_width,
                                  session.video_height, normalize_coords)
            if box is not None and not clear_old_points:
                raise PromptError("a box must be the first prompt of a frame; use clear_old_points=True")
        return self._add_clicks(session, obj, frame_idx, clicks, clear_old_points, normalize_coords)

    @torch.inference_mode()
    def add_new_mask(self, session: TrackingSession, frame_idx: int, obj_id: int, mask,
                     task: Optional[str] = None) -> FrameResult:
        """A mask (HxW, nonzero = object) for one object on one frame, at video resolution.

        For the box task the mask's bounding box is the box prompt; the point task takes points. An empty
        mask is refused on a new frame and marks the object absent on an already tracked frame."""
        frame_idx = session.frame_index(frame_idx)
        obj = self._object(session, obj_id, task)
        with self._dropped_when_refused(session, obj):
            check_mask_task(obj.task)
            model_mask = mask_input(check_mask(mask, session.video_height, session.video_width), self.image_size,
                                    self.device)
        return self._add_mask(session, obj, frame_idx, model_mask)

    @torch.inference_mode()
    def add_prompt(self, session: TrackingSession, obj_id: int, task: str, prompt: FramePrompt) -> FrameResult:
        """A prompt of the prompts JSON for one object of `task`: its mask, or its clicks and/or box. It was
        checked against this video where it entered (`prompts.parse_prompts`), so it is not checked again; on a
        stream, that its frame is still held is."""
        if session.streaming:
            session.frame_index(prompt.frame)
        obj = self._object(session, obj_id, task)
        if prompt.mask is not None:
            return self._add_mask(session, obj, prompt.frame, mask_input(prompt.mask, self.image_size, self.device))
        return self._add_clicks(session, obj, prompt.frame, prompt, clear_old_points=True)

    def _object(self, session: TrackingSession, obj_id, task: Optional[str]) -> TrackedObject:
        """The session's object `obj_id`, added on its first prompt; a prompt cannot change its task."""
        obj_id = object_id(obj_id)
        task = self.model.check_task(task or self.task) if task is not None else None
        obj = session.objects.get(obj_id)
        if obj is None:
            obj = TrackedObject(obj_id=obj_id, task=task or self.task)
            session.objects[obj_id] = obj
        elif task is not None and task != obj.task:
            raise PromptError(
                f"object {obj_id} is tracked with task {obj.task!r}; remove it before prompting it as {task!r}")
        return obj

    @contextlib.contextmanager
    def _dropped_when_refused(self, session: TrackingSession, obj: TrackedObject):
        """A refused first prompt must not leave an empty object behind."""
        try:
            yield
        except PromptError:
            if not (obj.point_inputs or obj.mask_inputs or obj.cond_outputs or obj.pending_cond):
                session.objects.pop(obj.obj_id, None)
            raise

    def _add_clicks(self, session: TrackingSession, obj: TrackedObject, frame_idx: int, clicks: FramePrompt,
                    clear_old_points: bool, normalize_coords: bool = True) -> FrameResult:
        prompt = point_prompt(clicks, session.video_width, session.video_height, self.image_size, self.device,
                              normalize_coords)
        old = obj.point_inputs.get(frame_idx)
        if obj.task != "point" and not clear_old_points and old is not None:
            prompt = old.concat(prompt)
        obj.point_inputs[frame_idx] = prompt
        mask = None
        if obj.task == "point":
            mask = point_heatmap(prompt, self.model.tracker_cfg, self.image_size, self.device)
            obj.mask_inputs[frame_idx] = mask
        else:
            obj.mask_inputs.pop(frame_idx, None)
        return self._run_prompt(session, obj, frame_idx, prompt, mask, use_prev_logits=True)

    def _add_mask(self, session: TrackingSession, obj: TrackedObject, frame_idx: int,
                  model_mask: torch.Tensor) -> FrameResult:
        prompt = None
        with self._dropped_when_refused(session, obj):
            # also a mask of the prompts JSON: a small one can vanish at the model's size
            if frame_idx not in obj.frames_tracked and not bool(model_mask.any()):
                raise PromptError(f"the mask for object {obj.obj_id} on frame {frame_idx} is empty; "
                                  "an empty mask can only mark a tracked object as absent on a tracked frame")
            if TASK_RULES[obj.task].mask_as_box:
                prompt = box_of_mask(model_mask, self.device)
        if prompt is not None:
            obj.point_inputs[frame_idx] = prompt
        else:
            obj.point_inputs.pop(frame_idx, None)
        obj.mask_inputs[frame_idx] = model_mask
        return self._run_prompt(session, obj, frame_idx, prompt, model_mask, use_prev_logits=False)

    def _run_prompt(self, session: TrackingSession, obj: TrackedObject, frame_idx: int,
                    prompt: Optional[PointPrompt], mask: Optional[torch.Tensor], use_prev_logits: bool) -> FrameResult:
        is_init = frame_idx not in obj.frames_tracked
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        prev_logits = None
        if use_prev_logits:
            prev = (obj.pending(is_cond).get(frame_idx) or obj.cond_outputs.get(frame_idx)
                    or obj.non_cond_outputs.get(frame_idx))
            if prev is not None:
                prev_logits = torch.clamp(prev.pred_masks.to(self.device), -32.0, 32.0)
        memory = None
        if not is_init:
            if not obj.cond_outputs:
                raise PromptError(f"object {obj.obj_id} has no prompted frame left to correct from; "
                                  "prompt it as a new object")
            memory = self.stepper.select_memory(session, obj, frame_idx, obj.frames_tracked[frame_idx])
        step, _ = self.stepper.step(session, [obj], frame_idx, None, memory, points=prompt, mask=mask,
                                    prev_mask_logits=prev_logits, is_init_cond_frame=is_init, run_mem_encoder=False)
        obj.pending(is_cond)[frame_idx] = self.stepper.output(session, step, is_mask_from_pts=True)
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
        if session.streaming:
            raise ValueError("a stream is tracked frame by frame as frames are pushed (push_frame), not propagated")
        self._commit_prompts(session)
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in session.objects.values() for t in obj.cond_outputs)
        start = session.frame_index(start_frame_idx)
        order = propagation_order(start, max_frame_num_to_track, reverse, session.num_frames)
        pipelined = self._pipelined()
        in_transit: Optional[ResultInTransit] = None
        for k, frame_idx in enumerate(order):
            if pipelined and k + 1 < len(order):
                self.stepper.encoder.prefetch(session.features, order[k + 1])
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
        objects = list(session.objects.values())
        outputs: dict[int, FrameOutput] = {}
        batches: dict[tuple, list[tuple[TrackedObject, MemoryContext]]] = {}
        for obj in objects:
            out = obj.cond_outputs.get(frame_idx)
            if out is not None:
                self._clear_around_correction(session, obj, frame_idx)
                outputs[obj.obj_id] = out
                continue
            memory = self.stepper.select_memory(session, obj, frame_idx, reverse)
            batches.setdefault(self.stepper.batch_key(obj, memory), []).append((obj, memory))
        for members in batches.values():
            for start in range(0, len(members), self.max_batch_objects):
                chunk = members[start:start + self.max_batch_objects]
                for (obj, _), out in zip(chunk, self.stepper.track_batch(session, chunk, frame_idx, reverse)):
                    obj.non_cond_outputs[frame_idx] = out
                    outputs[obj.obj_id] = out
        for obj in objects:
            obj.frames_tracked[frame_idx] = reverse
            if not self.keep_all_memory or session.streaming:
                evict_unreachable(obj, frame_idx, reverse, self.memory_reach(), session.rules)
        return [outputs[obj.obj_id] for obj in objects]

    def _clear_around_correction(self, session: TrackingSession, obj: TrackedObject, frame_idx: int) -> None:
        """With clear_non_cond_mem_around_input, forget the tracked memories near a prompted frame; like SAM 2,
        in single-object sessions unless clear_non_cond_mem_for_multi_obj."""
        if self.clear_non_cond_mem_around_input and (
                len(session.objects) == 1 or self.clear_non_cond_mem_for_multi_obj):
            clear_around(obj, frame_idx, self.model.tracker_cfg, self.model.num_maskmem)

    # ------------------------------------------------------------------ memory of prompted frames
    def _commit_prompts(self, session: TrackingSession) -> None:
        """Encode the memory of prompted frames and move them into the memory banks."""
        if not session.objects:
            raise RuntimeError("no object has a prompt yet; add points, a box or a mask first")
        for obj in session.objects.values():
            for is_cond in (False, True):
                pending = obj.pending(is_cond)
                for frame_idx, out in pending.items():
                    if out.maskmem_features is None:
                        self.stepper.encode_prompt_memory(session, obj, frame_idx, out)
                    (obj.cond_outputs if is_cond else obj.non_cond_outputs)[frame_idx] = out
                    self._clear_around_correction(session, obj, frame_idx)
                pending.clear()
            if not obj.cond_outputs:
                raise RuntimeError(f"object {obj.obj_id} has no prompt; add points, a box or a mask for it")
            for frame_idx in obj.cond_outputs:
                obj.non_cond_outputs.pop(frame_idx, None)

    # ------------------------------------------------------------------ results
    def _consolidated_result(self, session: TrackingSession, frame_idx: int, is_cond: bool) -> FrameResult:
        """Every object's newest output on a frame (objects without one come back absent)."""
        outputs = [obj.pending(is_cond).get(frame_idx) or obj.cond_outputs.get(frame_idx)
                   or obj.non_cond_outputs.get(frame_idx) for obj in session.objects.values()]
        return self._send_result(session, frame_idx, outputs).receive()

    def _send_result(self, session: TrackingSession, frame_idx: int,
                     outputs: Sequence[Optional[FrameOutput]]) -> ResultInTransit:
        return send_result(frame_idx, session.video_frame(), outputs, self.image_size, self.device,
                           self.non_overlap_masks, session.rules.motion_scores(session.obj_ids, frame_idx))

    # ------------------------------------------------------------------ editing
    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, session: TrackingSession, frame_idx: int, obj_id: int,
                                   need_output: bool = True) -> Optional[FrameResult]:
        """Remove an object's prompts on a frame; a prompted frame becomes an ordinary tracked frame."""
        frame_idx = session.frame_index(frame_idx)
        obj = session.tracked_object(obj_id)
        obj.point_inputs.pop(frame_idx, None)
        obj.mask_inputs.pop(frame_idx, None)
        obj.pending_cond.pop(frame_idx, None)
        obj.pending_non_cond.pop(frame_idx, None)
        out = obj.cond_outputs.pop(frame_idx, None)
        if out is not None:
            obj.non_cond_outputs[frame_idx] = out
            obj.frames_tracked.pop(frame_idx, None)
        session.rules.restart(obj.obj_id)
        if not need_output:
            return None
        is_cond = any(frame_idx in o.pending_cond for o in session.objects.values())
        return self._consolidated_result(session, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(self, session: TrackingSession, obj_id: int, strict: bool = True,
                      need_output: bool = True) -> tuple[list[int], list[FrameResult]]:
        """Remove an object and all it knows. Returns the remaining object ids and, for the frames where
        the object had prompts, the other objects' updated results."""
        if obj_id not in session.objects:
            if strict:
                session.tracked_object(obj_id)  # raises UnknownObjectError
            return session.obj_ids, []
        obj = session.objects.pop(obj_id)
        session.rules.forget(obj_id)
        prompted = sorted(set(obj.point_inputs) | set(obj.mask_inputs))
        updated = []
        if need_output and session.objects:
            for frame_idx in prompted:
                is_cond = any(frame_idx in o.pending_cond for o in session.objects.values())
                updated.append(self._consolidated_result(session, frame_idx, is_cond))
        return session.obj_ids, updated


def propagation_order(start: int, max_frame_num_to_track: Optional[int], reverse: bool, num_frames: int) -> range:
    """The frames a propagation visits: from `start`, forward or in reverse, over at most
    `max_frame_num_to_track` further frames (None: to the video's end)."""
    count = num_frames if max_frame_num_to_track is None else max_frame_num_to_track
    if count < 0:
        raise ValueError("max_frame_num_to_track must be >= 0")
    if reverse:
        return range(start, max(start - count, 0) - 1, -1) if start > 0 else range(0)
    return range(start, min(start + count, num_frames - 1) + 1)
