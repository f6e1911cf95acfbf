"""Model configurations: plain YAML files in `configs/` read into dataclasses.

The YAML files hold what differs between models (trunk size, hub location, SAM 2++ extras); everything
the official SAM 2.1 / SAM 2++ configs share is a dataclass default here, so each default is written once.
A YAML file may override any field of any section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# Public model names -> config file. The names are the predictor API's (`build_video_predictor(model)`).
MODEL_CONFIG_FILES = {
    "sam2++": "sam2plus_hiera_b+.yaml",
    "sam2.1-tiny": "sam2.1_hiera_t.yaml",
    "sam2.1-small": "sam2.1_hiera_s.yaml",
    "sam2.1-base-plus": "sam2.1_hiera_b+.yaml",
    "sam2.1-large": "sam2.1_hiera_l.yaml",
    "edgetam": "edgetam.yaml",
}
# Models for tests: a micro network with the real one's blocks and keys, no official checkpoint (seeded or
# untrained weights only). Error messages never list them; the app offers them only with stand-in weights.
TEST_MODEL_CONFIG_FILES = {"test-micro": "test-micro.yaml", "test-edgetam": "test-edgetam.yaml"}
CONFIG_FILES = {**MODEL_CONFIG_FILES, **TEST_MODEL_CONFIG_FILES}  # every name load_config takes
MODEL_ALIASES = {
    "sam2plus": "sam2++",
    "sam2-plus": "sam2++",
    "MCG-NJU/SAM2-Plus": "sam2++",
    "facebook/sam2.1-hiera-tiny": "sam2.1-tiny",
    "facebook/sam2.1-hiera-small": "sam2.1-small",
    "facebook/sam2.1-hiera-base-plus": "sam2.1-base-plus",
    "facebook/sam2.1-hiera-large": "sam2.1-large",
    "facebook/EdgeTAM": "edgetam",
}
# What an object is tracked as (its granularity): every name in the package that means a task is one of these.
TASKS = ("mask", "box", "point")


@dataclass
class HubConfig:
    repo_id: str
    filename: str
    # files downloaded beside `filename` (a transformers model folder's config.json)
    companions: list[str] = field(default_factory=list)


@dataclass
class TrunkConfig:
    """Hiera trunk."""

    embed_dim: int = 112
    num_heads: int = 2
    stages: list[int] = field(default_factory=lambda: [2, 3, 16, 3])
    global_att_blocks: list[int] = field(default_factory=lambda: [12, 16, 20])
    window_pos_embed_bkg_spatial_size: list[int] = field(default_factory=lambda: [14, 14])
    window_spec: list[int] = field(default_factory=lambda: [8, 4, 14, 7])
    q_pool: int = 3
    q_stride: list[int] = field(default_factory=lambda: [2, 2])
    dim_mul: float = 2.0
    head_mul: float = 2.0


@dataclass
class NeckConfig:
    """FPN neck on top of the trunk."""

    d_model: int = 256
    backbone_channel_list: list[int] = field(default_factory=lambda: [896, 448, 224, 112])
    fpn_top_down_levels: list[int] = field(default_factory=lambda: [2, 3])
    fpn_interp_model: str = "nearest"
    scalp: int = 1  # drop this many lowest-resolution levels


@dataclass
class MemoryAttentionConfig:
    d_model: int = 256
    num_layers: int = 4
    dim_feedforward: int = 2048
    num_heads: int = 1
    rope_theta: float = 10000.0
    feat_sizes: list[int] = field(default_factory=lambda: [64, 64])
    kv_in_dim: int = 64
    activation: str = "relu"
    pos_enc_at_input: bool = True
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False


@dataclass
class MemoryEncoderConfig:
    out_dim: int = 64
    in_dim: int = 256
    fuser_layers: int = 2
    fuser_kernel_size: int = 7
    layer_scale_init_value: float = 1e-6
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1


@dataclass
class DecoderConfig:
    """The prompt encoder's and the mask decoder's sizes (shared by SAM 2.1's mask decoder and SAM 2++'s
    unified decoder)."""

    mask_in_chans: int = 16  # the prompt encoder's channels for a mask prompt
    transformer_depth: int = 2  # two-way transformer blocks
    transformer_mlp_dim: int = 2048
    transformer_num_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256


@dataclass
class BoxHeadConfig:
    """SAM 2++ corner-heatmap box head inside the unified decoder."""

    inner_dim: int = 256
    freeze_bn: bool = True
    pred_masks: bool = True


@dataclass
class TrackerConfig:
    """Memory and decoding options of the tracker (SAM 2.1's official values)."""

    num_maskmem: int = 7
    backbone_stride: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    no_obj_embed_spatial: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False
    # SAM 2++ point task: feed the click's coordinates and its Gaussian heatmap to the decoder
    point_task_coord_xy: bool = True
    point_task_gaussian_mask: bool = True
    point_gaussian_radius: int = 5
    point_gaussian_sigma: float = 2.0


@dataclass
class ModelConfig:
    name: str
    family: str  # "sam2.1", "sam2++" or "edgetam" (transformers' EdgeTamVideoModel, sam2_plus/edgetam_network.py)
    hub: Optional[HubConfig] = None  # None: a model with no official checkpoint (the test models)
    image_size: int = 1024
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # SAM 2++: one memory attention and one memory encoder per task
    per_task_memory: bool = False
    box_head: Optional[BoxHeadConfig] = None
    # EdgeTAM only: EdgeTamVideoConfig keywords over the real model's (a test model's sizes); the sections above
    # are SAM 2's and do not apply to it
    edgetam: Optional[dict[str, Any]] = None

    @property
    def is_plus(self) -> bool:
        return self.family == "sam2++"

    @property
    def is_edgetam(self) -> bool:
        """Runs through transformers' EdgeTAM classes: tracking and the image mode, without our image encoder's
        features (no discovery while tracking, no motion-aware mode)."""
        return self.family == "edgetam"

    @property
    def tasks(self) -> tuple[str, ...]:
        """Output granularities the model supports."""
        return TASKS if self.is_plus else ("mask",)


def _from_dict(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for key, value in data.items():
        sub = _SECTIONS.get(key)
        kwargs[key] = _from_dict(sub, value, f"{where}.{key}") if sub is not None and value is not None else value
    return cls(**kwargs)


_SECTIONS = {
    "hub": HubConfig,
    "trunk": TrunkConfig,
    "neck": NeckConfig,
    "memory_attention": MemoryAttentionConfig,
    "memory_encoder": MemoryEncoderConfig,
    "decoder": DecoderConfig,
    "tracker": TrackerConfig,
    "box_head": BoxHeadConfig,
}


def canonical_model_name(name: str) -> str:
    name = MODEL_ALIASES.get(name, name)
    if name not in CONFIG_FILES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_CONFIG_FILES)}")
    return name


SAM2_MODELS_HINT = "use sam2.1-tiny (or another sam2.1 model) or sam2++"


def feature_problem(name: str, motion_aware: bool = False, finds: bool = False) -> Optional[str]:
    """Why model `name` (canonical) cannot run a request that uses these features, or None. EdgeTAM runs through
    transformers' own tracker: our motion-aware rules and discovery's finder, which reads the tracker's SAM 2
    image features of each keyframe, do not apply to it."""
    if not load_config(name).is_edgetam:
        return None
    if motion_aware:
        return f"model {name} has no motion-aware (SAMURAI) mode; {SAM2_MODELS_HINT} for motion_aware"
    if finds:
        return (f"model {name} cannot find objects while tracking (discovery's finder reads SAM 2's image features "
                f"of the tracked frames; Find objects on a still image works with it); {SAM2_MODELS_HINT}")
    return None


def load_config(name_or_path: str | Path) -> ModelConfig:
    """Read a model config by public model name (e.g. "sam2++", "sam2.1-tiny") or YAML path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = CONFIG_DIR / CONFIG_FILES[canonical_model_name(str(name_or_path))]
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return _from_dict(ModelConfig, data, path.name)
