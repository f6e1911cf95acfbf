"""Position encodings: 2-D sine, random Fourier features, and axial rotary (RoPE)."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Normalised 2-D sine/cosine encoding of a feature map's pixel grid.

    The output depends only on the input's batch size and spatial size, so it is
    recomputed on every call instead of cached. `warmup_cache`, `image_size` and
    `strides` are accepted for config compatibility and have no effect.
    """

    def __init__(
        self,
        num_pos_feats: int,
        temperature: int = 10000,
        normalize: bool = True,
        scale: Optional[float] = None,
        warmup_cache: bool = True,
        image_size: int = 1024,
        strides: Tuple[int, ...] = (4, 8, 16, 32),
    ) -> None:
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError("num_pos_feats must be even")
        if scale is not None and not normalize:
            raise ValueError("scale requires normalize=True")
        self.num_pos_feats = num_pos_feats // 2  # features per axis
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def _interleaved_sincos(self, pos: torch.Tensor) -> torch.Tensor:
        """(..., ) positions -> (..., num_pos_feats) with sin on even, cos on odd channels."""
        idx = torch.arange(self.num_pos_feats, dtype=torch.float32, device=pos.device)
        dim_t = self.temperature ** (2 * (idx // 2) / self.num_pos_feats)
        angles = pos[..., None] / dim_t
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, (height, width) = x.shape[0], x.shape[-2:]
        device = x.device
        y_pos = torch.arange(1, height + 1, dtype=torch.float32, device=device)
        x_pos = torch.arange(1, width + 1, dtype=torch.float32, device=device)
        if self.normalize:
            eps = 1e-6
            y_pos = y_pos / (y_pos[-1:] + eps) * self.scale
            x_pos = x_pos / (x_pos[-1:] + eps) * self.scale
        enc_y = self._interleaved_sincos(y_pos)[:, None, :].expand(height, width, -1)
        enc_x = self._interleaved_sincos(x_pos)[None, :, :].expand(height, width, -1)
        pos = torch.cat((enc_y, enc_x), dim=-1).permute(2, 0, 1)
        return pos[None].repeat(batch, 1, 1, 1)


class PositionEmbeddingRandom(nn.Module):
    """Encoding of normalised coordinates through a fixed random Gaussian projection."""

    def __init__(self, num_pos_feats: int = 64, scale: Optional[float] = None) -> None:
        super().__init__()
        if scale is None or scale <= 0.0:
            scale = 1.0
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) coordinates in [0, 1] -> (..., 2 * num_pos_feats)."""
        projected = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * projected
        return torch.cat([projected.sin(), projected.cos()], dim=-1)

    def forward(self, size: Tuple[int, int]) -> torch.Tensor:
        """Encoding of every pixel centre of an (h, w) grid, shaped (C, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """Encode (B, N, 2) pixel coordinates (x, y) of an image of size (H, W)."""
        coords = torch.stack(
            [coords_input[:, :, 0] / image_size[1], coords_input[:, :, 1] / image_size[0]], dim=-1
        )
        return self._pe_encoding(coords.to(torch.float))


# --- axial rotary position encoding -------------------------------------------------


def compute_axial_cis(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> torch.Tensor:
    """Complex rotations (end_x * end_y, dim // 2) for a row-major grid of width end_x.

    The first dim // 4 entries rotate with the x coordinate, the rest with y.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    flat = torch.arange(end_x * end_y, dtype=torch.float32)
    pos_x = flat % end_x
    pos_y = torch.div(flat, end_x, rounding_mode="floor")
    angles_x = torch.outer(pos_x, freqs)
    angles_y = torch.outer(pos_y, freqs)
    cis_x = torch.polar(torch.ones_like(angles_x), angles_x)
    cis_y = torch.polar(torch.ones_like(angles_y), angles_y)
    return torch.cat([cis_x, cis_y], dim=-1)


def _as_complex_pairs(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))


def apply_rotary_enc(
    xq: torch.Tensor,
    xk: torch.Tensor,
    freqs_cis: torch.Tensor,
    repeat_freqs_k: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries and keys (B, heads, N, C) by `freqs_cis` (N, C // 2).

    With `repeat_freqs_k`, keys may hold several grids back to back (memories of
    several frames); the rotations are tiled to cover all of them.
    """
    q_c = _as_complex_pairs(xq)
    freqs = freqs_cis.view(*([1] * (q_c.ndim - 2)), *freqs_cis.shape)
    if freqs_cis.shape != q_c.shape[-2:]:
        raise ValueError(f"freqs_cis {tuple(freqs_cis.shape)} does not match queries {tuple(q_c.shape[-2:])}")
    q_out = torch.view_as_real(q_c * freqs).flatten(3).type_as(xq)
    if xk.shape[-2] == 0:
        return q_out, xk
    k_c = _as_complex_pairs(xk)
    if repeat_freqs_k:
        repeats = k_c.shape[-2] // q_c.shape[-2]
        # Tile with expand+flatten: repeat() is not implemented for complex tensors on every device.
        freqs = freqs.unsqueeze(-3)
        freqs = freqs.expand(*freqs.shape[:-3], repeats, *freqs.shape[-2:]).flatten(-3, -2)
    k_out = torch.view_as_real(k_c * freqs).flatten(3).type_as(xk)
    return q_out, k_out
