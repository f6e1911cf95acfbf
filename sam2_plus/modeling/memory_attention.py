"""Memory attention: conditions the current frame's features on memories of past frames."""

from __future__ import annotations

from typing import List, Optional, Union

from torch import Tensor, nn

from .attention import RoPEAttention
from .common import Linear, clone_module, get_activation


class MemoryAttentionLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to memory, and feed-forward block."""

    def __init__(
        self,
        activation: str,
        cross_attention: nn.Module,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        pos_enc_at_attn: bool,
        pos_enc_at_cross_attn_keys: bool,
        pos_enc_at_cross_attn_queries: bool,
        self_attention: nn.Module,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.dropout_value = dropout
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention
        self.linear1 = Linear(d_model, dim_feedforward)
        self.linear2 = Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation_str = activation
        self.activation = get_activation(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
        num_k_exclude_rope: int = 0,
    ) -> Tensor:
        """tgt: (B, N, d_model); memory: (B, M, kv_dim); last `num_k_exclude_rope` memory tokens skip RoPE."""
        x = self.norm1(tgt)
        q = x + query_pos if self.pos_enc_at_attn else x
        tgt = tgt + self.dropout(self.self_attn(q, q, v=x))

        x = self.norm2(tgt)
        extra = {}
        if num_k_exclude_rope > 0:
            if not isinstance(self.cross_attn_image, RoPEAttention):
                raise TypeError("num_k_exclude_rope needs a RoPEAttention cross-attention")
            extra["num_k_exclude_rope"] = num_k_exclude_rope
        attn = self.cross_attn_image(
            q=x + query_pos if self.pos_enc_at_cross_attn_queries else x,
            k=memory + pos if self.pos_enc_at_cross_attn_keys else memory,
            v=memory,
            **extra,
        )
        tgt = tgt + self.dropout(attn)

        x = self.dropout(self.activation(self.linear1(self.norm3(tgt))))
        if self.training:
            return tgt + self.dropout(self.linear2(x))
        return self.linear2(x, residual=tgt)


class MemoryAttention(nn.Module):
    """`num_layers` copies of `layer` and a final layer norm.

    Inputs and output are sequence-first, (tokens, B, C); `batch_first` says
    whether the layers themselves work batch-first.
    """

    def __init__(
        self,
        d_model: int,
        pos_enc_at_input: bool,
        layer: nn.Module,
        num_layers: int,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = clone_module(layer, num_layers)
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input
        self.batch_first = batch_first

    def forward(
        self,
        curr: Union[Tensor, List[Tensor]],
        memory: Tensor,
        curr_pos: Optional[Union[Tensor, List[Tensor]]] = None,
        memory_pos: Optional[Tensor] = None,
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:
        """curr: (N, B, C) current-frame tokens; memory: (M, B, C_mem), whose last
        `num_obj_ptr_tokens` entries are object pointers. Returns (N, B, C)."""
        if isinstance(curr, list):
            if not isinstance(curr_pos, list) or len(curr) != 1 or len(curr_pos) != 1:
                raise ValueError("list inputs must hold exactly one level for curr and curr_pos")
            curr, curr_pos = curr[0], curr_pos[0]
        if curr.shape[1] != memory.shape[1]:
            raise ValueError("curr and memory batch sizes differ")

        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos

        if self.batch_first:
            output = output.transpose(0, 1)
            memory = memory.transpose(0, 1)
            curr_pos = None if curr_pos is None else curr_pos.transpose(0, 1)
            memory_pos = None if memory_pos is None else memory_pos.transpose(0, 1)

        for layer in self.layers:
            extra = {}
            if isinstance(layer.cross_attn_image, RoPEAttention):
                extra["num_k_exclude_rope"] = num_obj_ptr_tokens
            output = layer(tgt=output, memory=memory, pos=memory_pos, query_pos=curr_pos, **extra)
        output = self.norm(output)
        return output.transpose(0, 1) if self.batch_first else output
