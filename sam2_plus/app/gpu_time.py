"""The GPU time a job asks ZeroGPU for (a tracking job; below, the still-image jobs) (`spaces.GPU(duration=...)`). ZeroGPU ends a call that
overruns its request, so the estimate is generous; a job whose estimate exceeds SAM2PLUS_MAX_GPU_SECONDS is
refused before it starts (see plan.py).

    seconds = SETUP + frames * SAFETY * (MEDIA + model_frame_seconds * (ENCODER_SHARE + OBJECT_SHARE * objects))
    # with effects, MEDIA also counts EFFECT and, when the background is erased, CUTOUT of each format

Where the constants come from (set before this implementation ran on a GPU; bench/gpu_check.py on one H100
later measured SAM 2++ at 37.8 frames/s with one object and 13.5 with 16, where these constants give 29 and
3.4 before SAFETY, so the request stays generous on ZeroGPU's smaller slices of a GPU):

- MODEL_FRAME_SECONDS: one tracked frame with one object, 1 / the published speed of SAM 2.1 without
  torch.compile on an A100 (facebookresearch/sam2 README, "SAM 2.1 checkpoints": tiny 47.2, small 43.3,
  base+ 34.8, large 24.2 frames/s). SAM 2++ has no published speed; it is base+ with a second decoder and a
  box head, counted as base+ plus 20 %.
- ENCODER_SHARE / OBJECT_SHARE: how that time splits into the image encoder (once per frame) and memory
  attention + mask decoder + memory encoder (once per object). bench/bench_model.py on this implementation
  (SAM 2.1 tiny, 640x360, CPU) measured 5.3 s encoder and 4.5 s per object for one object, 6.6 s encoder and
  6.0 s per object for three: about half and half.
- MEDIA_FRAME_SECONDS: decoding, drawing and H.264 encoding of one frame, which stay on the CPU:
  bench/bench_media.py measured 4.3 + 2.8 + 11.3 ms at 1280x720; scaled by the pixel count to 1920x1080
  (the largest default size) and rounded up.
- EFFECT_FRAME_SECONDS / CUTOUT_FRAME_SECONDS: the effect MP4 and each cut-out format (sam2_plus/effects).
  bench/bench_effects.py at 1280x720 measured the effect MP4 at 0.86-1.15x the overlay's CPU time (render +
  H.264), so one more MEDIA_FRAME_SECONDS; a cut-out (composing with alpha + its encoder) at 1.4x (WebM),
  3.9x (PNG) and 5.8x (ProRes), times MEDIA_FRAME_SECONDS, rounded up.
- SAFETY: the published speeds come from a dedicated A100 and an optimised benchmark loop; ours is eager
  PyTorch on a shared ZeroGPU slice, with first-call CUDA warm-up and exports (mask PNGs, RLE) on top.
- SETUP_SECONDS: ZeroGPU attaching the GPU, moving the model there (base+ is 0.3 GB, large 0.9 GB) and
  opening the video.
"""

from __future__ import annotations

import math
from typing import Optional

from ..config import canonical_model_name
from ..discovery.settings import DiscoverySettings
from ..effects.settings import EffectSettings
from ..jobs import JobSpec
from ..segment.inputs import FindOptions

MODEL_FRAME_SECONDS = {
    "sam2.1-tiny": 1 / 47.2,
    "sam2.1-small": 1 / 43.3,
    "sam2.1-base-plus": 1 / 34.8,
    "sam2.1-large": 1 / 24.2,
    "sam2++": 1.2 / 34.8,
    "edgetam": 1 / 150.9,  # Meta's A100 figure
}
ENCODER_SHARE = 0.5
OBJECT_SHARE = 0.5
MEDIA_FRAME_SECONDS = 0.04
EFFECT_FRAME_SECONDS = 0.04
CUTOUT_FRAME_SECONDS = {"webm": 0.06, "mov": 0.24, "png": 0.16}
SAFETY = 3.0
SETUP_SECONDS = 20.0


def estimate_gpu_seconds(frames: int, objects: int, model: str, effects: Optional[EffectSettings] = None) -> int:
    """GPU seconds to request for tracking `objects` objects through `frames` frames (with `effects`)."""
    model_seconds = MODEL_FRAME_SECONDS.get(canonical_model_name(model), max(MODEL_FRAME_SECONDS.values()))
    per_frame = media_frame_seconds(effects) + model_seconds * (ENCODER_SHARE + OBJECT_SHARE * max(objects, 1))
    return int(math.ceil(SETUP_SECONDS + frames * per_frame * SAFETY))


def media_frame_seconds(effects: Optional[EffectSettings] = None) -> float:
    """Decoding, drawing and encoding one frame, with the effect video and cut-outs when effects are chosen."""
    seconds = MEDIA_FRAME_SECONDS
    if effects is not None:
        seconds += EFFECT_FRAME_SECONDS
        if effects.erases_background:
            seconds += sum(CUTOUT_FRAME_SECONDS[kind] for kind in effects.cutout)
    return seconds


def tracking_gpu_seconds(spec: JobSpec) -> int:
    """The GPU seconds of a checked tracking job: its frames and objects, its model and its effects, and its
    discovery's keyframes when it finds objects by itself."""
    request = spec.request
    frames, objects = request.info.num_frames, len(request.objects)
    if request.discovery is None:
        return estimate_gpu_seconds(frames, objects, request.model, spec.effects)
    found = min(ASSUMED_FOUND_OBJECTS, request.discovery.max_objects - objects)
    return (estimate_gpu_seconds(frames, objects + found, request.model, spec.effects)
            + discovery_gpu_seconds(request.discovery, frames, found, request.model))


# Discovery (sam2_plus/discovery) on a job's keyframes: the first frame, then every keyframe_interval frames. Each
# keyframe runs the finder on the features the tracker computed (no second encoder pass): Everything the
# automatic masks' decoder batches (FIND_BATCH_SECONDS per POINTS_PER_BATCH grid points), By text the detector
# once (DETECTOR_SECONDS) and one decoder batch. A new object is tracked backward at most one interval, in a
# session of its own (its frames encoded again). How many objects a job finds is not known before it runs:
# ASSUMED_FOUND_OBJECTS are counted as tracked on every frame and tracked backward once each. DETECTOR_SECONDS
# and ASSUMED_FOUND_OBJECTS are guesses, not measured on a GPU (Grounding DINO tiny is ~170 M parameters, a few
# times SAM 2.1 tiny's image encoder); like the constants above they are multiplied by SAFETY.
DETECTOR_SECONDS = 1.0
ASSUMED_FOUND_OBJECTS = 8


def discovery_gpu_seconds(settings: DiscoverySettings, frames: int, found: int, model: str) -> int:
    """The GPU seconds discovery adds to a job of `frames` frames that finds `found` objects."""
    keyframes = math.ceil(frames / settings.keyframe_interval)
    if settings.mode == "everything":
        per_keyframe = math.ceil(settings.points_per_side ** 2 / POINTS_PER_BATCH) * FIND_BATCH_SECONDS
    else:
        per_keyframe = DETECTOR_SECONDS + FIND_BATCH_SECONDS
    model_seconds = MODEL_FRAME_SECONDS.get(canonical_model_name(model), max(MODEL_FRAME_SECONDS.values()))
    backward = min(frames, max(found, 0) * settings.keyframe_interval) * model_seconds * (ENCODER_SHARE
                                                                                           + OBJECT_SHARE)
    return int(math.ceil((keyframes * per_keyframe + backward) * SAFETY))


# The still-image jobs. Segment: one image encoder pass and a decoder call per object, a preview's request. Find
# objects: ZeroGPU's start, then per crop an encoder pass and a decoder batch per 64 grid points (the generator's
# points_per_batch). Not measured on a GPU yet: set, like the constants above, well above the CPU's ratios
# (bench/bench_image.py) scaled to a GPU, times SAFETY.
SEGMENT_GPU_SECONDS = 30
FIND_SETUP_SECONDS = 20.0
FIND_ENCODER_SECONDS = 2.0
FIND_BATCH_SECONDS = 0.5
POINTS_PER_BATCH = 64


def segment_gpu_seconds(spec: JobSpec) -> int:
    """The GPU seconds of a segment_image job."""
    return SEGMENT_GPU_SECONDS


def find_frame_gpu_seconds(spec: JobSpec) -> int:
    """The GPU seconds of the page's Find on one frame (a find_frame job): one keyframe's discovery, the image
    encoder included (a Find has no tracker's features)."""
    settings = spec.request.settings
    return int(math.ceil(FIND_SETUP_SECONDS + FIND_ENCODER_SECONDS * SAFETY
                         + discovery_gpu_seconds(settings, 1, 0, spec.request.model)))


def find_gpu_seconds(spec: JobSpec) -> int:
    """The GPU seconds of a find_objects job."""
    return estimate_find_seconds(spec.request.options)


def live_gpu_seconds(max_seconds: float, max_frames: int) -> int:
    """The GPU seconds of a live session of at most `max_seconds` and `max_frames` processed frames: ZeroGPU's
    start, the session itself (the model waits for the camera inside it), then its files written from its frames."""
    return int(math.ceil(SETUP_SECONDS + max_seconds + max_frames * MEDIA_FRAME_SECONDS * SAFETY))


def live_session_gpu_seconds(spec, *args, **kwargs) -> int:
    """`spaces.GPU`'s duration of the live session `spec` (a `live.LiveSpec`; the GPU function's other arguments
    do not count)."""
    return live_gpu_seconds(spec.max_seconds, spec.max_frames)


def estimate_find_seconds(options: FindOptions) -> int:
    crops = sum(4 ** layer for layer in range(options.crop_n_layers + 1))
    batches = math.ceil(options.grid ** 2 / POINTS_PER_BATCH)
    return int(math.ceil(FIND_SETUP_SECONDS + crops * (FIND_ENCODER_SECONDS + batches * FIND_BATCH_SECONDS) * SAFETY))
