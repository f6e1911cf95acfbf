"""Where the page's GPU calls get their models: the one function that asks for a tracking predictor (the
process's one network of a model: `service.get_predictor`), and the image predictor and the automatic mask
generator over that network. A stand-in of the predictor protocol brings its own (`image_predictor()`,
`mask_generator(points_per_side=...)`)."""

from __future__ import annotations

from typing import Any, Optional

from .. import service
from ..weights import WeightsSource


def tracking_predictor(model: str, device: Optional[str], weights: Optional[WeightsSource],
                       motion_aware: bool = False) -> Any:
    return service.get_predictor(model, device, weights, motion_aware)


def image_predictor_for(predictor: Any) -> Any:
    """A fresh image predictor over a tracking predictor's network (it holds one image's state: one per call),
    resizing frames as the video loader does (bicubic), so that its features are the tracking run's."""
    own = getattr(predictor, "image_predictor", None)
    if own is not None:
        return own()
    from ..image.predictor import ImagePredictor

    return ImagePredictor(predictor.model, resample="bicubic")


def mask_generator_for(predictor: Any, points_per_side: int) -> Any:
    """The automatic mask generator over a tracking predictor's network, with SAM 2's defaults otherwise."""
    own = getattr(predictor, "mask_generator", None)
    if own is not None:
        return own(points_per_side=points_per_side)
    from ..image.automatic import AutomaticMaskGenerator

    return AutomaticMaskGenerator(predictor.model, points_per_side=points_per_side)
