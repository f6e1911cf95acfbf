"""Where the previews get their models: the one function that asks for a tracking predictor (the process's one
network of a model: `service.get_predictor`), and the image predictor over that network. A stand-in of the
predictor protocol brings its own (`image_predictor()`). (Find objects and the /segment_image API get theirs
from `sam2_plus.segment.models`.)"""

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

