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
        tgt = self.attend_to_self(tgt, query_pos)
        return self.attend_to_memory(tgt, memory, pos, query_pos, num_k_exclude_rope)

    def attend_to_self(self, tgt: Tensor, query_pos: Optional[Tensor] = None) -> Tensor:
        x = self.norm1(tgt)
        q = x + query_pos if self.pos_enc_at_attn else x
        return tgt + self.dropout(self.self_attn(q, q, v=x))

    def attend_to_memory(self, tgt: Tensor, memory: Tensor, pos: Optional[Tensor] = None,
                         query_pos: Optional[Tensor] = None, num_k_exclude_rope: int = 0) -> Tensor:
        """Cross-attention to the memory, then the feed-forward block."""
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
        `num_obj_ptr_tokens` entries are object pointers. Returns (N, B, C).

        curr (and curr_pos) may have batch 1 while the memory has B: one frame seen by B objects. The
        first layer's self-attention, which reads only the frame, then runs once for all of them."""
        if isinstance(curr, list):
            if not isinstance(curr_pos, list) or len(curr) != 1 or len(curr_pos) != 1:
                raise ValueError("list inputs must hold exactly one level for curr and curr_pos")
            curr, curr_pos = curr[0], curr_pos[0]
        batch = memory.shape[1]
        if curr.shape[1] not in (1, batch):
            raise ValueError(f"curr has batch {curr.shape[1]}, memory {batch}; curr's must be 1 or the same")

        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos

        if self.batch_first:
            output = output.transpose(0, 1)
            # several objects' memories: contiguous rows per object keep the products on their fast path
            memory = memory.transpose(0, 1).contiguous()
            curr_pos = None if curr_pos is None else curr_pos.transpose(0, 1)
            memory_pos = None if memory_pos is None else memory_pos.transpose(0, 1).contiguous()

        for i, layer in enumerate(self.layers):
            extra = {}
            if isinstance(layer.cross_attn_image, RoPEAttention):
                extra["num_k_exclude_rope"] = num_obj_ptr_tokens
            if i == 0 and curr.shape[1] != batch:
                output = self._broadcast(layer.attend_to_self(output, curr_pos), batch)
                curr_pos = None if curr_pos is None else self._broadcast(curr_pos, batch)
                output = layer.attend_to_memory(output, memory, pos=memory_pos, query_pos=curr_pos, **extra)
                continue
            output = layer(tgt=output, memory=memory, pos=memory_pos, query_pos=curr_pos, **extra)
        output = self.norm(output)
        return output.transpose(0, 1) if self.batch_first else output

    def _broadcast(self, x: Tensor, batch: int) -> Tensor:
        """One frame's tokens for `batch` objects: (1, N, C) -> (B, N, C) batch-first, or the same on dim 1."""
        return x.expand(batch, -1, -1) if self.batch_first else x.expand(-1, batch, -1)
