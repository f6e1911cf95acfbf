"""Multi-head attention used by the SAM decoder and the memory attention."""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .position_encoding import apply_rotary_enc, compute_axial_cis


class Attention(nn.Module):
    """Attention whose internal width is `embedding_dim // downsample_rate`.

    Keys and values may come from a space of a different width (`kv_in_dim`).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError("num_heads must divide embedding_dim // downsample_rate")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    @staticmethod
    def _merge_heads(x: Tensor) -> Tensor:
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)

    def _project(self, q: Tensor, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return (
            self._split_heads(self.q_proj(q)),
            self._split_heads(self.k_proj(k)),
            self._split_heads(self.v_proj(v)),
        )

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        return self.out_proj(self._merge_heads(out))

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return self._attend(*self._project(q, k, v))


def attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Scaled dot-product attention over [..., tokens, channels]; bfloat16 on the CPU takes its own path."""
    wide_heads_or_short_keys = q.shape[-1] >= 128 or k.shape[-2] <= 1024
    if q.dtype == torch.bfloat16 and q.device.type == "cpu" and dropout_p == 0.0 and wide_heads_or_short_keys:
        return bf16_cpu_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def bf16_cpu_attention(q: Tensor, k: Tensor, v: Tensor, max_scores: int = 1 << 23) -> Tensor:
    """Softmax attention in bfloat16 on the CPU, in chunks of queries.

    With wide heads (the memory attention's 256 channels) PyTorch's fused CPU attention gains nothing
    from bfloat16, while bfloat16 matrix products run several times faster than float32 ones on CPUs with
    bfloat16 instructions; for narrow heads over many keys (the image encoder's global attention) the fused
    kernel stays faster. The score matrix is materialised chunk by chunk, at most `max_scores` elements at
    a time."""
    k_t = k.transpose(-1, -2)
    scale = q.shape[-1] ** -0.5
    rows = max(1, max_scores // max(1, k.shape[-2] * q.shape[0] * q.shape[1]))
    chunks = []
    for start in range(0, q.shape[-2], rows):
        scores = torch.matmul(q[..., start:start + rows, :] * scale, k_t)
        chunks.append(torch.matmul(torch.softmax(scores, dim=-1), v))
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=-2)


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary position encoding on queries and keys.

    Queries always cover one square grid of tokens. With `rope_k_repeat`, keys
    may cover several such grids (one per memory frame); the last
    `num_k_exclude_rope` keys (object pointers) are not rotated.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: Optional[int] = None,
        *,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: Tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = tuple(feat_sizes)
        # Rotations are derived data, kept out of the state dict (the checkpoints do not hold them).
        self._cis_cache: Dict[Tuple[int, torch.device], Tensor] = {}

    def _freqs_cis(self, num_tokens: int, device: torch.device) -> Tensor:
        key = (num_tokens, device)
        if key not in self._cis_cache:
            end_x, end_y = self.feat_sizes
            if end_x * end_y != num_tokens:
                side = math.isqrt(num_tokens)
                if side * side != num_tokens:
                    raise ValueError(f"RoPE needs a square token grid, got {num_tokens} tokens")
                end_x = end_y = side
            head_dim = self.internal_dim // self.num_heads
            cis = compute_axial_cis(head_dim, end_x, end_y, theta=self.rope_theta)
            self._cis_cache[key] = cis.to(device)
        return self._cis_cache[key]

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        q, k, v = self._project(q, k, v)
        if q.shape[-2] != k.shape[-2] and not self.rope_k_repeat:
            raise ValueError("queries and keys differ in length; this needs rope_k_repeat=True")
        freqs_cis = self._freqs_cis(q.shape[-2], q.device)
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        q, k_rot = apply_rotary_enc(q, k[:, :, :num_k_rope], freqs_cis, repeat_freqs_k=self.rope_k_repeat)
        if num_k_exclude_rope > 0:
            k_rot = torch.cat([k_rot, k[:, :, num_k_rope:]], dim=2)
        return self._attend(q, k_rot, v)
