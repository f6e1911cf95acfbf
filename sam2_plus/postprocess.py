"""Post-processing of low-resolution mask logits.

Two operations built on 8-connected component labelling are provided:

* :func:`fill_holes_in_mask_scores` -- what the video predictor does when
  post-processing is enabled: background regions (score <= 0) whose area is at
  most ``max_area`` pixels are turned into weak foreground (``fill_value``).
* :func:`remove_small_regions` -- what the image predictor does: small
  background holes are raised to ``threshold + 10`` and small foreground
  "sprinkles" are lowered to ``threshold - 10``.

:func:`connected_components` labels the components. Tensors on a CUDA device
use a small CUDA extension (``csrc/connected_components.cu``), compiled with
``torch.utils.cpp_extension.load`` on a background thread the first time it is
wanted. Until it is ready, where the tool chain (nvcc, ninja, a C++ compiler)
is missing (one log line says which), and wherever it fails, OpenCV's
``connectedComponentsWithStats`` on the CPU does the work, so no call ever
waits for a compiler.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

__all__ = [
    "connected_components",
    "fill_holes_in_mask_scores",
    "remove_small_regions",
    "cuda_extension_available",
    "missing_build_tools",
    "start_cuda_extension_build",
]

log = logging.getLogger(__name__)

# Set to a non-empty value other than "0" to never build or use the extension.
DISABLE_ENV_VAR = "SAM2_PLUS_DISABLE_CUDA_CC"

_CSRC_DIR = Path(__file__).resolve().parent.parent / "csrc"
_EXT_SOURCES = (
    _CSRC_DIR / "connected_components_binding.cpp",
    _CSRC_DIR / "connected_components.cu",
)
_EXT_NAME = "sam2_plus_connected_components"

_warned_runtime_failure = False


# ---------------------------------------------------------------------------
# CUDA extension loading
# ---------------------------------------------------------------------------


def _extension_disabled() -> bool:
    value = os.environ.get(DISABLE_ENV_VAR, "")
    return value not in ("", "0")


def missing_build_tools() -> list[str]:
    """What `torch.utils.cpp_extension.load` would lack to compile the kernel here (empty: nothing)."""
    from torch.utils import cpp_extension

    missing = []
    cuda_home = cpp_extension.CUDA_HOME
    if cuda_home is None or not os.access(os.path.join(cuda_home, "bin", "nvcc"), os.X_OK):
        missing.append("nvcc (the CUDA toolkit; set CUDA_HOME)")
    if shutil.which("ninja") is None:
        missing.append("ninja")
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        missing.append(f"a C++ compiler ({compiler})")
    return missing


class _ExtensionBuild:
    """The kernel's one build per process, on a background thread; callers never wait unless they ask to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._done = threading.Event()
        self.module = None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._done.is_set():
                return
            reason = self._cannot_build()
            if reason is not None:
                if reason:
                    log.warning("CUDA connected components: %s; mask post-processing uses OpenCV on the CPU", reason)
                self._done.set()
                return
            self._thread = threading.Thread(target=self._build, name="sam2plus-cuda-cc-build", daemon=True)
            self._thread.start()

    def get(self, wait: bool):
        self.start()
        if wait:
            self._done.wait()
        return self.module if self._done.is_set() else None

    @staticmethod
    def _cannot_build() -> Optional[str]:
        """Why no build is tried: "" for reasons not worth a log line (disabled, no GPU), None to build."""
        if _extension_disabled() or not torch.cuda.is_available():
            return ""
        if not all(path.is_file() for path in _EXT_SOURCES):
            return "its sources are not installed"
        missing = missing_build_tools()
        return f"cannot compile the kernel: {', '.join(missing)} missing" if missing else None

    def _build(self) -> None:
        try:
            from torch.utils import cpp_extension

            self.module = cpp_extension.load(
                name=_EXT_NAME,
                sources=[str(path) for path in _EXT_SOURCES],
                extra_cflags=["-O3"],
                extra_cuda_cflags=["-O3"],
                verbose=False,
            )
            log.info("CUDA connected components: kernel compiled and loaded")
        except Exception as exc:  # an incompatible toolkit, a compiler error, ...
            last_line = (str(exc).strip().splitlines() or [""])[-1]
            log.warning("CUDA connected components: the kernel did not compile (%s: %s); mask post-processing "
                        "uses OpenCV on the CPU", exc.__class__.__name__, last_line[:300])
        finally:
            self._done.set()


_extension = _ExtensionBuild()


def start_cuda_extension_build() -> None:
    """Begin compiling the CUDA kernel in the background (a no-op without CUDA or its tool chain)."""
    _extension.start()


def _load_cuda_extension(wait: bool = False):
    """The CUDA extension, or None: not wanted, not buildable here, failed, or (wait=False) still compiling."""
    return _extension.get(wait)


def cuda_extension_available() -> bool:
    """True if the CUDA extension is built and loaded here (waits for a build in progress)."""
    return _load_cuda_extension(wait=True) is not None


def _use_cuda_extension(mask: torch.Tensor) -> bool:
    return mask.is_cuda and _load_cuda_extension() is not None


# ---------------------------------------------------------------------------
# Connected components
# ---------------------------------------------------------------------------


def _connected_components_cuda(mask_u8: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    ext = _load_cuda_extension()
    if ext is None:
        raise RuntimeError("CUDA connected-components extension is not available")
    labels, areas = ext.connected_components(mask_u8)
    return labels, areas


def _connected_components_cpu(mask_u8: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - environment problem
        raise ImportError(
            "OpenCV (cv2) is required for CPU mask post-processing"
        ) from exc

    shape = mask_u8.shape
    images = mask_u8.detach().to("cpu").reshape(-1, shape[-2], shape[-1]).numpy()
    labels = np.zeros(images.shape, dtype=np.int32)
    areas = np.zeros(images.shape, dtype=np.int32)
    for i, image in enumerate(images):
        if not image.any():
            continue
        _, image_labels, stats, _ = cv2.connectedComponentsWithStats(
            np.ascontiguousarray(image), connectivity=8, ltype=cv2.CV_32S
        )
        component_areas = stats[:, cv2.CC_STAT_AREA].astype(np.int32, copy=True)
        # OpenCV's label 0 is the zero-valued (background) region.
        component_areas[0] = 0
        labels[i] = image_labels
        areas[i] = component_areas[image_labels]
    labels_t = torch.from_numpy(labels).reshape(shape)
    areas_t = torch.from_numpy(areas).reshape(shape)
    return labels_t.to(mask_u8.device), areas_t.to(mask_u8.device)


def connected_components(mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """8-connected components of binary masks.

    Args:
        mask: ``[N, 1, H, W]`` bool or uint8 tensor; non-zero pixels are
            foreground. (Any ``[N, C, H, W]`` works; every channel is labelled
            as its own image.)

    Returns:
        ``(labels, areas)``, both int32 ``[N, 1, H, W]`` on ``mask.device``.
        ``labels`` is > 0 on foreground pixels (same value within a component,
        different values for different components of the same image) and 0 on
        background; ``areas`` holds, for each foreground pixel, the pixel count
        of its component, and 0 on background. Label numbering is an
        implementation detail and differs between the CUDA and CPU paths.
    """
    global _warned_runtime_failure
    if mask.dim() != 4:
        raise ValueError(f"mask must have shape [N, C, H, W], got {tuple(mask.shape)}")
    mask_u8 = (mask != 0).to(torch.uint8).contiguous()

    if _use_cuda_extension(mask_u8):
        try:
            return _connected_components_cuda(mask_u8)
        except Exception as exc:
            if not _warned_runtime_failure:
                _warned_runtime_failure = True
                warnings.warn(
                    f"CUDA connected-components kernel failed ({exc}); "
                    "falling back to the CPU implementation.",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _connected_components_cpu(mask_u8)


# ---------------------------------------------------------------------------
# Mask post-processing
# ---------------------------------------------------------------------------


def _as_single_channel_batch(mask_scores: torch.Tensor) -> torch.Tensor:
    if mask_scores.dim() < 2:
        raise ValueError(
            f"mask scores must have at least 2 dims (..., H, W), got {tuple(mask_scores.shape)}"
        )
    h, w = mask_scores.shape[-2:]
    return mask_scores.reshape(-1, 1, h, w)


def fill_holes_in_mask_scores(
    mask_scores: torch.Tensor, max_area: int, fill_value: float = 0.1
) -> torch.Tensor:
    """Fills small background holes in mask logits (video predictor).

    Background is ``mask_scores <= 0``. Every 8-connected background component
    whose area is at most ``max_area`` pixels gets the score ``fill_value``
    (a small positive logit, so it becomes foreground); all other scores are
    unchanged. This includes background regions touching the image border:
    they are filled too if they are that small.

    Args:
        mask_scores: ``[N, 1, H, W]`` (or any ``[..., H, W]``) float logits.
        max_area: largest hole area (in pixels) that is filled; ``<= 0``
            returns the input unchanged.
        fill_value: score written into filled holes.

    Returns:
        Tensor with the shape, dtype and device of ``mask_scores``.
    """
    if max_area <= 0 or mask_scores.numel() == 0:
        return mask_scores
    flat = _as_single_channel_batch(mask_scores)
    labels, areas = connected_components(flat <= 0)
    is_hole = (labels > 0) & (areas <= max_area)
    filled = torch.where(is_hole, float(fill_value), flat)
    return filled.reshape(mask_scores.shape)


def remove_small_regions(
    mask_scores: torch.Tensor,
    max_hole_area: int,
    max_sprinkle_area: int,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Fills small holes and removes small sprinkles (image predictor).

    Both region kinds are found on the *input* scores:

    * holes: 8-connected components of ``mask_scores <= threshold`` with area
      ``<= max_hole_area`` are set to ``threshold + 10.0``;
    * sprinkles: 8-connected components of ``mask_scores > threshold`` with
      area ``<= max_sprinkle_area`` are set to ``threshold - 10.0``.

    A step is skipped when its area limit is ``<= 0``.

    Args:
        mask_scores: ``[..., H, W]`` float logits (e.g. ``[B, C, H, W]``; each
            ``H x W`` plane is processed separately).

    Returns:
        Tensor with the shape, dtype and device of ``mask_scores``.
    """
    do_holes = max_hole_area > 0
    do_sprinkles = max_sprinkle_area > 0
    if not (do_holes or do_sprinkles) or mask_scores.numel() == 0:
        return mask_scores

    flat = _as_single_channel_batch(mask_scores)
    n = flat.shape[0]
    binary = []
    if do_holes:
        binary.append(flat <= threshold)
    if do_sprinkles:
        binary.append(flat > threshold)
    # One labelling call for both region kinds.
    labels, areas = connected_components(torch.cat(binary, dim=0))

    result = flat
    offset = 0
    if do_holes:
        is_hole = (labels[:n] > 0) & (areas[:n] <= max_hole_area)
        result = torch.where(is_hole, float(threshold) + 10.0, result)
        offset = n
    if do_sprinkles:
        sl = slice(offset, offset + n)
        is_sprinkle = (labels[sl] > 0) & (areas[sl] <= max_sprinkle_area)
        result = torch.where(is_sprinkle, float(threshold) - 10.0, result)
    return result.reshape(mask_scores.shape)
