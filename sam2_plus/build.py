"""Building predictors: `build_video_predictor(model, checkpoint, ...)` and `from_pretrained(repo_id)`."""

from __future__ import annotations

from .modeling.sam2_model import SAM2Model
from .network import build_model, default_device  # noqa: F401  (the package's builders, from one place)
from .video.predictor import VideoPredictor


def build_video_predictor(
    model: str = "sam2++",
    checkpoint=None,
    device=None,
    task: str = "mask",
    postprocessing: bool = True,
    motion_aware: bool = False,
    **options,
) -> VideoPredictor:
    """A video predictor for one of "sam2++", "sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus",
    "sam2.1-large", or "edgetam" (Meta's EdgeTAM through transformers: mask task and `precision` only; an
    EdgeTamPredictor, sam2_plus/video/edgetam.py, with the same prompt, propagation and streaming API).

    checkpoint: None (untrained weights, nothing downloaded), "hub" (the official checkpoint via the
    Hugging Face Hub), a checkpoint path, "seeded[:SEED]" (deterministic untrained stand-in weights), or
    "env" (the SAM2PLUS_WEIGHTS environment variable: hub, a path or seeded[:SEED]; default hub).
    task: the default output granularity of new objects: "mask", "box" or "point" (SAM 2++ only).
    postprocessing: SAM 2's interactive post-processing (dynamic multimask via stability, binarised
    memory masks from clicks, filling holes up to 8 pixels).
    options: add_all_frames_to_correct_as_cond, clear_non_cond_mem_around_input, non_overlap_masks,
    fill_hole_area, clear_non_cond_mem_for_multi_obj, keep_all_memory (default False: tracked frames no
    later frame reads are forgotten while propagating), precision ("auto": bfloat16 on CUDA, float32 on
    the CPU; "float32": exact; "bfloat16": fast mode, also on CPUs with bfloat16 instructions),
    max_batch_objects (how many objects of one task and memory layout are tracked together; default 16 on
    CUDA, 1 on the CPU),
    compile_image_encoder (default False: True compiles it with torch.compile on the first frame).
    """
    net = build_model(model, checkpoint, device, postprocessing)
    return predictor_over(net, task=task, postprocessing=postprocessing, motion_aware=motion_aware, **options)


def predictor_over(net: SAM2Model, task: str = "mask", postprocessing: bool = True, motion_aware: bool = False,
                   **options) -> VideoPredictor:
    """A predictor over an already built network (several predictors may share one: it holds no session
    state). The options are build_video_predictor's; over EdgeTAM's network, `precision` only."""
    if not isinstance(net, SAM2Model):
        return _edgetam_predictor(net, task, motion_aware, options)
    if motion_aware:
        from .video.motion import MotionAwarePredictor

        return MotionAwarePredictor(net, task=task, postprocessing=postprocessing, **options)
    return VideoPredictor(net, task=task, postprocessing=postprocessing, **options)


def _edgetam_predictor(net, task: str, motion_aware: bool, options: dict):
    from .video.edgetam import EdgeTamPredictor

    if motion_aware:
        raise ValueError("EdgeTAM has no motion-aware (SAMURAI) mode: it runs through transformers' own tracker; "
                         "use sam2.1-* or sam2++ for motion_aware")
    if task != "mask":
        raise ValueError(f"EdgeTAM tracks masks only; task {task!r} needs sam2++")
    unknown = sorted(set(options) - {"precision"})
    if unknown:
        raise ValueError(f"EdgeTAM's predictor takes precision only, not {', '.join(unknown)}")
    return EdgeTamPredictor(net, precision=options.get("precision", "auto"))


def from_pretrained(model_id: str = "MCG-NJU/SAM2-Plus", device=None, task: str = "mask", **kwargs) -> VideoPredictor:
    """The official checkpoint of a Hub model id ("MCG-NJU/SAM2-Plus", "facebook/sam2.1-hiera-tiny", ...)."""
    return build_video_predictor(model_id, checkpoint="hub", device=device, task=task, **kwargs)
