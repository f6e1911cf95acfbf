"""EdgeTAM's network: transformers' `EdgeTamVideoModel` of a configs/ YAML (the real model's sizes, or a test
model's `edgetam:` keywords over them), its weights from the Hub (a transformers model folder), a local folder or
safetensors file, or seeded / untrained stand-ins (no download: the RepViT backbone is built by timm without
pretrained weights). The predictor over it is sam2_plus/video/edgetam.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .weights import CheckpointError, WeightsSource, download_checkpoint, seeded_state_dict


class OnEdgeTamNetwork:
    """What a predictor over an `EdgeTamVideoModel` (its `model`) reads of the network."""

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> int:
        return int(self.model.config.image_size)


REPVIT_OUTPUTS = {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]}


def _transformers():
    try:
        import timm  # noqa: F401  (the backbone's builder; transformers imports it lazily)
        import transformers
    except ImportError as e:
        raise CheckpointError(f"EdgeTAM needs transformers>=5 and timm ({e}); pip install -r requirements.txt") from None
    return transformers


def edgetam_config(cfg: ModelConfig) -> Any:
    """The EdgeTamVideoConfig of `cfg`: transformers' defaults (the real EdgeTAM) with a RepViT-M1 backbone,
    under `cfg.edgetam`'s keywords (`backbone_args`: timm's RepVit arguments; the sub-configs as mappings)."""
    tf = _transformers()
    overrides = copy.deepcopy(cfg.edgetam or {})
    backbone = tf.TimmWrapperConfig(architecture="repvit_m1",
                                    model_args={**REPVIT_OUTPUTS, **overrides.pop("backbone_args", {})})
    vision = tf.EdgeTamVisionConfig(backbone_config=backbone, **overrides.pop("vision_config", {}))
    size = cfg.image_size
    prompt = {"image_size": size, **overrides.pop("prompt_encoder_config", {})}
    return tf.EdgeTamVideoConfig(vision_config=vision, prompt_encoder_config=prompt, image_size=size, **overrides)


def build_edgetam(cfg: ModelConfig, source: WeightsSource) -> torch.nn.Module:
    """The network in eval mode on the CPU (the caller moves it)."""
    tf = _transformers()
    if source.kind == "hub":
        return _from_folder(tf, Path(download_checkpoint(cfg)).parent)
    if source.kind == "file":
        path = Path(source.path)
        if path.is_dir():
            return _from_folder(tf, path)
        net = tf.EdgeTamVideoModel(edgetam_config(cfg)).eval()
        _load_safetensors(net, path)
        return net
    if source.kind == "seeded":
        net = tf.EdgeTamVideoModel(edgetam_config(cfg))
        net.load_state_dict(seeded_state_dict(net.state_dict(), source.seed), strict=True)
        return net.eval()
    return tf.EdgeTamVideoModel(edgetam_config(cfg)).eval()


def processor_for(net: torch.nn.Module) -> Any:
    """transformers' Sam2VideoProcessor at the network's input size (the one EdgeTAM's checkpoints name)."""
    tf = _transformers()
    size = {"height": net.config.image_size, "width": net.config.image_size}
    return tf.Sam2VideoProcessor(image_processor=tf.Sam2ImageProcessor(size=size),
                                 video_processor=tf.Sam2VideoVideoProcessor(size=size),
                                 target_size=net.config.image_size)


def _from_folder(tf, folder: Path) -> torch.nn.Module:
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} is no transformers EdgeTAM folder: it has no config.json")
    try:
        net, info = tf.EdgeTamVideoModel.from_pretrained(str(folder), output_loading_info=True)
    except Exception as e:  # unreadable or foreign checkpoint
        raise CheckpointError(f"cannot load EdgeTAM from {folder}: {e.__class__.__name__}: {e}") from None
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise CheckpointError(f"{folder} does not match EdgeTAM: " + "; ".join(
            f"{len(v)} {k.replace('_', ' ')} (first: {sorted(map(str, v))[0]})" for k, v in problems.items()))
    return net.eval()


def _load_safetensors(net: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    from .weights import load_state_dict_strict

    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"cannot read {path} as safetensors: {e.__class__.__name__}: {e}") from None
    load_state_dict_strict(net, state, origin=f"checkpoint {path}")
