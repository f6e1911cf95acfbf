"""Where the still-image jobs get their model: the provider they are given (`sam2_plus.provider`), whose image
predictors share the tracker's network of each (model, device, weights), so that a ZeroGPU Space's preloaded
networks serve them too."""

from __future__ import annotations

from typing import Optional

from ..provider import ModelProvider
from ..weights import WeightsSource
from .inputs import FindOptions
from .proposals import MaskGenerator, build_generator
from .still import ImagePredictorLike


def image_predictor(models: ModelProvider, model: str, device: Optional[str] = None,
                    weights: Optional[WeightsSource] = None) -> ImagePredictorLike:
    """A fresh image predictor (it holds one image's features) over the provider's network."""
    return models.image_predictor(model, device, weights)


def mask_generator(models: ModelProvider, options: FindOptions, device: Optional[str] = None,
                   weights: Optional[WeightsSource] = None) -> MaskGenerator:
    """The automatic mask generator of `options` over the provider's network."""
    return build_generator(models.image_predictor(options.model, device, weights), options)
