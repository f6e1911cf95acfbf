"""Image encoder: Hiera trunk + FPN neck producing multi-scale features and position encodings."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn


class FpnNeck(nn.Module):
    """Feature pyramid without output convs: 1x1 lateral convs to `d_model`, with top-down
    fusion (upsample x2 and sum/average) only on `fpn_top_down_levels`."""

    def __init__(
        self,
        position_encoding: nn.Module,
        d_model: int,
        backbone_channel_list: List[int],
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "bilinear",
        fuse_type: str = "sum",
        fpn_top_down_levels: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.position_encoding = position_encoding
        self.backbone_channel_list = backbone_channel_list
        self.d_model = d_model
        # convs[0] belongs to the lowest-resolution level (backbone_channel_list is low-res first).
        self.convs = nn.ModuleList()
        for channels in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module(
                "conv", nn.Conv2d(channels, d_model, kernel_size=kernel_size, stride=stride, padding=padding)
            )
            self.convs.append(lateral)
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        self.fpn_top_down_levels = list(range(len(self.convs)) if fpn_top_down_levels is None else fpn_top_down_levels)

    def forward(self, xs: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """xs: trunk features, high to low resolution. Returns (features, position encodings), same order."""
        if len(xs) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} feature levels, got {len(xs)}")
        last = len(self.convs) - 1
        out: List[torch.Tensor] = [None] * len(xs)  # type: ignore[list-item]
        pos: List[torch.Tensor] = [None] * len(xs)  # type: ignore[list-item]
        prev = None
        for level in range(last, -1, -1):
            lateral = self.convs[last - level](xs[level])
            if prev is not None and level in self.fpn_top_down_levels:
                top_down = F.interpolate(
                    prev.to(dtype=torch.float32),
                    scale_factor=2.0,
                    mode=self.fpn_interp_model,
                    align_corners=None if self.fpn_interp_model == "nearest" else False,
                    antialias=False,
                )
                prev = lateral + top_down
                if self.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out[level] = prev
            pos[level] = self.position_encoding(prev).to(prev.dtype)
        return out, pos


class ImageEncoder(nn.Module):
    """Trunk + neck; `scalp` drops that many lowest-resolution levels from the outputs."""

    def __init__(self, trunk: nn.Module, neck: nn.Module, scalp: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(
                f"trunk channels {trunk.channel_list} do not match neck channels {neck.backbone_channel_list}"
            )

    def forward(self, sample: torch.Tensor) -> Dict[str, Union[torch.Tensor, List[torch.Tensor]]]:
        features, pos = self.neck(self.trunk(sample))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}
