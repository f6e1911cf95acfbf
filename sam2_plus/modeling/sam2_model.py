"""The SAM 2.1 / SAM 2++ network: its components (with the official checkpoints' state-dict keys) and
the per-frame operations the tracker composes: encode an image, decode prompts into masks (and boxes),
condition a frame on an object's memory, and encode a new memory.

The task ("mask", "box" or "point") is an argument of every operation instead of model state, so one
model serves objects of different granularities in the same video. SAM 2.1 has only the mask task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_

from ..config import ModelConfig
from .common import MLP
from .attention import RoPEAttention
from .hiera import Hiera
from .image_encoder import FpnNeck, ImageEncoder
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention, MemoryAttentionLayer
from .memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from .position_encoding import PositionEmbeddingSine
from .prompt_encoder import PromptEncoder
from .two_way_transformer import TwoWayTransformer
from .unified_decoder import UnifiedDecoder

# mask logit of an object that is absent (or has no output yet) on a frame
NO_OBJ_SCORE = -1024.0
# logits given to a mask prompt used directly as output: sigmoid(+-10) is within 5e-5 of 1 / 0
MASK_PROMPT_LOGIT_SCALE, MASK_PROMPT_LOGIT_BIAS = 20.0, -10.0


@dataclass
class PointPrompt:
    """Clicks in model coordinates (pixels of the image_size x image_size input).

    labels: 1 positive, 0 negative, 2/3 box top-left/bottom-right corner, -1 padding.
    """

    coords: torch.Tensor  # [B, P, 2] float32
    labels: torch.Tensor  # [B, P] int32

    @property
    def num_points(self) -> int:
        return self.labels.shape[1]

    @property
    def has_box(self) -> bool:
        return bool(torch.any(self.labels > 1))

    def concat(self, other: "PointPrompt") -> "PointPrompt":
        return PointPrompt(torch.cat([self.coords, other.coords], 1), torch.cat([self.labels, other.labels], 1))


@dataclass
class FrameFeatures:
    """Image features of one frame, flattened to (HW, B, C) per level (the last is the 64x64 level)."""

    vision_feats: list[torch.Tensor]
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]
    shared: bool = False  # every batch row is the same frame (one frame, several objects)

    def expand(self, batch_size: int) -> "FrameFeatures":
        """The same frame for `batch_size` objects (views, nothing is copied)."""
        if batch_size == self.vision_feats[-1].shape[1]:
            return self
        if self.batch_size != 1:
            raise ValueError(f"only features of one frame can be expanded, these have batch {self.batch_size}")
        return FrameFeatures(
            [x.expand(-1, batch_size, -1) for x in self.vision_feats],
            [x.expand(-1, batch_size, -1) for x in self.vision_pos],
            self.feat_sizes,
            shared=True,
        )

    @property
    def batch_size(self) -> int:
        return self.vision_feats[-1].shape[1]

    def top_level_map(self) -> torch.Tensor:
        """The lowest-resolution level as [B, C, H, W]."""
        x, (h, w) = self.vision_feats[-1], self.feat_sizes[-1]
        return x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], h, w)

    def high_res_maps(self) -> list[torch.Tensor]:
        """The higher-resolution levels as [B, C, H, W] (inputs of the decoder's upscaling)."""
        return [
            x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], h, w)
            for x, (h, w) in zip(self.vision_feats[:-1], self.feat_sizes[:-1])
        ]


@dataclass
class HeadOutput:
    """What decoding one frame gives for a batch of objects."""

    low_res_masks: torch.Tensor  # [B, 1, 256, 256] logits of the chosen mask
    high_res_masks: torch.Tensor  # [B, 1, 1024, 1024]
    obj_ptr: torch.Tensor  # [B, C]
    object_score_logits: torch.Tensor  # [B, 1]
    iou: torch.Tensor  # [B] predicted IoU of the chosen mask
    boxes_norm: Optional[torch.Tensor] = None  # [B, 1, 4] normalised xyxy (box task)


@dataclass
class Decoded:
    """Every candidate the decoder gives for a batch of prompts (M = 3 with multimask output, else 1), before
    any presence gating or choice."""

    low_res_masks: torch.Tensor  # [B, M, h, w] logits (h = w = 256 for a 1024 input)
    ious: torch.Tensor  # [B, M] predicted IoUs
    tokens: torch.Tensor  # [B, T, C] output tokens (the object pointer's source)
    object_score_logits: torch.Tensor  # [B, 1]
    boxes_norm: Optional[torch.Tensor] = None  # [B, M, 4] normalised xyxy (SAM 2++'s box task), else None


@dataclass
class Candidates:
    """The decoder's candidate masks for a batch of objects (M = 3 with multimask output), already gated by
    presence: what a `MaskChoice` chooses from."""

    high_res_masks: torch.Tensor  # [B, M, S, S] logits
    ious: torch.Tensor  # [B, M] predicted IoUs
    boxes_norm: Optional[torch.Tensor]  # [B, M, 4] normalised xyxy (SAM 2++'s box task), else None


class MaskChoice:
    """How decoding settles each object's output: it counts as present where its object-score logit exceeds
    `presence_threshold`, and with multimask output it gets the candidate `choose` picks. These are SAM 2's
    rules (present above 0, the highest predicted IoU); motion-aware tracking (sam2_plus/video/motion.py) has its own."""

    presence_threshold: float = 0.0

    def choose(self, candidates: Candidates) -> torch.Tensor:
        """[B] index of each object's mask among its candidates."""
        return candidates.ious.argmax(dim=-1)


HIGHEST_IOU = MaskChoice()


@dataclass
class MemoryEntry:
    """What a frame leaves in an object's memory bank."""

    maskmem_features: Optional[torch.Tensor]  # [B, 64, 64, 64], stored as bfloat16
    maskmem_pos_enc: Optional[torch.Tensor]  # [B, 64, 64, 64]
    obj_ptr: torch.Tensor  # [B, C]


@dataclass
class MemoryContext:
    """The memory a frame attends to: spatial memories with their temporal index, and object pointers
    with their signed frame distance."""

    spatial: list[tuple[int, MemoryEntry]] = field(default_factory=list)  # (t_pos, entry); t_pos 0 = cond
    pointers: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (distance, obj_ptr [B, C])


def get_1d_sine_pe(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine/cosine encoding of scalar positions: [N] -> [N, dim]."""
    half = dim // 2
    exponents = 2 * (torch.arange(half, dtype=torch.float32, device=positions.device) // 2) / half
    angles = positions.unsqueeze(-1) / temperature**exponents
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def _build_image_encoder(cfg: ModelConfig) -> ImageEncoder:
    t, n = cfg.trunk, cfg.neck
    trunk = Hiera(
        embed_dim=t.embed_dim,
        num_heads=t.num_heads,
        q_pool=t.q_pool,
        q_stride=tuple(t.q_stride),
        stages=tuple(t.stages),
        dim_mul=t.dim_mul,
        head_mul=t.head_mul,
        window_pos_embed_bkg_spatial_size=tuple(t.window_pos_embed_bkg_spatial_size),
        window_spec=tuple(t.window_spec),
        global_att_blocks=tuple(t.global_att_blocks),
    )
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=n.d_model, normalize=True, temperature=10000),
        d_model=n.d_model,
        backbone_channel_list=list(n.backbone_channel_list),
        fpn_top_down_levels=list(n.fpn_top_down_levels),
        fpn_interp_model=n.fpn_interp_model,
    )
    return ImageEncoder(trunk=trunk, neck=neck, scalp=n.scalp)


def _build_memory_attention(cfg: ModelConfig) -> MemoryAttention:
    m = cfg.memory_attention

    def rope_attention(**extra) -> RoPEAttention:
        return RoPEAttention(
            embedding_dim=m.d_model,
            num_heads=m.num_heads,
            downsample_rate=1,
            dropout=0.1,
            rope_theta=m.rope_theta,
            feat_sizes=tuple(m.feat_sizes),
            **extra,
        )

    layer = MemoryAttentionLayer(
        activation=m.activation,
        cross_attention=rope_attention(rope_k_repeat=True, kv_in_dim=m.kv_in_dim),
        d_model=m.d_model,
        dim_feedforward=m.dim_feedforward,
        dropout=0.1,
        pos_enc_at_attn=m.pos_enc_at_attn,
        pos_enc_at_cross_attn_keys=m.pos_enc_at_cross_attn_keys,
        pos_enc_at_cross_attn_queries=m.pos_enc_at_cross_attn_queries,
        self_attention=rope_attention(),
    )
    return MemoryAttention(d_model=m.d_model, pos_enc_at_input=m.pos_enc_at_input, layer=layer, num_layers=m.num_layers)


def _build_memory_encoder(cfg: ModelConfig) -> MemoryEncoder:
    e = cfg.memory_encoder
    return MemoryEncoder(
        out_dim=e.out_dim,
        mask_downsampler=MaskDownSampler(
            embed_dim=e.in_dim, kernel_size=e.downsampler_kernel_size, stride=e.downsampler_stride,
            padding=e.downsampler_padding, total_stride=cfg.tracker.backbone_stride,
        ),
        fuser=Fuser(
            CXBlock(dim=e.in_dim, kernel_size=e.fuser_kernel_size, padding=e.fuser_kernel_size // 2,
                    layer_scale_init_value=e.layer_scale_init_value, use_dwconv=True),
            num_layers=e.fuser_layers,
        ),
        position_encoding=PositionEmbeddingSine(num_pos_feats=e.out_dim, normalize=True, temperature=10000),
        in_dim=e.in_dim,
    )


class SAM2Model(nn.Module):
    """SAM 2.1 or SAM 2++ with the official state-dict layout."""

    def __init__(self, cfg: ModelConfig, postprocessing: bool = False):
        super().__init__()
        self.cfg = cfg
        tc = cfg.tracker
        self.tracker_cfg = tc
        self.image_size = cfg.image_size
        self.hidden_dim = cfg.neck.d_model
        self.mem_dim = cfg.memory_encoder.out_dim
        self.num_maskmem = tc.num_maskmem
        self.num_feature_levels = 3 if tc.use_high_res_features_in_sam else 1
        # SAM 2's builder turns these on with post-processing (its default for interactive use)
        self.binarize_mask_from_pts_for_mem_enc = postprocessing
        self.dynamic_multimask_via_stability = postprocessing

        # Registration order follows the official checkpoints' key order.
        self.image_encoder = _build_image_encoder(cfg)
        if tc.use_obj_ptrs_in_encoder:
            # maps a 1024x1024 mask prompt to the decoder's 256x256 logit scale, to get a pointer from it
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        if cfg.per_task_memory:
            for task in cfg.tasks:
                setattr(self, f"memory_attention_{task}", _build_memory_attention(cfg))
                setattr(self, f"memory_encoder_{task}", _build_memory_encoder(cfg))
        else:
            self.memory_attention = _build_memory_attention(cfg)
            self.memory_encoder = _build_memory_encoder(cfg)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(self.num_maskmem, 1, 1, self.mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            trunc_normal_(p, std=0.02)
        if tc.pred_obj_scores and tc.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, self.hidden_dim))
            trunc_normal_(self.no_obj_ptr, std=0.02)
        self.no_obj_embed_spatial = None
        if tc.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, self.mem_dim))
            trunc_normal_(self.no_obj_embed_spatial, std=0.02)
        self._build_heads(postprocessing)

    # ------------------------------------------------------------------ construction
    def _build_heads(self, postprocessing: bool) -> None:
        cfg, tc, dim = self.cfg, self.tracker_cfg, self.hidden_dim
        self.embedding_size = self.image_size // tc.backbone_stride
        d = cfg.decoder
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(self.embedding_size, self.embedding_size),
            input_image_size=(self.image_size, self.image_size),
            mask_in_chans=d.mask_in_chans,
        )
        transformer = TwoWayTransformer(depth=d.transformer_depth, embedding_dim=dim, mlp_dim=d.transformer_mlp_dim,
                                        num_heads=d.transformer_num_heads)
        decoder_args = dict(
            num_multimask_outputs=d.num_multimask_outputs,
            transformer=transformer,
            transformer_dim=dim,
            iou_head_depth=d.iou_head_depth,
            iou_head_hidden_dim=d.iou_head_hidden_dim,
            use_high_res_features=tc.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=tc.iou_prediction_use_sigmoid,
            pred_obj_scores=tc.pred_obj_scores,
            pred_obj_scores_mlp=tc.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=tc.use_multimask_token_for_obj_ptr,
            dynamic_multimask_via_stability=postprocessing,
            dynamic_multimask_stability_delta=0.05,
            dynamic_multimask_stability_thresh=0.98,
        )
        if cfg.is_plus:
            bh = cfg.box_head
            self.sam_unified_decoder = UnifiedDecoder(
                sam_image_embedding_size=self.embedding_size,
                image_size=self.image_size,
                unified_decoder_box_head_freeze_bn=bh.freeze_bn,
                unified_decoder_box_head_inner_dim=bh.inner_dim,
                unified_decoder_box_head_pred_masks=bh.pred_masks,
                **decoder_args,
            )
        else:
            self.sam_mask_decoder = MaskDecoder(**decoder_args)
        if tc.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj = MLP(dim, dim, dim, 3) if tc.use_mlp_for_obj_ptr_proj else nn.Linear(dim, dim)
        else:
            self.obj_ptr_proj = nn.Identity()
        self.obj_ptr_tpos_proj = nn.Linear(dim, self.mem_dim) if tc.proj_tpos_enc_in_obj_ptrs else nn.Identity()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.cfg.tasks

    def check_task(self, task: str) -> str:
        if task not in self.tasks:
            raise ValueError(f"model {self.cfg.name!r} has no task {task!r}; it supports {list(self.tasks)}")
        return task

    def _memory_attention(self, task: str) -> MemoryAttention:
        return getattr(self, f"memory_attention_{task}") if self.cfg.per_task_memory else self.memory_attention

    def _memory_encoder(self, task: str) -> MemoryEncoder:
        return getattr(self, f"memory_encoder_{task}") if self.cfg.per_task_memory else self.memory_encoder

    def _high_res_projections(self, task: str) -> tuple[nn.Module, nn.Module]:
        if self.cfg.is_plus:
            return self.sam_unified_decoder.high_res_projections(task)
        return self.sam_mask_decoder.conv_s0, self.sam_mask_decoder.conv_s1

    def compile_image_encoder(self) -> None:
        """Compile the image encoder with `torch.compile` (as SAM 2's `vos_optimized` does). Its input
        always has the same shape, so it compiles once, on the first frame; the memory attention and
        decoder see memories of changing length and stay eager. The module and its state-dict keys are
        unchanged: only its forward is replaced."""
        encoder = self.image_encoder
        if getattr(encoder, "compiled", False):
            return
        encoder.forward = torch.compile(encoder.forward, dynamic=False)
        encoder.compiled = True

    # ------------------------------------------------------------------ image features
    def encode_image(self, image: torch.Tensor) -> dict:
        """Trunk + neck on a [B, 3, S, S] normalised image; shared by all tasks."""
        return self.image_encoder(image)

    def frame_features(self, backbone_out: Mapping, task: str) -> FrameFeatures:
        """The decoder-ready features of a frame for one task (its own high-res projections)."""
        fpn = list(backbone_out["backbone_fpn"])
        pos = list(backbone_out["vision_pos_enc"])
        if self.tracker_cfg.use_high_res_features_in_sam:
            conv_s0, conv_s1 = self._high_res_projections(task)
            fpn[0], fpn[1] = conv_s0(fpn[0]), conv_s1(fpn[1])
        levels = slice(len(fpn) - self.num_feature_levels, None)
        maps, pos = fpn[levels], pos[levels]
        return FrameFeatures(
            vision_feats=[x.flatten(2).permute(2, 0, 1) for x in maps],
            vision_pos=[x.flatten(2).permute(2, 0, 1) for x in pos],
            feat_sizes=[(x.shape[-2], x.shape[-1]) for x in pos],
        )

    # ------------------------------------------------------------------ decoding
    def use_multimask(self, task: str, is_init_cond_frame: bool, points: Optional[PointPrompt]) -> bool:
        tc = self.tracker_cfg
        num_pts = 0 if points is None else points.num_points
        if task == "box" and points is not None:
            # SAM 2++ counts only the clicks of a box task's prompt, so a lone box gets multimask output
            num_pts = num_pts - 2 if points.has_box else num_pts
        return (
            tc.multimask_output_in_sam
            and (is_init_cond_frame or tc.multimask_output_for_tracking)
            and tc.multimask_min_pt_num <= num_pts <= tc.multimask_max_pt_num
        )

    def decode(
        self,
        task: str,
        pix_feat: torch.Tensor,
        high_res_features: Optional[list[torch.Tensor]],
        points: Optional[PointPrompt] = None,
        mask_inputs: Optional[torch.Tensor] = None,
        multimask_output: bool = False,
        choice: MaskChoice = HIGHEST_IOU,
    ) -> HeadOutput:
        """Prompt encoder + mask decoder on [B, C, 64, 64] features (SAM 2's `_forward_sam_heads`); `choice`
        says when an object is present (the mask and pointer gate) and which candidate mask it gets."""
        decoded = self.decode_candidates(task, pix_feat, high_res_features, points, mask_inputs, multimask_output)
        return self.settle(decoded, multimask_output, choice)

    def settle(self, decoded: "Decoded", multimask_output: bool, choice: MaskChoice = HIGHEST_IOU) -> HeadOutput:
        """The tracker's part after decoding: gate the candidates by presence, choose one, and give it an
        object pointer."""
        masks, ious, tokens = decoded.low_res_masks, decoded.ious, decoded.tokens
        obj_scores, boxes = decoded.object_score_logits, decoded.boxes_norm
        tc = self.tracker_cfg
        if tc.pred_obj_scores:
            appearing = obj_scores > choice.presence_threshold
            # the mask is a hard choice between object and no object, like the memory that is built from it
            masks = torch.where(appearing[:, None, None], masks, NO_OBJ_SCORE)
            if boxes is not None:
                boxes = torch.where(appearing[:, None], boxes, 0)
        masks = masks.float()
        high_res = F.interpolate(masks, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)

        batch, device = masks.shape[0], masks.device
        best = (choice.choose(Candidates(high_res, ious, boxes)) if multimask_output
                else torch.zeros(batch, dtype=torch.long, device=device))
        rows = torch.arange(batch, device=device)
        obj_ptr = self.obj_ptr_proj(tokens[rows, best] if tokens.shape[1] > 1 else tokens[:, 0])
        if tc.pred_obj_scores:
            weight = torch.sigmoid(obj_scores) if tc.soft_no_obj_ptr else appearing.float()
            obj_ptr = self._gate_obj_ptr(obj_ptr, weight)
        return HeadOutput(
            low_res_masks=masks[rows, best].unsqueeze(1),
            high_res_masks=high_res[rows, best].unsqueeze(1),
            obj_ptr=obj_ptr,
            object_score_logits=obj_scores,
            iou=ious[rows, best],
            boxes_norm=boxes[rows, best].unsqueeze(1) if boxes is not None else None,
        )

    def decode_candidates(
        self,
        task: str,
        pix_feat: torch.Tensor,
        high_res_features: Optional[list[torch.Tensor]],
        points: Optional[PointPrompt] = None,
        mask_inputs: Optional[torch.Tensor] = None,
        multimask_output: bool = False,
        pad_without_points: bool = True,
    ) -> "Decoded":
        """The prompt encoder and the mask (or SAM 2++'s unified) decoder, every candidate kept, nothing gated.

        pix_feat [B or 1, C, h, w] (one image for B prompts is broadcast); points in model pixels; mask_inputs
        [B, 1, H, W] logits (resized to the prompt encoder's size when they differ). Without points, the
        tracker's step gives the decoder one padding point (`pad_without_points`) where SAM 2's image
        predictor gives it no sparse prompt at all."""
        batch = max(_rows(points), _rows(mask_inputs), pix_feat.shape[0])
        device = pix_feat.device
        if points is None and pad_without_points:
            points = PointPrompt(
                torch.zeros(batch, 1, 2, device=device), -torch.ones(batch, 1, dtype=torch.int32, device=device)
            )
        if mask_inputs is not None:
            size = self.sam_prompt_encoder.mask_input_size
            if mask_inputs.shape[-2:] != size:
                mask_inputs = F.interpolate(mask_inputs.float(), size=size, mode="bilinear", align_corners=False,
                                            antialias=True)
        sparse, dense = self.sam_prompt_encoder(points=None if points is None else (points.coords, points.labels),
                                                boxes=None, masks=mask_inputs)
        if sparse.shape[0] != batch:  # neither points nor a mask: one prompt-less row per image
            sparse, dense = sparse.expand(batch, -1, -1), dense.expand(batch, -1, -1, -1)
        # one image for several prompts: the decoder repeats it (its high-res maps broadcast)
        repeat_image = pix_feat.shape[0] == 1 and batch > 1
        decoder_kwargs = dict(
            image_embeddings=pix_feat,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
        )
        if self.cfg.is_plus:
            masks, boxes, ious, tokens, obj_scores = self.sam_unified_decoder(**decoder_kwargs, task=task)
            return Decoded(masks, ious, tokens, obj_scores, boxes)
        masks, ious, tokens, obj_scores = self.sam_mask_decoder(**decoder_kwargs)
        return Decoded(masks, ious, tokens, obj_scores, None)

    def _gate_obj_ptr(self, obj_ptr: torch.Tensor, appearing: torch.Tensor) -> torch.Tensor:
        if self.tracker_cfg.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        return obj_ptr + (1 - appearing) * self.no_obj_ptr

    def prompt_as_output(
        self,
        task: str,
        pix_feat: torch.Tensor,
        high_res_features: Optional[list[torch.Tensor]],
        mask: torch.Tensor,
        points: Optional[PointPrompt] = None,
        choice: MaskChoice = HIGHEST_IOU,
    ) -> HeadOutput:
        """Use a [B, 1, S, S] mask prompt as the frame's output (SAM 2's `_use_mask_as_output` and SAM 2++'s
        box/point variants). The mask is binary for the mask and box tasks and a Gaussian heatmap in
        [0, 1] for the point task; the decoder still runs once to produce the object pointer (gated by
        `choice`'s presence threshold, as `decode` gates it)."""
        mask = mask.float()
        if task == "point":
            p = mask.clamp(1e-6, 1 - 1e-6)
            high_res = torch.log(p / (1 - p))  # the heatmap's own logits
        else:
            high_res = mask * MASK_PROMPT_LOGIT_SCALE + MASK_PROMPT_LOGIT_BIAS
        low_res = F.interpolate(high_res, size=(high_res.shape[-2] // 4, high_res.shape[-1] // 4), mode="bilinear",
                                align_corners=False, antialias=True)
        if not self.tracker_cfg.use_obj_ptrs_in_encoder:
            obj_ptr = torch.zeros(mask.shape[0], self.hidden_dim, device=mask.device)
        elif task == "box":
            obj_ptr = self.decode(task, pix_feat, high_res_features, points=points,
                                  choice=choice).obj_ptr
        elif task == "point":
            tc = self.tracker_cfg
            obj_ptr = self.decode(
                task, pix_feat, high_res_features,
                points=points if tc.point_task_coord_xy else None,
                mask_inputs=self.mask_downsample(mask) if tc.point_task_gaussian_mask else None,
                choice=choice,
            ).obj_ptr
        else:
            obj_ptr = self.decode(task, pix_feat, high_res_features, mask_inputs=self.mask_downsample(mask),
                                  choice=choice).obj_ptr
        # the prompt, not the decoder, says whether the object is present
        appearing = torch.any(mask.flatten(1) > 0.0, dim=1)[:, None].float()
        obj_scores = MASK_PROMPT_LOGIT_SCALE * appearing + MASK_PROMPT_LOGIT_BIAS
        if self.tracker_cfg.pred_obj_scores:
            obj_ptr = self._gate_obj_ptr(obj_ptr, appearing)
        boxes_norm = None
        if task == "box" and points is not None:
            boxes_norm = points.coords[:, :2].reshape(-1, 1, 4) / self.image_size
        return HeadOutput(
            low_res_masks=low_res,
            high_res_masks=high_res,
            obj_ptr=obj_ptr,
            object_score_logits=obj_scores,
            iou=mask.new_ones(mask.shape[0]),
            boxes_norm=boxes_norm,
        )

    # ------------------------------------------------------------------ memory
    def condition_on_memory(self, task: str, feats: FrameFeatures, memory: Optional[MemoryContext],
                            num_frames: int) -> torch.Tensor:
        """Fuse the top-level features of a frame with an object's memory -> [B, C, H, W].

        memory None: an initial conditioning frame, which sees no memory."""
        x, pos = feats.vision_feats[-1], feats.vision_pos[-1]
        batch, channels = x.shape[1], self.hidden_dim
        h, w = feats.feat_sizes[-1]
        if self.num_maskmem == 0:
            return feats.top_level_map()
        if memory is None:
            if self.tracker_cfg.directly_add_no_mem_embed:
                return (x + self.no_mem_embed).permute(1, 2, 0).reshape(batch, channels, h, w)
            tokens = [self.no_mem_embed.expand(1, batch, self.mem_dim)]
            token_pos = [self.no_mem_pos_enc.expand(1, batch, self.mem_dim)]
            num_ptr_tokens = 0
        else:
            tokens, token_pos, num_ptr_tokens = self._memory_tokens(memory, batch, num_frames, x.device)
        # stored memories are bfloat16; attend in the frame's own dtype
        mem = torch.cat([t.to(x.dtype) for t in tokens], dim=0)
        mem_pos = torch.cat([t.to(x.dtype) for t in token_pos], dim=0)
        if feats.shared:  # the memory attention broadcasts the one frame over the objects' memories
            x, pos = x[:, :1], pos[:, :1]
        out = self._memory_attention(task)(
            curr=[x], curr_pos=[pos], memory=mem, memory_pos=mem_pos, num_obj_ptr_tokens=num_ptr_tokens
        )
        return out.permute(1, 2, 0).reshape(batch, channels, h, w)

    def _memory_tokens(self, memory: MemoryContext, batch: int, num_frames: int, device: torch.device):
        tokens, token_pos = [], []
        for t_pos, entry in memory.spatial:
            feats = entry.maskmem_features.to(device, non_blocking=True)
            tokens.append(feats.flatten(2).permute(2, 0, 1))
            enc = entry.maskmem_pos_enc.to(device).flatten(2).permute(2, 0, 1)
            token_pos.append(enc + self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1])
        num_ptr_tokens = 0
        if self.tracker_cfg.use_obj_ptrs_in_encoder and memory.pointers:
            distances, ptrs = zip(*memory.pointers)
            ptrs = torch.stack(ptrs, dim=0)  # [P, B, C]
            channels = self.hidden_dim
            if self.tracker_cfg.add_tpos_enc_to_obj_ptrs:
                max_distance = min(num_frames, self.tracker_cfg.max_obj_ptrs_in_encoder) - 1
                pos_dim = channels if self.tracker_cfg.proj_tpos_enc_in_obj_ptrs else self.mem_dim
                rel = torch.tensor(distances, device=device) / max_distance
                ptr_pos = self.obj_ptr_tpos_proj(get_1d_sine_pe(rel, dim=pos_dim))
                ptr_pos = ptr_pos.unsqueeze(1).expand(-1, batch, self.mem_dim)
            else:
                ptr_pos = ptrs.new_zeros(len(distances), batch, self.mem_dim)
            if self.mem_dim < channels:
                # each pointer becomes C / mem_dim tokens of the memory width
                split = channels // self.mem_dim
                ptrs = ptrs.reshape(-1, batch, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
                ptr_pos = ptr_pos.repeat_interleave(split, dim=0)
            tokens.append(ptrs)
            token_pos.append(ptr_pos)
            num_ptr_tokens = ptrs.shape[0]
        return tokens, token_pos, num_ptr_tokens

    def encode_memory(
        self,
        task: str,
        feats: FrameFeatures,
        high_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        is_mask_from_pts: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory features [B, 64, 64, 64] and their position encoding from a frame and its mask logits."""
        pix_feat = feats.top_level_map()
        if self.tracker_cfg.non_overlap_masks_for_mem_enc:
            high_res_masks = apply_non_overlapping_constraints(high_res_masks)
        if self.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts:
            mask_for_mem = (high_res_masks > 0).float()
        else:
            mask_for_mem = torch.sigmoid(high_res_masks)
        tc = self.tracker_cfg
        if tc.sigmoid_scale_for_mem_enc != 1.0:
            mask_for_mem = mask_for_mem * tc.sigmoid_scale_for_mem_enc
        if tc.sigmoid_bias_for_mem_enc != 0.0:
            mask_for_mem = mask_for_mem + tc.sigmoid_bias_for_mem_enc
        out = self._memory_encoder(task)(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        features, pos_enc = out["vision_features"], out["vision_pos_enc"][-1]
        if self.no_obj_embed_spatial is not None:
            absent = 1 - (object_score_logits > 0).float()
            features = features + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None].expand(
                *features.shape)
        return features, pos_enc


def _rows(x) -> int:
    """The batch size of an optional prompt part (0 when absent)."""
    if x is None:
        return 0
    return x.labels.shape[0] if isinstance(x, PointPrompt) else x.shape[0]


def apply_non_overlapping_constraints(masks: torch.Tensor) -> torch.Tensor:
    """Where objects overlap keep only the highest-scoring one; the others get at most -10."""
    if masks.shape[0] == 1:
        return masks
    winner = torch.argmax(masks, dim=0, keepdim=True)
    keep = winner == torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(keep, masks, torch.clamp(masks, max=-10.0))


def gaussian_heatmap(x: float, y: float, size: int, radius: int, sigma: float) -> torch.Tensor:
    """SAM 2++'s point prompt: a [size, size] float32 heatmap, a disc of radius `radius` of a Gaussian
    with `sigma`, centred at the truncated integer pixel (x, y)."""
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    d2 = coords[None, :] ** 2 + coords[:, None] ** 2
    g = torch.exp(-d2 / (2 * sigma * sigma))
    g[g < torch.finfo(torch.float64).eps * g.max()] = 0
    g[d2 > radius * radius] = 0
    heat = torch.zeros(size, size, dtype=torch.float32)
    cx, cy = int(x), int(y)
    x0, x1 = max(cx - radius, 0), min(cx + radius + 1, size)
    y0, y1 = max(cy - radius, 0), min(cy + radius + 1, size)
    if x1 > x0 and y1 > y0:
        patch = g[y0 - (cy - radius): y1 - (cy - radius), x0 - (cx - radius): x1 - (cx - radius)]
        heat[y0:y1, x0:x1] = patch.float()
    return heat
