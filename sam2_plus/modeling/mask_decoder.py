"""SAM 2 mask decoder: masks, IoU scores, object-pointer tokens and object scores.

:class:`DecoderBase` holds everything the SAM 2.1 :class:`MaskDecoder` and the SAM 2++
:class:`~sam2_plus.modeling.unified_decoder.UnifiedDecoder` have in common: the output
tokens, the two-way transformer pass, the mask heads (upscaling + hypernetwork), the IoU /
object-score heads and the single / multimask output selection.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Type

import torch
from torch import nn

from .common import MLP, LayerNorm2d


def project_masks(hyper_in: torch.Tensor, upscaled: torch.Tensor) -> torch.Tensor:
    """Mask logits ``[B, N, H, W]`` from per-token weights ``[B, N, C]`` and features ``[B, C, H, W]``."""
    b, c, h, w = upscaled.shape
    return (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)


def _single_or_best(
    per_token: torch.Tensor, stable: torch.Tensor, rows: torch.Tensor, best: torch.Tensor
) -> torch.Tensor:
    """Token 0 of ``per_token [B, 1 + M, ...]`` where ``stable [B, 1]``, else multimask token ``best``."""
    single = per_token[:, 0:1]
    best_out = per_token[:, 1:][rows, best].unsqueeze(1)
    cond = stable.reshape(stable.shape + (1,) * (per_token.dim() - stable.dim()))
    return torch.where(cond.expand_as(single), single, best_out)


def _same_for_every_prompt(dense: torch.Tensor) -> bool:
    """Whether the dense prompt embeddings [B, C, h, w] are one tensor broadcast over the prompts (the prompt
    encoder's no-mask embedding), so that one row stands for all."""
    return dense.shape[0] == 1 or dense.stride(0) == 0


class DecoderBase(nn.Module):
    """Shared parts of the SAM 2.1 mask decoder and the SAM 2++ unified decoder.

    Subclasses call ``_init_shared`` and ``_add_mask_head`` in their own order: the
    registration order is the checkpoint key order (and the parameter-initialisation order).
    Output token order: [obj_score_token (if pred_obj_scores)], iou_token, mask_tokens, prompts.
    """

    # -- construction --------------------------------------------------------------------------
    def _init_shared(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: Type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
        mask_head: Optional[str] = None,
    ) -> None:
        """The output tokens, then the mask head ``mask_head`` (its suffix; None: none here), then the
        IoU / object-score heads. The keyword arguments are SAM 2.1's ``MaskDecoder``'s."""
        self._init_tokens(transformer_dim, transformer, num_multimask_outputs, pred_obj_scores,
                          use_multimask_token_for_obj_ptr)
        self.use_high_res_features = use_high_res_features
        self.activation = activation
        if mask_head is not None:
            self._add_mask_head(mask_head, activation)
        self._init_score_heads(iou_head_depth, iou_head_hidden_dim, iou_prediction_use_sigmoid, pred_obj_scores_mlp,
                               dynamic_multimask_via_stability, dynamic_multimask_stability_delta,
                               dynamic_multimask_stability_thresh)

    def _init_tokens(
        self,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int,
        pred_obj_scores: bool,
        use_multimask_token_for_obj_ptr: bool,
    ) -> None:
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

    def _add_mask_head(self, suffix: str, activation: Type[nn.Module]) -> None:
        """``output_upscaling<suffix>``, ``conv_s0<suffix>`` / ``conv_s1<suffix>`` (with
        high-res features) and ``output_hypernetworks_mlps<suffix>`` (one MLP per mask token)."""
        dim = self.transformer_dim
        setattr(self, f"output_upscaling{suffix}", nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            activation(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            activation(),
        ))
        if self.use_high_res_features:
            setattr(self, f"conv_s0{suffix}", nn.Conv2d(dim, dim // 8, kernel_size=1, stride=1))
            setattr(self, f"conv_s1{suffix}", nn.Conv2d(dim, dim // 4, kernel_size=1, stride=1))
        setattr(self, f"output_hypernetworks_mlps{suffix}", nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        ))

    def _init_score_heads(
        self,
        iou_head_depth: int,
        iou_head_hidden_dim: int,
        iou_prediction_use_sigmoid: bool,
        pred_obj_scores_mlp: bool,
        dynamic_multimask_via_stability: bool,
        dynamic_multimask_stability_delta: float,
        dynamic_multimask_stability_thresh: float,
    ) -> None:
        """The IoU / object-score heads and the settings of the dynamic single-mask selection."""
        dim = self.transformer_dim
        self.iou_prediction_head = MLP(
            dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if self.pred_obj_scores:
            self.pred_obj_score_head = MLP(dim, dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(dim, 1)

        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    # -- decoding ------------------------------------------------------------------------------
    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: Optional[List[torch.Tensor]] = None,
        **head_args,
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """Decode: every token's outputs (the subclass's ``predict_masks``), then the single or multimask
        outputs and the object-pointer tokens (its ``_outputs``, which says what is returned).

        Args:
            image_embeddings: ``[B or 1, C, h, w]`` image embedding.
            image_pe: ``[1, C, h, w]`` dense positional encoding.
            sparse_prompt_embeddings: ``[B, P, C]``.
            dense_prompt_embeddings: ``[B, C, h, w]``.
            multimask_output: return the 3 multimask outputs instead of the single one.
            repeat_image: repeat ``image_embeddings`` over the prompt batch.
            high_res_features: ``[feat_s0 [B, C/8, 4h, 4w], feat_s1 [B, C/4, 2h, 2w]]``,
                already projected with the ``conv_s0`` / ``conv_s1`` of the mask head used.
            head_args: a subclass's own (SAM 2++: ``task``).
        """
        everything = self.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse_prompt_embeddings,
            dense_prompt_embeddings=dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
            **head_args,
        )
        return self._outputs(multimask_output, *everything)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: bool,
        high_res_features: Optional[List[torch.Tensor]] = None,
        **head_args,
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """Every mask token's outputs, before output selection: ``(masks [B, T, 4h, 4w], *what the
        subclass's ``_head_outputs`` adds (SAM 2++: boxes [B, T, 4] or None), iou_pred [B, T],
        mask_tokens_out [B, T, C], object_score_logits [B, 1])`` with ``T = 1 + num_multimask_outputs``."""
        hs, src, iou_token_out, mask_tokens_out = self._run_transformer(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image
        )
        masks, *extras = self._head_outputs(src, mask_tokens_out, high_res_features, **head_args)
        iou_pred, object_score_logits = self._score_heads(hs, iou_token_out)
        return (masks, *extras, iou_pred, mask_tokens_out, object_score_logits)

    def _outputs(self, multimask_output: bool, masks: torch.Tensor, *rest: Optional[torch.Tensor]):
        """``predict_masks``'s outputs restricted to the single or multimask tokens, with the object-pointer
        tokens in place of the mask tokens."""
        *extras, iou_pred, mask_tokens_out, object_score_logits = rest
        masks, iou_pred, *extras = self._select_outputs(multimask_output, masks, iou_pred, *extras)
        sam_tokens_out = self._object_pointer_tokens(mask_tokens_out, multimask_output)
        return (masks, *extras, iou_pred, sam_tokens_out, object_score_logits)

    def _run_transformer(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor, repeat_image: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two-way transformer over output tokens + prompts and the (prompted) image embedding.

        Returns ``(hs [B, T, C] all token outputs, src [B, C, h, w] image output,
        iou_token_out [B, C], mask_tokens_out [B, num_mask_tokens, C])``.
        """
        learned = [self.iou_token.weight, self.mask_tokens.weight]
        first = 0  # index of the IoU token
        if self.pred_obj_scores:
            learned.insert(0, self.obj_score_token.weight)
            first = 1
        num_prompts = sparse_prompt_embeddings.size(0)
        output_tokens = torch.cat(learned, dim=0).unsqueeze(0).expand(num_prompts, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        if image_pe.size(0) != 1:
            raise ValueError("image_pe must have batch size 1 (see PromptEncoder.get_dense_pe)")
        if repeat_image and _same_for_every_prompt(dense_prompt_embeddings):
            # One image and no mask prompt: the image side is the same for every prompt until the first
            # image-to-token attention mixes the prompts in, so it is computed once and broadcast there.
            src, pos_src = (image_embeddings + dense_prompt_embeddings[:1]).contiguous(), image_pe
        else:
            if repeat_image:
                image_embeddings = torch.repeat_interleave(image_embeddings, tokens.shape[0], dim=0)
            elif image_embeddings.shape[0] != tokens.shape[0]:
                raise ValueError("image and prompt batch sizes differ; use repeat_image=True")
            src = image_embeddings + dense_prompt_embeddings
            pos_src = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, first, :]
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens, :]
        return hs, src.transpose(1, 2).reshape(hs.shape[0], c, h, w), iou_token_out, mask_tokens_out

    def _mask_head(
        self,
        suffix: str,
        src: torch.Tensor,
        mask_tokens_out: torch.Tensor,
        high_res_features: Optional[List[torch.Tensor]],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(upscaled [B, C/8, 4h, 4w], hyper_in [B, num_mask_tokens, C/8])`` of the mask
        head ``suffix``; the high-res features ``[feat_s0, feat_s1]`` are added when enabled."""
        upscaling = getattr(self, f"output_upscaling{suffix}")
        if self.use_high_res_features:
            deconv1, norm1, act1, deconv2, act2 = upscaling
            feat_s0, feat_s1 = high_res_features
            upscaled = act1(norm1(deconv1(src) + feat_s1))
            upscaled = act2(deconv2(upscaled) + feat_s0)
        else:
            upscaled = upscaling(src)

        mlps = getattr(self, f"output_hypernetworks_mlps{suffix}")
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(mlps)], dim=1)
        return upscaled, hyper_in

    def _score_heads(self, hs: torch.Tensor, iou_token_out: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(iou_pred [B, num_mask_tokens], object_score_logits [B, 1])``."""
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0, :])
        else:
            # Without a score head the object is assumed present (sigmoid(10) ~ 1).
            object_score_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return iou_pred, object_score_logits

    # -- output selection ----------------------------------------------------------------------
    def _select_outputs(
        self, multimask_output: bool, masks: torch.Tensor, iou_pred: torch.Tensor, *per_token: Optional[torch.Tensor]
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """``(masks, iou_pred, *per_token)`` restricted to the multimask tokens 1.. or to one
        output (token 0, or the dynamic stability fallback in eval mode). ``None`` stays ``None``."""
        if not multimask_output and self.dynamic_multimask_via_stability and not self.training:
            return self._stable_or_best(masks, iou_pred, *per_token)
        picked = slice(1, None) if multimask_output else slice(0, 1)
        return tuple(None if t is None else t[:, picked] for t in (masks, iou_pred) + per_token)

    def _object_pointer_tokens(self, mask_tokens_out: torch.Tensor, multimask_output: bool) -> torch.Tensor:
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            return mask_tokens_out[:, 1:]
        # The single-mask token is the object pointer otherwise, even for
        # multimask outputs: it is the token the memory was trained with.
        return mask_tokens_out[:, 0:1]

    def _get_stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and at -delta."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        area_inner = torch.sum(flat > delta, dim=-1).float()
        area_outer = torch.sum(flat > -delta, dim=-1).float()
        return torch.where(area_outer > 0, area_inner / area_outer, 1.0)

    def _stable_or_best(
        self, all_mask_logits: torch.Tensor, all_iou_scores: torch.Tensor, *per_token: Optional[torch.Tensor]
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """Single output per prompt for ``(all_mask_logits, all_iou_scores, *per_token)``: token 0
        where its mask is stable, otherwise the multimask token with the highest predicted IoU."""
        best = torch.argmax(all_iou_scores[:, 1:], dim=-1)
        rows = torch.arange(all_iou_scores.size(0), device=all_iou_scores.device)
        stable = self._get_stability_scores(all_mask_logits[:, 0:1]) >= self.dynamic_multimask_stability_thresh
        return tuple(
            None if t is None else _single_or_best(t, stable, rows, best)
            for t in (all_mask_logits, all_iou_scores) + per_token
        )


class MaskDecoder(DecoderBase):
    """Predicts 1 + `num_multimask_outputs` masks per prompt set with a two-way transformer.

    Output token order: [obj_score_token (if pred_obj_scores)], iou_token, mask_tokens, prompts.
    """

    def __init__(self, **decoder_args) -> None:
        """``DecoderBase._init_shared``'s keyword arguments (SAM 2's): ``transformer_dim, transformer,
        num_multimask_outputs=3, activation=nn.GELU, iou_head_depth=3, iou_head_hidden_dim=256,
        use_high_res_features=False, iou_prediction_use_sigmoid=False, dynamic_multimask_via_stability=False,
        dynamic_multimask_stability_delta=0.05, dynamic_multimask_stability_thresh=0.98, pred_obj_scores=False,
        pred_obj_scores_mlp=False, use_multimask_token_for_obj_ptr=False``."""
        super().__init__()
        self._init_shared(mask_head="", **decoder_args)  # registration order = checkpoint key order

    def _head_outputs(self, src: torch.Tensor, mask_tokens_out: torch.Tensor,
                      high_res_features: Optional[List[torch.Tensor]]) -> Tuple[torch.Tensor]:
        """``(mask logits [B, T, 4h, 4w],)``: forward returns (mask logits, IoU predictions, SAM output
        tokens, object score logits)."""
        upscaled, hyper_in = self._mask_head("", src, mask_tokens_out, high_res_features)
        return (project_masks(hyper_in, upscaled),)

    def _dynamic_multimask_via_stability(
        self, all_mask_logits: torch.Tensor, all_iou_scores: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single-mask output, replaced by the best-IoU multimask output where it is unstable."""
        return self._stable_or_best(all_mask_logits, all_iou_scores)
