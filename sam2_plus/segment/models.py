"""Where the still-image jobs get their model: `network` is the one place (the process's one network of each
(model, device, weights), shared with the tracker, so that a ZeroGPU Space's preloaded networks serve them too)."""

from __future__ import annotations

from typing import Optional

from .. import service
from ..image.predictor import ImagePredictor
from ..modeling.sam2_model import SAM2Model
from ..weights import WeightsSource
from .inputs import FindOptions
from .proposals import MaskGenerator, build_generator
from .still import ImagePredictorLike


def network(model: str, device: Optional[str] = None, weights: Optional[WeightsSource] = None) -> SAM2Model:
    """The network of `model` on `device` with `weights` (built once per process)."""
    return service.get_predictor(model, device, weights).model


def image_predictor(model: str, device: Optional[str] = None,
                    weights: Optional[WeightsSource] = None) -> ImagePredictorLike:
    """A fresh image predictor (it holds one image's features) over the shared network."""
    return ImagePredictor(network(model, device, weights))


def mask_generator(options: FindOptions, device: Optional[str] = None,
                   weights: Optional[WeightsSource] = None) -> MaskGenerator:
    """The automatic mask generator of `options` over the shared network."""
    return build_generator(network(options.model, device, weights), options)
