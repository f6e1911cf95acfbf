"""The predictor's prompt inputs: what its Python API is given (pixels of the video, any array type) checked
against the task's rule (`prompt_rules.TASK_RULES`) into the one prompt type (`prompt_rules.FramePrompt`), and
then, like the prompts of the prompts JSON (checked by `prompts.parse_prompts` where they entered), turned into
model inputs in the model's image_size x image_size space.

    clicks = check_clicks(frame, points, labels, box, task, width, height)  # the API's clicks and/or box
    prompt = point_prompt(clicks, width, height, image_size, device)         # -> PointPrompt
    check_mask_task(task)                                                    # the API's mask: its task takes one
    mask = check_mask(mask, height, width)
    model_mask = mask_input(mask, image_size, device)                        # -> [1, 1, S, S]
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrackerConfig
from ..modeling.sam2_model import PointPrompt, gaussian_heatmap
from ..prompt_rules import TASK_RULES, FramePrompt, Misfit, misfit
from ..prompts import PromptError
from .results import mask_bbox

BOX_CORNER_LABELS = (2, 3)  # a box is two points with these labels: top-left, bottom-right


def point_prompt(prompt: FramePrompt, width: int, height: int, image_size: int, device: torch.device,
                 normalize_coords: bool = True) -> PointPrompt:
    """A prompt's clicks and/or box in model coordinates, the box first as two corner points (its coordinates are
    pixels of the video, or in [0, 1] when the caller's are normalised already: `normalize_coords=False`)."""
    points = np.zeros((0, 2), np.float32) if prompt.points is None else prompt.points
    labels = np.zeros(0, np.int32) if prompt.labels is None else prompt.labels
    if prompt.box is not None:
        points = np.concatenate([prompt.box.reshape(2, 2), points], axis=0)
        labels = np.concatenate([np.array(BOX_CORNER_LABELS, np.int32), labels])
    coords = torch.from_numpy(np.ascontiguousarray(points, np.float32))[None]
    if normalize_coords:
        coords = coords / torch.tensor([width, height], dtype=torch.float32)
    coords = coords * image_size
    return PointPrompt(coords.to(device), torch.from_numpy(np.asarray(labels, np.int32))[None].to(device))


def object_id(obj_id) -> int:
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
        raise PromptError(f"object ids are integers, got {obj_id!r}")
    return int(obj_id)


def frame_index(frame_idx, num_frames: int) -> int:
    if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
        raise PromptError(f"frame index must be an integer, got {frame_idx!r}")
    if not 0 <= frame_idx < num_frames:
        raise PromptError(f"frame index {frame_idx} is outside the video (0..{num_frames - 1})")
    return int(frame_idx)


def check_clicks(frame: int, points, labels, box, task: str, width: int, height: int,
                 normalize_coords: bool = True) -> FramePrompt:
    """The API's clicks and/or box for an object of `task` on `frame`, by the task's rule (prompt_rules: mask
    task, any clicks and/or a box; box task, exactly a box; point task, exactly one positive point).
    Coordinates are checked against the frame when they are pixels (`normalize_coords`)."""
    if labels is not None and points is None:
        raise PromptError("labels were given without points")
    if points is None and box is None:
        raise PromptError("give points or a box")
    pts, lbl = _checked_points(points, labels, width if normalize_coords else None, height)
    checked_box = None if box is None else _checked_box(box, width if normalize_coords else None, height)
    prompt = FramePrompt(frame, pts if len(pts) else None, lbl if len(pts) else None, checked_box)
    _check_fit(misfit(task, prompt.kinds, lbl), prompt.kinds)
    return prompt


def check_mask_task(task: str) -> None:
    """A mask for an object of `task`: the mask task takes it, the box task takes its bounding box."""
    rule = TASK_RULES[task]
    if "mask" not in rule.takes and not rule.mask_as_box:
        _check_fit(misfit(task, {"mask"}))


def _check_fit(problem: Optional[Misfit], kinds: frozenset[str] = frozenset()) -> None:
    """A prompt (holding `kinds`) that does not fit its task, said in the API's words: a box task's prompt without
    a box is told that it needs one, whatever else it holds."""
    if problem is None:
        return
    if problem.task == "box":
        missing = problem.what == "missing" or "box" not in kinds
        what = "needs a box (x1, y1, x2, y2)" if missing else "takes exactly a box, no points"
        raise PromptError(f"the box task {what}")
    if problem.what == "extra":
        raise PromptError(f"the point task takes one point per object, not a {problem.kind}")
    raise PromptError("the point task takes exactly one positive point per object and frame")


def _checked_points(points, labels, width: Optional[int], height: int) -> tuple[np.ndarray, np.ndarray]:
    pts = np.zeros((0, 2), np.float32) if points is None else _as_array(points, np.float32, "points")
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise PromptError(f"points must have shape [N, 2] (x, y), got {list(pts.shape)}")
    lbl = np.ones(len(pts), np.int32) if labels is None else _as_array(labels, np.int32, "labels").reshape(-1)
    if len(lbl) != len(pts):
        raise PromptError(f"{len(pts)} points but {len(lbl)} labels")
    if not np.isin(lbl, (0, 1)).all():
        raise PromptError(f"labels must be 1 (positive) or 0 (negative), got {lbl.tolist()}")
    if not np.isfinite(pts).all():
        raise PromptError("point coordinates must be finite numbers")
    if width is not None and len(pts) and (
            (pts[:, 0] < 0).any() or (pts[:, 0] > width).any() or (pts[:, 1] < 0).any() or (pts[:, 1] > height).any()):
        raise PromptError(f"points {pts.tolist()} lie outside the {width}x{height} frame")
    return pts, lbl


def _checked_box(box, width: Optional[int], height: int) -> np.ndarray:
    b = _as_array(box, np.float32, "box").reshape(-1)
    if b.size != 4 or not np.isfinite(b).all():
        raise PromptError(f"a box is 4 numbers x1, y1, x2, y2, got {np.asarray(box).tolist()}")
    if width is not None and ((b[[0, 2]] < 0).any() or (b[[0, 2]] > width).any()
                              or (b[[1, 3]] < 0).any() or (b[[1, 3]] > height).any()):
        raise PromptError(f"box {b.tolist()} lies outside the {width}x{height} frame")
    # corners in any order name the same box (the prompts JSON parser sorts them too)
    return np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])], np.float32)


def check_mask(mask, height: int, width: int) -> torch.Tensor:
    """The API's mask (HxW, or 1xHxW; nonzero = object) as a bool [H, W] tensor of the video's size."""
    m = mask.detach().cpu() if torch.is_tensor(mask) else torch.from_numpy(_as_array(mask, None, "mask"))
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2:
        raise PromptError(f"a mask is a 2-D HxW array, got shape {list(m.shape)}")
    if tuple(m.shape) != (height, width):
        raise PromptError(f"mask size {m.shape[1]}x{m.shape[0]} differs from the video's {width}x{height}")
    return m.bool()


def mask_input(mask, image_size: int, device: torch.device) -> torch.Tensor:
    """An HxW bool mask (tensor or array) as the model's [1, 1, S, S] 0/1 float mask."""
    m = (mask if torch.is_tensor(mask) else torch.from_numpy(np.asarray(mask, bool))).to(torch.float32)
    m = m[None, None].to(device)
    if m.shape[-2:] != (image_size, image_size):
        m = F.interpolate(m, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
        m = (m >= 0.5).float()
    return m


def box_of_mask(model_mask: torch.Tensor, device: torch.device) -> PointPrompt:
    """The box task's prompt for a mask: the bounding box of a [1, 1, S, S] model mask, in model pixels."""
    box = mask_bbox(model_mask[0, 0] > 0.5)
    if box is None:
        raise PromptError("the mask is empty: a box needs at least one mask pixel")
    coords = torch.tensor(box, dtype=torch.float32).reshape(1, 2, 2).to(device)
    return PointPrompt(coords, torch.tensor([BOX_CORNER_LABELS], dtype=torch.int32, device=device))


def point_heatmap(prompt: PointPrompt, cfg: TrackerConfig, image_size: int, device: torch.device) -> torch.Tensor:
    """SAM 2++'s mask input for a point prompt: a [1, 1, S, S] Gaussian heatmap around its first point."""
    x, y = prompt.coords[0, 0].tolist()
    heat = gaussian_heatmap(x, y, image_size, cfg.point_gaussian_radius, cfg.point_gaussian_sigma)
    return heat[None, None].to(device)


def _as_array(value, dtype, name: str) -> np.ndarray:
    try:
        arr = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        return arr.astype(dtype) if dtype is not None else arr
    except (TypeError, ValueError) as e:
        raise PromptError(f"{name} must be numeric: {e}") from None
