"""Multi-head attention used by the SAM decoder and the memory attention."""

from __future__ import annotations

import itertools
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import Linear, matmul_nt, onednn_dtype
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
        self.q_proj = Linear(embedding_dim, self.internal_dim)
        self.k_proj = Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    @staticmethod
    def _merge_heads(x: Tensor) -> Tensor:
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)

    def _values_late(self, v: Tensor) -> bool:
        """Whether to attend over the raw value inputs and project afterwards.

        Each row of the attention weights sums to one, so softmax(qk) (x W + b) = (softmax(qk) x) W + b.
        When values come from a space narrower than a head (the memory attention: 64 channels into
        256-wide heads) the weighted sum then costs a fraction of the work. Only in bfloat16 inference
        on the CPU (`onednn_dtype`), where `attention` takes values of any width: float32 projects first,
        as the reference does, to keep its rounding (where tracking is unstable the other order's
        rounding grew past the parity tolerances)."""
        return self.kv_in_dim < self.internal_dim // self.num_heads and onednn_dtype(v) == torch.bfloat16

    def _project(self, q: Tensor, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        if self._values_late(v):
            v = v.unsqueeze(1).expand(-1, self.num_heads, -1, -1)
        else:
            v = self._split_heads(self.v_proj(v))
        return self._split_heads(self.q_proj(q)), self._split_heads(self.k_proj(k)), v

    def _project_values(self, x: Tensor) -> Tensor:
        """(B, heads, N, kv_in_dim) weighted raw values -> (B, heads, N, head_dim), head by head."""
        weight = self.v_proj.weight.view(self.num_heads, -1, self.kv_in_dim).to(x.dtype)
        bias = self.v_proj.bias.view(self.num_heads, 1, -1).to(x.dtype)
        return torch.matmul(x, weight.transpose(1, 2)) + bias

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        batch = max(q.shape[0], k.shape[0])  # one side may be a single row shared by a batch of the other
        q, k, v = (x.expand(batch, *x.shape[1:]) for x in (q, k, v))
        out = attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        if out.shape[-1] != q.shape[-1]:  # the raw values were attended (see _values_late)
            out = self._project_values(out)
        return self.out_proj(self._merge_heads(out))

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return self._attend(*self._project(q, k, v))


def attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Scaled dot-product attention over [..., tokens, channels].

    On the CPU in bfloat16 inference, attention over a few heads (the memory attention, the encoder's
    global blocks) runs through oneDNN (`onednn_attention`). Not in float32: there oneDNN's order of
    summation moved one parity case's object score past its tolerance (sam2plus_mask_clicks_box_s0,
    measured), while PyTorch's kernels keep every case within it. Of the rest, two cases take the
    chunked path: values narrower than queries (PyTorch's fused CPU kernel wants equal widths and would
    fall back to materialising every score at once), and bfloat16 with wide heads or few keys (the fused
    kernel gains nothing from bfloat16 there)."""
    if dropout_p == 0.0:
        dtype = onednn_dtype(q)
        if dtype == torch.bfloat16 and q.dim() == 4 and q.shape[0] * q.shape[1] <= MAX_ONEDNN_HEADS:
            return onednn_attention(q, k, v, dtype)
    on_cpu = q.device.type == "cpu" and dropout_p == 0.0
    narrow_values = v.shape[-1] != q.shape[-1]
    wide_heads_or_short_keys = q.shape[-1] >= 128 or k.shape[-2] <= 1024
    if on_cpu and (narrow_values or (q.dtype == torch.bfloat16 and wide_heads_or_short_keys)):
        return chunked_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


# Heads (batch x heads) up to which oneDNN attention and chunked attention loop over them in Python;
# beyond (the encoder's thousands of small windows) PyTorch's batched kernels win.
MAX_ONEDNN_HEADS = 16


def onednn_attention(q: Tensor, k: Tensor, v: Tensor, dtype: torch.dtype, max_scores: int = 1 << 22,
                     min_rows: int = 256) -> Tensor:
    """Softmax attention over (B, heads, tokens, channels), one head and one chunk of queries at a time,
    with both products in oneDNN. A chunk holds about `max_scores` scores (at least `min_rows` queries),
    which keeps them in cache; values may be narrower than queries and keys."""
    scale = q.shape[-1] ** -0.5
    rows = min(q.shape[-2], max(min_rows, max_scores // max(1, k.shape[-2])))
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=dtype, device=q.device)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            queries = (q[b, h] * scale).to(dtype)
            keys = k[b, h].to(dtype)
            values_t = v[b, h].to(dtype).t()
            for start in range(0, q.shape[-2], rows):
                scores = matmul_nt(queries[start:start + rows], keys)
                out[b, h, start:start + rows] = matmul_nt(torch.softmax(scores, dim=-1).to(dtype), values_t)
    return out


def chunked_attention(q: Tensor, k: Tensor, v: Tensor, max_scores: int = 1 << 23) -> Tensor:
    """Softmax attention in chunks of queries, at most `max_scores` score elements at a time.

    Plain matrix products, so bfloat16 inputs run on the CPU's bfloat16 instructions (several times the
    float32 rate where the hardware has them), and values may be narrower than queries and keys.

    A few heads (batch x heads, e.g. several objects' memory attention) are taken one at a time, each
    with the chunk one head alone would get: batched products over a few heads with chunks a few times
    shorter run well below the matrix rate (measured 1.8x slower for 3 objects). One object's numbers
    are then the same whether it is attended alone or in a batch."""
    heads = q.shape[:-2]
    if 1 < math.prod(heads) <= MAX_ONEDNN_HEADS:
        outs = [chunked_attention(q[idx], k[idx], v[idx], max_scores) for idx in itertools.product(*map(range, heads))]
        return torch.stack(outs).view(*heads, *outs[0].shape)
    k_t = k.transpose(-1, -2)
    scale = q.shape[-1] ** -0.5
    rows = max(1, max_scores // max(1, k.shape[-2] * math.prod(heads)))
    chunks = []
    for start in range(0, q.shape[-2], rows):
        scores = torch.matmul(q[..., start:start + rows, :] * scale, k_t)
        chunks.append(torch.matmul(torch.softmax(scores, dim=-1), v))
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=-2)


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary position encoding on queries and keys.

    Queries always cover one square grid of tokens. With `rope_k_repeat`, keys
    may cover several such grids (one per memory frame); the last
    `num_k_exclude_rope` keys (object pointers) are not rotated. The other arguments are `Attention`'s.
    """

    def __init__(
        self,
        *args,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: Tuple[int, int] = (64, 64),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
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
