"""Predictors and helpers for the app's hardening tests.

- `StandInModels`: a model provider (`sam2_plus.provider.ModelProvider`) handing out stand-in predictors, passed to
  the service, a session or the app instead of the real `ModelCache`.
- `PromptsAsCalls`: a stand-in's `add_prompt` as its `add_new_mask` / `add_new_points_or_box` call.
- `QuickPredictor`: no network at all; each object's mask is the region of its prompt (its box, a disc around
  its first positive click, or its mask), shifted one pixel right per frame away from the prompted frame. So a
  result can be checked against the request that produced it, in milliseconds. Its image predictor (for the
  previews) is a `QuickImagePredictor`.
- `QuickImagePredictor`: the image predictor's API without a network: one click gives three candidates, discs of
  CLICK_RADIUS (predicted IoU 0.9, the highest: QuickPredictor's disc), twice and three times that radius; more
  clicks or a box one mask (the disc, or the box).
- `VanishingPredictor`: QuickPredictor with the objects absent on given frames (lost, then reappeared).
- `EnteringPredictor`: QuickPredictor whose objects prompted after frame 0 enter a few frames before their prompt
  (absent earlier), and whose backward pass stops after `max_frame_num_to_track` frames (discovery's backfill).
- `GranularPredictor`: QuickPredictor whose point and box objects come back as SAM 2++'s point and box tasks may
  give them: a heatmap without a pixel above zero, a presence probability of 0.99995, and the point (the
  heatmap's peak) or the box (the box head's).
- `FailingPredictor`: wraps any predictor; its propagation raises a given error when it reaches a frame (the
  frames before it come from the wrapped predictor).
- `StreamingPredictor`: QuickPredictor's streaming side (`init_stream`, `push_frame`, `remove_object`): frames
  pushed one at a time, prompts on any of the last `history` pushed frames (an older one is refused as the real
  one refuses it), `on_push` called before each pushed frame is "tracked" (pacing, failures).
- `HeldFrame`: an `on_frame` pacing: `seconds` a frame, and held before frame `held` until the test lets it go.
- `launch_app`: the app launched in-process on 127.0.0.1 at a free port (with a model provider of the test's).
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Iterator, Optional

import cv2
import numpy as np
import torch

from sam2_plus.discovery.finder import build_finder
from sam2_plus.image.predictor import ImagePredictor
from sam2_plus.prompts import PromptError
from sam2_plus.provider import shared_models
from sam2_plus.video.predictor import FrameResult

CLICK_RADIUS = 6


class StandInModels:
    """A model provider for tests: every call of `video_predictor` gives `predictor`, or what `make(model, device,
    weights, motion_aware)` gives (or raises, as an unavailable checkpoint does); with neither, the real shared
    ModelCache's predictor. `use` swaps what it gives (a server shared by several tests); `calls` counts the
    calls. `detector` gives the text detector set with `use_detector` (a stand-in, or what `make(checkpoint,
    device)` gives or raises); with neither, the real shared cache's; `detector_calls` counts its calls."""

    def __init__(self, predictor=None, make=None, detector=None):
        self.calls = self.detector_calls = 0
        self.use(predictor, make)
        self.use_detector(detector)

    def use(self, predictor=None, make=None) -> None:
        self.make = make if make is not None else (None if predictor is None else (lambda *key: predictor))

    def video_predictor(self, model, device=None, weights=None, motion_aware=False):
        self.calls += 1
        if self.make is None:
            return shared_models().video_predictor(model, device, weights, motion_aware)
        return self.make(model, device, weights, motion_aware)

    def image_predictor(self, model, device=None, weights=None):
        """The real shared cache's image predictor (the still-image stand-ins are in segment_fakes.py)."""
        self.calls += 1
        return shared_models().image_predictor(model, device, weights)

    def use_detector(self, detector=None, make=None) -> None:
        self.make_detector = make if make is not None else (None if detector is None else (lambda *key: detector))

    def detector(self, checkpoint, device=None):
        self.detector_calls += 1
        if self.make_detector is None:
            return shared_models().detector(checkpoint, device)
        return self.make_detector(checkpoint, device)

    def use_finder(self, finder=None) -> None:
        """What `finder` gives from now on: a finder, or a function of the settings making one (None: the real
        finder over the shared cache's image predictor, with this provider's detector; discovery_fakes.py has
        stand-ins)."""
        self._finder = finder

    def finder(self, settings, model, device=None, weights=None):
        found = getattr(self, "_finder", None)
        if found is None:
            if self.make_detector is None or settings.mode != "text":
                return shared_models().finder(settings, model, device, weights)
            images = ImagePredictor(shared_models().image_predictor(model, device, weights).model, resample="bicubic")
            return build_finder(settings, images, self.detector(settings.detector, device))
        return found if hasattr(found, "find") else found(settings)


class PromptsAsCalls:
    """The predictor's `add_prompt` (a checked prompt of the prompts JSON) for stand-ins that implement the
    API's `add_new_mask` and `add_new_points_or_box`."""

    def add_prompt(self, state, obj_id, task, prompt):
        if prompt.mask is not None:
            return self.add_new_mask(state, prompt.frame, obj_id, prompt.mask, task=task)
        return self.add_new_points_or_box(state, prompt.frame, obj_id, points=prompt.points, labels=prompt.labels,
                                          box=prompt.box, task=task)


def disc(height: int, width: int, x: float, y: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2


class QuickImagePredictor:
    """The image predictor's API as previews use it (set_image, set_features, to_model_coords, decode) without a
    network (module doc). Its `model` answers SAM 2's multimask rule: one click and no box."""

    device = torch.device("cpu")
    image_size = 1024
    IOUS = (0.9, 0.8, 0.7)
    model = SimpleNamespace(tracker_cfg=SimpleNamespace(pred_obj_scores=True),
                            use_multimask=lambda task, init, points: points is not None and points.num_points == 1)

    def __init__(self):
        self.size, self.backbone = None, None

    def set_image(self, image):
        self.size = tuple(np.asarray(image).shape[:2])
        self.backbone = {"backbone_fpn": [torch.zeros(4)]}  # cached by the app like real features

    def set_features(self, backbone, size):
        self.size, self.backbone = tuple(size), backbone

    def to_model_coords(self, coords, size):
        height, width = size
        return coords.float() / torch.tensor([width, height], dtype=torch.float32) * self.image_size

    def decode(self, coords, labels, boxes=None, mask_input=None, multimask_output=True):
        height, width = self.size
        scale = torch.tensor([width, height], dtype=torch.float32) / self.image_size
        if boxes is not None:
            x1, y1, x2, y2 = (int(round(float(v))) for v in (boxes.reshape(2, 2) * scale).reshape(4))
            masks = np.zeros((1, height, width), bool)
            masks[0, y1:y2, x1:x2] = True
        else:
            points = (coords[0] * scale).tolist()
            x, y = next(p for p, label in zip(points, labels[0].tolist()) if label)
            radii = (1, 2, 3) if multimask_output else (1,)
            masks = np.stack([disc(height, width, x, y, CLICK_RADIUS * k) for k in radii])
        side = self.image_size // 4
        low_res = np.stack([cv2.resize(np.where(m, 5.0, -5.0).astype(np.float32), (side, side),
                                       interpolation=cv2.INTER_LINEAR) for m in masks])
        return SimpleNamespace(unclamped_logits=torch.from_numpy(low_res)[None],
                               ious=torch.tensor([self.IOUS[:len(masks)]]), object_scores=torch.tensor([[3.0]]))


class QuickPredictor(PromptsAsCalls):
    device = torch.device("cpu")

    def __init__(self, on_frame=None):
        self.on_frame = on_frame  # called with each frame index before it is "tracked"

    def image_predictor(self):
        return QuickImagePredictor()

    def init_state(self, frames):
        return {"size": (frames.info.height, frames.info.width), "num_frames": frames.info.num_frames, "objects": {}}

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None, box=None, task=None):
        height, width = state["size"]
        mask = np.zeros((height, width), bool)
        if box is not None:
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            mask[y1:y2, x1:x2] = True
        else:
            positives = [p for p, label in zip(points, labels if labels is not None else [1] * len(points)) if label]
            x, y = (float(v) for v in positives[0])
            mask = disc(height, width, x, y, CLICK_RADIUS)
        return self._prompt(state, frame_idx, obj_id, mask, task)

    def add_new_mask(self, state, frame_idx, obj_id, mask, task=None):
        return self._prompt(state, frame_idx, obj_id, np.asarray(mask, bool), task)

    def _prompt(self, state, frame_idx, obj_id, mask, task):
        state["objects"][obj_id] = (task or "mask", frame_idx, mask)
        return self._result(state, frame_idx)

    def propagate_in_video(self, state, start_frame_idx=None, reverse=False, max_frame_num_to_track=None):
        first = start_frame_idx if start_frame_idx is not None else min(f for _, f, _ in state["objects"].values())
        last = -1 if reverse else state["num_frames"]
        for frame_idx in range(first, last, -1 if reverse else 1):
            if self.on_frame is not None:
                self.on_frame(frame_idx)
            yield self._result(state, frame_idx)

    def _result(self, state, frame_idx):
        ids = list(state["objects"])
        masks = [np.roll(mask, abs(frame_idx - prompted), axis=1) for _, prompted, mask in state["objects"].values()]
        logits = torch.from_numpy(np.where(np.stack(masks), 5.0, -5.0).astype(np.float32))
        n = len(ids)
        return FrameResult(frame_idx, ids, logits, torch.full((n,), 3.0), torch.zeros(n, 4), torch.zeros(n, 2),
                           [task for task, _, _ in state["objects"].values()])


class StreamingPredictor(QuickPredictor):
    """QuickPredictor's results for frames pushed one at a time (module doc)."""

    def __init__(self, on_push=None):
        super().__init__()
        self.on_push = on_push
        self.pushed = 0

    def init_stream(self, history=30):
        return {"size": None, "num_frames": 0, "objects": {}, "history": history}

    def push_frame(self, state, frame):
        if self.on_push is not None:
            self.on_push(state["num_frames"])
        state["size"] = tuple(np.asarray(frame).shape[:2])
        state["num_frames"] += 1
        self.pushed += 1
        return self._result(state, state["num_frames"] - 1)

    def add_prompt(self, state, obj_id, task, prompt):
        oldest = state["num_frames"] - state["history"]
        if not oldest <= prompt.frame < state["num_frames"]:
            raise PromptError(f"frame {prompt.frame} is not held: the stream holds frames {max(oldest, 0)} to "
                              f"{state['num_frames'] - 1}")
        return super().add_prompt(state, obj_id, task, prompt)

    def remove_object(self, state, obj_id):
        state["objects"].pop(obj_id)

    def _result(self, state, frame_idx):
        if state["objects"]:
            return super()._result(state, frame_idx)
        height, width = state["size"]
        return FrameResult(frame_idx, [], torch.zeros(0, height, width), torch.zeros(0), torch.zeros(0, 4),
                           torch.zeros(0, 2), [])


class VanishingPredictor(QuickPredictor):
    """QuickPredictor whose objects are absent (negative logits and score) on the frames in `absent`."""

    def __init__(self, absent, on_frame=None):
        super().__init__(on_frame)
        self.absent = set(absent)

    def _result(self, state, frame_idx):
        result = super()._result(state, frame_idx)
        if frame_idx in self.absent:
            return FrameResult(frame_idx, result.obj_ids, -result.mask_logits.abs(), -result.object_scores,
                               result.boxes, result.points, result.tasks)
        return result


class EnteringPredictor(QuickPredictor):
    """QuickPredictor whose objects first prompted on a frame f > 0 are absent before frame f - `entry` (they
    enter the scene there); a backward pass tracks at most `max_frame_num_to_track` frames past its start."""

    def __init__(self, entry: int = 3, on_frame=None):
        super().__init__(on_frame)
        self.entry = entry

    def propagate_in_video(self, state, start_frame_idx=None, reverse=False, max_frame_num_to_track=None):
        for count, result in enumerate(super().propagate_in_video(state, start_frame_idx, reverse)):
            if max_frame_num_to_track is not None and count > max_frame_num_to_track:
                return
            yield result

    def _result(self, state, frame_idx):
        result = super()._result(state, frame_idx)
        entered = torch.tensor([prompted == 0 or frame_idx >= prompted - self.entry
                                for _, prompted, _ in state["objects"].values()], dtype=torch.bool)
        if entered.all():
            return result
        sign = torch.where(entered, 1.0, -1.0)
        return FrameResult(frame_idx, result.obj_ids, result.mask_logits.abs() * sign[:, None, None],
                           result.object_scores.abs() * sign, result.boxes, result.points, result.tasks)


class GranularPredictor(QuickPredictor):
    """QuickPredictor, except for point and box objects: their logits are a heatmap peaking at -0.5 (no mask
    pixel) at the centre of the region QuickPredictor gives them, their presence logit is 10 (probability
    0.99995), their point that peak and their box the region's bounding box."""

    PRESENCE = 10.0

    def _result(self, state, frame_idx):
        result = super()._result(state, frame_idx)
        logits, scores = result.mask_logits.clone(), result.object_scores.clone()
        points, boxes = result.points.clone(), result.boxes.clone()
        height, width = state["size"]
        yy, xx = np.mgrid[:height, :width]
        for i, (task, prompted, mask) in enumerate(state["objects"].values()):
            if task == "mask":
                continue
            ys, xs = np.nonzero(np.roll(mask, abs(frame_idx - prompted), axis=1))
            cx, cy = float(xs.mean()), float(ys.mean())
            logits[i] = torch.from_numpy((-0.5 - 0.01 * ((xx - cx) ** 2 + (yy - cy) ** 2)).astype(np.float32))
            scores[i], points[i] = self.PRESENCE, torch.tensor([cx, cy])
            boxes[i] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        return FrameResult(frame_idx, result.obj_ids, logits, scores, boxes, points, result.tasks)


class FailingPredictor:
    """`predictor`, except that its propagation raises `error` when it reaches frame `frame`."""

    def __init__(self, predictor, frame: int, error: BaseException):
        self.predictor, self.frame, self.error = predictor, frame, error
        self.failures = 0

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def propagate_in_video(self, state, **kwargs):
        for result in self.predictor.propagate_in_video(state, **kwargs):
            if result.frame_idx == self.frame:
                self.failures += 1
                raise self.error
            yield result


class HeldFrame:
    """A stand-in's `on_frame`: each frame takes `seconds`, except frame `held`, where the run waits (`there` is
    set) until `go_on` is set (at most `hold` seconds)."""

    def __init__(self, held: int, seconds: float, hold: float = 120.0) -> None:
        self.held, self.seconds, self.hold = held, seconds, hold
        self.there, self.go_on = threading.Event(), threading.Event()

    def __call__(self, frame_idx: int) -> None:
        if frame_idx == self.held:
            self.there.set()
            self.go_on.wait(self.hold)
        else:
            time.sleep(self.seconds)


def wait_for(condition, timeout: float = 30.0) -> bool:
    """Whether `condition()` came true within `timeout` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def launch_app(limits, monkeypatch_context, app_tmp, heartbeat: Optional[float] = None,
               models=None) -> Iterator[str]:
    """The app with `limits` on 127.0.0.1 (seeded weights, files under `app_tmp`, previews and jobs on `models`:
    default, the real shared ModelCache); yields its URL."""
    patch = monkeypatch_context
    patch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    patch.setenv("SAM2PLUS_APP_TMP", str(app_tmp))
    patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    if heartbeat is not None:  # how soon Gradio notices that a client went away
        patch.setenv("GRADIO_HEARTBEAT_INTERVAL", str(heartbeat))
    import app

    demo = app.build_demo(limits, models)
    port = free_port()
    app.launch(demo, limits, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
