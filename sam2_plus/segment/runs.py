"""The two still-image jobs, checked where they enter and run with the model: the CLI and the app's GPU functions
both call these (plain functions of typed, picklable arguments: ZeroGPU runs them in another process).

    request = prepare_segment("photo.jpg", prompts_json, '{"model": "sam2++"}')   # no model needed
    outcome = run_segment_image(request, "out/", shared_models())                   # the model, then the files
    request = prepare_find("clip.mp4", 12, '{"density": "fine"}')
    outcome = run_find_objects(request, "out/", shared_models())

The model comes from the provider they are given (models.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..effects.settings import EffectError
from ..errors import OptionsError
from ..prompts import ObjectPrompts
from ..provider import ModelProvider
from ..service import check_model, check_weights, resolve_device
from ..weights import WeightsSource, weights_from_env
from .inputs import (FindOptions, SegmentOptions, StillImage, parse_find_options, parse_segment_options, read_frame,
                     read_image)
from .models import image_predictor, mask_generator
from .proposals import Proposal, find_objects
from .still import ImageSegmentation, check_choices, parse_image_prompts, segment_image
from .writers import WrittenFiles, write_proposals, write_segmentation

ImageInput = StillImage | str | os.PathLike


@dataclass(frozen=True, eq=False)
class SegmentRequest:
    """A still image and its objects' prompts, checked (`prepare_segment`)."""

    image: StillImage
    objects: tuple[ObjectPrompts, ...]
    options: SegmentOptions  # its model canonical, valid for every object's task
    weights: WeightsSource
    device: Optional[str] = None  # None: CUDA when available, else the CPU

    @property
    def model(self) -> str:
        return self.options.model


@dataclass(frozen=True, eq=False)
class FindRequest:
    """An image (or a video's frame) to find objects on, checked (`prepare_find`)."""

    image: StillImage
    options: FindOptions
    weights: WeightsSource
    device: Optional[str] = None

    @property
    def model(self) -> str:
        return self.options.model


@dataclass(frozen=True, eq=False)
class SegmentOutcome:
    result: ImageSegmentation
    files: WrittenFiles
    model_seconds: float  # the image encoder and the decoder calls (the network was built before)


@dataclass(frozen=True, eq=False)
class FindOutcome:
    proposals: tuple[Proposal, ...]
    files: WrittenFiles
    model_seconds: float


def prepare_segment(image: ImageInput, prompts: str | bytes | Mapping[str, Any] | Sequence[ObjectPrompts],
                    options: str | Mapping[str, Any] | SegmentOptions | None = None, *,
                    device: Optional[str] = None, weights: Optional[WeightsSource] = None) -> SegmentRequest:
    """The checked request: the image read (a path) or taken (a StillImage), the options and the prompts checked
    against it and the model. Raises MediaError, PromptError, OptionsError, TrackError or CheckpointError."""
    image = image if isinstance(image, StillImage) else read_image(image)
    parsed = parse_segment_options(options)
    objects = parse_image_prompts(prompts, image)
    check_model(parsed.model, {obj.obj_id: obj.task for obj in objects})
    check_choices(parsed, objects)
    if parsed.effects is not None:
        try:
            parsed.effects.check_objects(obj.obj_id for obj in objects)
        except EffectError as e:
            raise OptionsError(f"invalid options: {e}") from None
    return SegmentRequest(image, objects, parsed, _weights(weights), _device(device))


def prepare_find(source: ImageInput, frame: int = 0, options: str | Mapping[str, Any] | FindOptions | None = None,
                 *, device: Optional[str] = None, weights: Optional[WeightsSource] = None) -> FindRequest:
    """The checked request: frame `frame` of the source (an image, a video, a frame folder) or the StillImage,
    and the options. Raises MediaError, OptionsError, TrackError or CheckpointError."""
    parsed = parse_find_options(options)
    image = source if isinstance(source, StillImage) else read_frame(source, frame)
    check_model(parsed.model, {})
    return FindRequest(image, parsed, _weights(weights), _device(device))


def _weights(weights: Optional[WeightsSource]) -> WeightsSource:
    weights = weights or weights_from_env()
    check_weights(weights)
    return weights


def _device(device: Optional[str]) -> Optional[str]:
    resolve_device(device)  # TrackError for an unknown device or CUDA that is not there
    return device


def run_segment_image(request: SegmentRequest, out_dir: str | os.PathLike, models: ModelProvider) -> SegmentOutcome:
    """Segment a checked request's objects on `models` and write its files (writers.py) into `out_dir`."""
    predictor = image_predictor(models, request.model, request.device, request.weights)
    started = time.perf_counter()
    result = segment_image(request.image, request.objects, request.options, predictor)
    seconds = time.perf_counter() - started
    return SegmentOutcome(result, write_segmentation(result, Path(out_dir), request.options.effects), seconds)


def run_find_objects(request: FindRequest, out_dir: str | os.PathLike, models: ModelProvider) -> FindOutcome:
    """Find the objects of a checked request on `models` and write the proposals' files into `out_dir`."""
    generator = mask_generator(models, request.options, request.device, request.weights)
    started = time.perf_counter()
    proposals = tuple(find_objects(request.image, request.options, generator))
    seconds = time.perf_counter() - started
    files = write_proposals(proposals, request.image, request.options, request.model, Path(out_dir))
    return FindOutcome(proposals, files, seconds)
