"""Building the network alone: a model name and a weights source -> a `SAM2Model` in eval mode. The video
and the image predictors both build on it."""

from __future__ import annotations

import torch

from .config import canonical_model_name, load_config
from .modeling.sam2_model import SAM2Model
from .weights import WeightsSource, apply_weights, parse_weights_spec, weights_from_env


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _weights_source(checkpoint) -> WeightsSource:
    if checkpoint is None:
        return WeightsSource("untrained")
    if isinstance(checkpoint, WeightsSource):
        return checkpoint
    if checkpoint == "env":
        return weights_from_env()
    return parse_weights_spec(str(checkpoint))


def build_model(model: str = "sam2++", checkpoint=None, device=None, postprocessing: bool = True) -> SAM2Model:
    """The network alone, in eval mode (for "edgetam", transformers' EdgeTamVideoModel). `checkpoint`: None (untrained, no download), "hub", a file path,
    "seeded[:SEED]", "env" (whatever SAM2PLUS_WEIGHTS says) or a WeightsSource."""
    cfg = load_config(canonical_model_name(model))
    target = torch.device(device) if device is not None else default_device()
    if cfg.is_edgetam:  # transformers' EdgeTamVideoModel (sam2_plus/edgetam_network.py)
        from .edgetam_network import build_edgetam

        return build_edgetam(cfg, _weights_source(checkpoint)).to(target).eval()
    net = SAM2Model(cfg, postprocessing=postprocessing)
    apply_weights(net, _weights_source(checkpoint))
    return net.to(target).eval()
