"""EdgeTAM behind the project's predictor API: transformers' `EdgeTamVideoModel` and its `Sam2VideoProcessor`
inference session do the tracking; this adapter checks the API's inputs as `VideoPredictor` does, feeds the
session its frames on demand, keeps its memory bounded and returns `FrameResult`s at video resolution.

    pred = EdgeTamPredictor(build_model("edgetam", "hub"))
    session = pred.init_state("video.mp4")          # frames decoded when the model asks for them
    pred.add_new_points_or_box(session, frame_idx=0, obj_id=1, points=[[x, y]])
    for result in pred.propagate_in_video(session): ...

    stream = pred.init_stream(history=30)           # live frames, no video
    result = pred.push_frame(stream, frame)         # frame k = the k-th pushed; prompt it with add_* after

Mask task only (box and point results are derived from the mask, as for SAM 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ..edgetam_network import OnEdgeTamNetwork, processor_for
from ..media.decode import FrameSource
from ..modeling.sam2_model import NO_OBJ_SCORE
from ..prompt_rules import FramePrompt
from ..prompts import PromptError
from .predictor import propagation_order
from .prompt_inputs import check_clicks, check_mask, frame_index, object_id
from .results import FrameResult, derived_boxes_and_points
from .session import UnknownObjectError
from .stepper import PRECISIONS, precision_autocast, uses_bfloat16
from .streaming import checked_frame


class _VideoFrames(dict):
    """The session's frames, prepared for the model when it asks for one (transformers' session reads
    `processed_frames[i]` and `len(processed_frames)`): nothing is held but the decoder's own cache."""

    def __init__(self, frames: FrameSource, prepare) -> None:
        super().__init__()
        self.frames, self.prepare = frames, prepare

    def __getitem__(self, frame_idx: int) -> torch.Tensor:
        return self.prepare(self.frames[frame_idx])

    def __len__(self) -> int:
        return len(self.frames)


class _StreamFrames(dict):
    """A stream's prepared frames: the last ones pushed are held, and its length is the count pushed so far (the
    session's frame count while streaming)."""

    def __init__(self) -> None:
        super().__init__()
        self.pushed = 0

    def __setitem__(self, frame_idx: int, pixels: torch.Tensor) -> None:
        super().__setitem__(frame_idx, pixels)
        self.pushed = max(self.pushed, frame_idx + 1)

    def __len__(self) -> int:
        return self.pushed


@dataclass
class EdgeTamSession:
    """One video (or live stream) being tracked: transformers' inference session and the video's size."""

    inner: Any  # transformers' EdgeTamVideoInferenceSession
    video_height: int
    video_width: int
    history: Optional[int] = None  # streaming: how many recent frames stay promptable (None: a video)
    tasks: dict[int, str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.inner.processed_frames) if self.inner.processed_frames is not None else 0

    @property
    def obj_ids(self) -> list[int]:
        return list(self.inner.obj_ids)

    @property
    def is_stream(self) -> bool:
        return self.history is not None


class EdgeTamPredictor(OnEdgeTamNetwork):
    """The TrackingPredictor protocol (sam2_plus/provider.py) and VideoPredictor's prompt and editing API over
    transformers' EdgeTAM. `precision`: as VideoPredictor's ("auto": bfloat16 on CUDA, float32 on the CPU)."""

    task = "mask"
    tasks = ("mask",)
    image_preview = False  # the app previews a click through its prompt step (the image path reads SAM 2's tracker)

    def __init__(self, model: torch.nn.Module, precision: str = "auto") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model, self.precision = model, precision
        self.processor = processor_for(model)
        self.memory_reach = max(model.config.max_object_pointers_in_encoder, model.config.num_maskmem + 1)

    @property
    def uses_bfloat16(self) -> bool:
        return uses_bfloat16(self.precision, self.device)

    def autocast(self):
        return precision_autocast(self.precision, self.device)

    # ------------------------------------------------------------------ sessions
    @torch.inference_mode()
    def init_state(self, video, **_offload_options) -> EdgeTamSession:
        """Open a video: a file, a folder of frames, an image, or a list of HxWx3 uint8 RGB arrays; frames are
        decoded and prepared when the model reaches them."""
        frames = video if isinstance(video, FrameSource) else FrameSource(video)
        if len(frames) == 0:
            raise ValueError("the video has no frames")
        height, width = (int(s) for s in frames[0].shape[:2])
        inner = self._new_inner_session()
        inner.processed_frames = _VideoFrames(frames, self.prepare_frame)
        inner.video_height, inner.video_width = height, width
        return EdgeTamSession(inner, height, width)

    @torch.inference_mode()
    def init_stream(self, history: int = 30) -> EdgeTamSession:
        """A live session without a video: frames come one by one (`push_frame`). The last `history` frames stay
        promptable; older frames and tracked memories no later frame reads are dropped, so memory stays flat."""
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive integer of frames, got {history!r}")
        inner = self._new_inner_session()
        inner.processed_frames = _StreamFrames()
        return EdgeTamSession(inner, 0, 0, history=history)

    @torch.inference_mode()
    def push_frame(self, session: EdgeTamSession, frame: np.ndarray) -> FrameResult:
        """The next frame of a stream (HxWx3 uint8 RGB, every frame the first one's size): every object's
        result on it (none before the first prompt)."""
        pixels = self.prepare_frame(self._check_stream_frame(session, frame))
        inner = session.inner
        frame_idx = inner.add_new_frame(pixels)
        result = self._track_frame(session, frame_idx, reverse=False)
        self._forget_old_stream_frames(session, frame_idx)
        return result

    @torch.inference_mode()
    def reset_state(self, session: EdgeTamSession) -> None:
        """Remove every object, prompt and result."""
        session.inner.reset_tracking_data()
        session.tasks.clear()

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(self, session: EdgeTamSession, frame_idx: int, obj_id: int, points=None,
                              labels=None, clear_old_points: bool = True, normalize_coords: bool = True, box=None,
                              task: Optional[str] = None) -> FrameResult:
        """Clicks (label 1 positive, 0 negative) and/or a box for one object on one frame, in video pixels."""
        frame_idx = self._prompt_frame(session, frame_idx)
        obj_id = self._check_object(obj_id, task)
        if not normalize_coords:
            raise PromptError("EdgeTAM takes prompts in video pixels only (normalize_coords=True)")
        clicks = check_clicks(frame_idx, points, labels, box, "mask", session.video_width, session.video_height)
        if box is not None and not clear_old_points:
            raise PromptError("a box must be the first prompt of a frame; use clear_old_points=True")
        return self._add_clicks(session, obj_id, clicks, clear_old_points)

    @torch.inference_mode()
    def add_new_mask(self, session: EdgeTamSession, frame_idx: int, obj_id: int, mask,
                     task: Optional[str] = None) -> FrameResult:
        """A mask (HxW at video resolution, nonzero = object) for one object on one frame."""
        frame_idx = self._prompt_frame(session, frame_idx)
        obj_id = self._check_object(obj_id, task)
        return self._add_mask(session, obj_id, frame_idx, check_mask(mask, session.video_height, session.video_width))

    @torch.inference_mode()
    def add_prompt(self, session: EdgeTamSession, obj_id: int, task: str, prompt: FramePrompt) -> FrameResult:
        """A prompt of the prompts JSON (checked where it entered, `prompts.parse_prompts`)."""
        obj_id = self._check_object(obj_id, task)
        if prompt.mask is not None:
            return self._add_mask(session, obj_id, prompt.frame, torch.from_numpy(np.asarray(prompt.mask, bool)))
        return self._add_clicks(session, obj_id, prompt, clear_old_points=True)

    def _add_clicks(self, session: EdgeTamSession, obj_id: int, clicks: FramePrompt,
                    clear_old_points: bool) -> FrameResult:
        points = labels = boxes = None
        if clicks.points is not None:
            points = [[clicks.points.astype(np.float32).tolist()]]
            labels = [[clicks.labels.astype(np.int64).tolist()]]
        if clicks.box is not None:
            boxes = [[clicks.box.astype(np.float32).tolist()]]
        self.processor.add_inputs_to_inference_session(
            session.inner, frame_idx=clicks.frame, obj_ids=obj_id, input_points=points, input_labels=labels,
            input_boxes=boxes, clear_old_inputs=clear_old_points)
        session.tasks[obj_id] = "mask"
        return self._run_prompt(session, clicks.frame)

    def _add_mask(self, session: EdgeTamSession, obj_id: int, frame_idx: int, mask: torch.Tensor) -> FrameResult:
        inner = session.inner
        known = obj_id in inner._obj_id_to_idx
        tracked = known and frame_idx in inner.frames_tracked_per_obj[inner.obj_id_to_idx(obj_id)]
        if not tracked and not bool(mask.any()):
            raise PromptError(f"the mask for object {obj_id} on frame {frame_idx} is empty; "
                              "an empty mask can only mark a tracked object as absent on a tracked frame")
        self.processor.add_inputs_to_inference_session(inner, frame_idx=frame_idx, obj_ids=obj_id,
                                                       input_masks=mask)
        session.tasks[obj_id] = "mask"
        return self._run_prompt(session, frame_idx)

    def _run_prompt(self, session: EdgeTamSession, frame_idx: int) -> FrameResult:
        """The prompted frame through the model: every object's output there."""
        return self._track_frame(session, frame_idx, reverse=False)

    def _track_frame(self, session: EdgeTamSession, frame_idx: int, reverse: bool) -> FrameResult:
        """Every object on one frame, by the rules of transformers' `EdgeTamVideoModel.forward`: an object with
        new inputs there is prompted, one with a prompt there keeps its output, the others are tracked; each
        output is stored as memory. Its own loop because transformers' stacks a mask prompt's object score and
        a decoded one's in different shapes and fails on frames that hold both."""
        inner = session.inner
        masks, scores = [], []
        with self.autocast():
            for obj_idx, obj_id in enumerate(inner.obj_ids):
                out, prompted = self._object_on_frame(session, obj_idx, obj_id, frame_idx, reverse)
                masks.append(out["pred_masks"])
                scores.append(out["object_score_logits"].reshape(-1)[:1])
                if not prompted:
                    inner.frames_tracked_per_obj[obj_idx][frame_idx] = {"reverse": reverse}
        if not masks:
            return self._result(session, frame_idx, [], torch.zeros(0, 1, 1, 1), torch.zeros(0))
        return self._result(session, frame_idx, list(inner.obj_ids), torch.cat(masks), torch.cat(scores))

    def _object_on_frame(self, session: EdgeTamSession, obj_idx: int, obj_id: int, frame_idx: int,
                         reverse: bool) -> tuple[dict, bool]:
        """One object's output on a frame and whether it is the frame's initial prompt."""
        inner = session.inner
        new_inputs = obj_id in inner.obj_with_new_inputs
        stored = inner.output_dict_per_obj[obj_idx]["cond_frame_outputs"].get(frame_idx)
        if stored is not None and not new_inputs:
            return stored, True
        points = masks = None
        is_init = False
        if new_inputs:
            is_init = frame_idx not in inner.frames_tracked_per_obj[obj_idx]
            reverse = reverse and not is_init
            points = inner.point_inputs_per_obj[obj_idx].get(frame_idx)
            masks = inner.mask_inputs_per_obj[obj_idx].get(frame_idx)
            if points is not None or masks is not None:
                inner.obj_with_new_inputs.remove(obj_id)
        out = self.model._run_single_frame_inference(
            inference_session=inner, obj_idx=obj_idx, frame_idx=frame_idx, batch_size=1,
            is_init_cond_frame=is_init, point_inputs=points, mask_inputs=masks, reverse=reverse,
            run_mem_encoder=True, streaming=session.is_stream)
        inner.store_output(obj_idx, frame_idx, output_value=out, is_conditioning_frame=is_init)
        return out, is_init

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video(self, session: EdgeTamSession, start_frame_idx: Optional[int] = None,
                           max_frame_num_to_track: Optional[int] = None,
                           reverse: bool = False) -> Iterator[FrameResult]:
        """Track every object from `start_frame_idx` (default: the earliest prompted frame), forward or in
        reverse, over at most `max_frame_num_to_track` further frames."""
        if session.is_stream:
            raise RuntimeError("a stream has no video to propagate through: push its frames (push_frame)")
        self._check_prompted(session)
        start = None if start_frame_idx is None else frame_index(start_frame_idx, session.num_frames)
        if start is None:
            start = min(t for outputs in session.inner.output_dict_per_obj.values()
                        for t in outputs["cond_frame_outputs"])
        for frame_idx in propagation_order(start, max_frame_num_to_track, reverse, session.num_frames):
            result = self._track_frame(session, frame_idx, reverse)
            self._forget_unreachable(session, frame_idx, reverse)
            yield result

    # ------------------------------------------------------------------ editing
    @torch.inference_mode()
    def remove_object(self, session: EdgeTamSession, obj_id: int, strict: bool = True,
                      need_output: bool = True) -> tuple[list[int], list[FrameResult]]:
        """Remove an object and all it knows. Returns the remaining object ids and, for the frames where it had
        prompts, the other objects' results there (EdgeTAM tracks each object on its own: they are unchanged)."""
        inner = session.inner
        if obj_id not in inner._obj_id_to_idx:
            if strict:
                raise UnknownObjectError(f"object {obj_id} is not in this session (objects: {session.obj_ids})")
            return session.obj_ids, []
        idx = inner._obj_id_to_idx[obj_id]
        prompted = sorted(set(inner.point_inputs_per_obj[idx]) | set(inner.mask_inputs_per_obj[idx]))
        _drop_object(inner, obj_id)
        session.tasks.pop(obj_id, None)
        if not need_output or not session.obj_ids:
            return session.obj_ids, []
        return session.obj_ids, [self._stored_result(session, t) for t in prompted]

    # ------------------------------------------------------------------ helpers
    def prepare_frame(self, frame: np.ndarray) -> torch.Tensor:
        """One RGB frame as the model takes it: the video processor's resize and normalisation, [3, S, S]."""
        video = np.array(frame, copy=True)[None]  # decoded frames may be read-only; the processor wants its own
        return self.processor.video_processor(videos=[video], return_tensors="pt").pixel_values_videos[0][0]

    def _new_inner_session(self) -> Any:
        device = self.device
        return self.processor.init_video_session(inference_device=device, video_storage_device="cpu")

    def _check_object(self, obj_id, task: Optional[str]) -> int:
        if task is not None and task != "mask":
            raise PromptError(f"EdgeTAM tracks masks only; task {task!r} needs sam2++")
        return object_id(obj_id)

    def _prompt_frame(self, session: EdgeTamSession, frame_idx) -> int:
        frame_idx = frame_index(frame_idx, session.num_frames)
        if session.is_stream and frame_idx not in session.inner.processed_frames:
            raise PromptError(f"frame {frame_idx} has left the stream's history (the last {session.history} "
                              "frames can be prompted)")
        return frame_idx

    def _check_stream_frame(self, session: EdgeTamSession, frame) -> np.ndarray:
        """A pushed frame checked as VideoPredictor's are (MediaError); the first one gives the stream its size."""
        if not session.is_stream:
            raise ValueError("push_frame takes a stream (init_stream); a video is tracked by propagate_in_video")
        size = (session.video_height, session.video_width) if session.video_height else None
        frame = checked_frame(frame, size)
        if size is None:
            session.video_height, session.video_width = int(frame.shape[0]), int(frame.shape[1])
            session.inner.video_height, session.inner.video_width = session.video_height, session.video_width
        return frame

    def _check_prompted(self, session: EdgeTamSession) -> None:
        inner = session.inner
        if not inner.obj_ids:
            raise RuntimeError("no object has a prompt yet; add points, a box or a mask first")
        for obj_id in inner.obj_ids:
            if not inner.output_dict_per_obj[inner.obj_id_to_idx(obj_id)]["cond_frame_outputs"]:
                raise RuntimeError(f"object {obj_id} has no prompt; add points, a box or a mask for it")

    def _forget_unreachable(self, session: EdgeTamSession, frame_idx: int, reverse: bool) -> None:
        """Drop tracked outputs that neither this propagation's next frames nor a propagation from a prompted
        frame (either way) read (as VideoPredictor's eviction)."""
        direction, reach = (-1 if reverse else 1), self.memory_reach
        for outputs in session.inner.output_dict_per_obj.values():
            near_prompts = [t for t in outputs["cond_frame_outputs"]]
            tracked = outputs["non_cond_frame_outputs"]
            for t in [t for t in tracked if (frame_idx - t) * direction > reach]:
                if all(abs(t - c) > reach for c in near_prompts):
                    del tracked[t]

    def _forget_old_stream_frames(self, session: EdgeTamSession, frame_idx: int) -> None:
        """A stream keeps its last `history` frames and the tracked outputs its next frames read."""
        inner = session.inner
        oldest_frame = frame_idx - session.history + 1
        for t in [t for t in dict.keys(inner.processed_frames) if t < oldest_frame]:
            dict.__delitem__(inner.processed_frames, t)
        oldest_output = frame_idx - max(session.history, self.memory_reach)
        for idx, outputs in inner.output_dict_per_obj.items():
            tracked = outputs["non_cond_frame_outputs"]
            for t in [t for t in tracked if t < oldest_output]:
                del tracked[t]
            seen = inner.frames_tracked_per_obj[idx]
            for t in [t for t in seen if t < oldest_frame]:
                del seen[t]

    def _stored_result(self, session: EdgeTamSession, frame_idx: int) -> FrameResult:
        """Every object's newest stored output on a frame (absent where it has none)."""
        inner, size = session.inner, self.image_size // 4
        masks, scores = [], []
        for obj_id in inner.obj_ids:
            outputs = inner.output_dict_per_obj[inner.obj_id_to_idx(obj_id)]
            out = outputs["cond_frame_outputs"].get(frame_idx) or outputs["non_cond_frame_outputs"].get(frame_idx)
            masks.append(out["pred_masks"].float().cpu() if out is not None
                         else torch.full((1, 1, size, size), NO_OBJ_SCORE))
            scores.append(out["object_score_logits"].float().cpu().reshape(1) if out is not None
                          else torch.full((1,), NO_OBJ_SCORE))
        return self._result(session, frame_idx, list(inner.obj_ids), torch.cat(masks), torch.cat(scores))

    def _result(self, session: EdgeTamSession, frame_idx: int, obj_ids: list[int], low_res: torch.Tensor,
                scores: torch.Tensor) -> FrameResult:
        """Low-resolution logits [N, 1, s, s] at video resolution (the processor's upscaling), as a FrameResult."""
        h, w = session.video_height, session.video_width
        if len(obj_ids):
            logits = self.processor.post_process_masks([low_res.float()], original_sizes=[[h, w]],
                                                       binarize=False)[0][:, 0].cpu()
        else:
            logits = torch.zeros(0, h, w)
        boxes, points = derived_boxes_and_points(logits)
        return FrameResult(frame_idx, obj_ids, logits, scores.float().cpu(), boxes, points,
                           [session.tasks.get(i, "mask") for i in obj_ids])


def _drop_object(inner: Any, obj_id: int) -> None:
    """Remove an object from transformers' session, renumbering the others' per-object state (the session keys
    it by position and has no removal of its own)."""
    remaining = [i for i in inner.obj_ids if i != obj_id]
    old_index = {i: inner._obj_id_to_idx[i] for i in remaining}
    per_object = ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj")
    kept = {name: [getattr(inner, name)[old_index[i]] for i in remaining] for name in per_object}
    inner._obj_id_to_idx.clear()
    inner._obj_idx_to_id.clear()
    for new, i in enumerate(remaining):
        inner._obj_id_to_idx[i] = new
        inner._obj_idx_to_id[new] = i
    inner.obj_ids = list(remaining)
    for name in per_object:
        setattr(inner, name, dict(enumerate(kept[name])))
    inner.obj_with_new_inputs = [i for i in inner.obj_with_new_inputs if i != obj_id]
