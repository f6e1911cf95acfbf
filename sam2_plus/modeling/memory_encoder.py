"""Memory encoder: fuses a frame's features with its predicted mask into a memory."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, Linear, clone_module


class MaskDownSampler(nn.Module):
    """Strided conv + LayerNorm2d + activation stages down to `total_stride`, then a 1x1
    conv to `embed_dim`. Channels grow by stride**2 per stage."""

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 4,
        stride: int = 4,
        padding: int = 0,
        total_stride: int = 16,
        activation: Type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        num_stages = int(math.log2(total_stride) // math.log2(stride))
        if stride**num_stages != total_stride:
            raise ValueError("total_stride must be a power of stride")
        self.encoder = nn.Sequential()
        channels = 1
        for _ in range(num_stages):
            out_channels = channels * stride**2
            self.encoder.append(
                nn.Conv2d(channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding)
            )
            self.encoder.append(LayerNorm2d(out_channels))
            self.encoder.append(activation())
            channels = out_channels
        self.encoder.append(nn.Conv2d(channels, embed_dim, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, channel LayerNorm, pointwise MLP, layer scale, residual."""

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        padding: int = 3,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        use_dwconv: bool = True,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = Linear(4 * dim, dim)
        self.gamma: Optional[nn.Parameter] = (
            nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """Optional 1x1 input projection followed by `num_layers` copies of `layer`."""

    def __init__(self, layer: nn.Module, num_layers: int, dim: Optional[int] = None, input_projection: bool = False):
        super().__init__()
        self.proj: nn.Module = nn.Identity()
        self.layers = clone_module(layer, num_layers)
        if input_projection:
            if dim is None:
                raise ValueError("input_projection needs dim")
            self.proj = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """pix_feat (B, in_dim, H, W) + mask logits (B, 1, 16H, 16W) -> memory (B, out_dim, H, W)."""

    def __init__(
        self,
        out_dim: int,
        mask_downsampler: nn.Module,
        fuser: nn.Module,
        position_encoding: nn.Module,
        in_dim: int = 256,
    ) -> None:
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = fuser
        self.position_encoding = position_encoding
        self.out_proj: nn.Module = nn.Identity() if out_dim == in_dim else nn.Conv2d(in_dim, out_dim, kernel_size=1)

    def forward(
        self,
        pix_feat: torch.Tensor,
        masks: torch.Tensor,
        skip_mask_sigmoid: bool = False,
    ) -> Dict[str, Union[torch.Tensor, List[torch.Tensor]]]:
        """Returns {"vision_features": memory, "vision_pos_enc": [its position encoding]}."""
        if not skip_mask_sigmoid:
            masks = F.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return {"vision_features": x, "vision_pos_enc": [pos]}
