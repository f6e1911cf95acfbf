"""Corner-heatmap box head of the SAM 2++ unified decoder.

The head turns decoder features into two heatmaps per output token (one for
the top-left corner, one for the bottom-right corner) at 1/4 of the input
resolution and reads each corner off its heatmap with a soft-argmax. Boxes are
returned as normalised ``(x0, y0, x1, y1)``.

Each branch is a small feature pyramid: the stride-16 decoder embedding is
refined by 3x3 conv -> batch norm -> ReLU blocks, upsampled (nearest) twice and
fused with lateral projections of the stride-8 and stride-4 backbone features.
The final per-pixel features (``channel // 8`` wide) are projected onto the
hypernetwork vectors of the output tokens, exactly as the mask head does, which
yields one heatmap per token.

State-dict layout (checkpoint compatible): every block is an
``nn.Sequential(conv, norm, relu)``, so its entries are ``<block>.0.{weight,bias}``
and ``<block>.1.{weight,bias,running_mean,running_var}``. The corner coordinate
grids are non-persistent buffers: they are not in the state dict but follow the
module through ``.to(device / dtype)``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrozenBatchNorm2d", "conv_bn_relu", "BoxHead", "BoxHeadLowRes"]


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (a per-channel affine map).

    ``y = x * s + (bias - running_mean * s)`` with ``s = weight / sqrt(running_var + 1e-5)``.
    All four tensors are buffers (never trained); there is no ``num_batches_tracked``
    entry, and one found in a loaded state dict is ignored.
    """

    eps: float = 1e-5

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(n))
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # Checkpoints written from a regular BatchNorm2d carry this counter; it has no
        # meaning here, so drop it instead of reporting an unexpected key.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = self.weight.reshape(1, -1, 1, 1)
        beta = self.bias.reshape(1, -1, 1, 1)
        var = self.running_var.reshape(1, -1, 1, 1)
        mean = self.running_mean.reshape(1, -1, 1, 1)
        # Fold the statistics into one scale and one shift, then apply them.
        scale = gamma * (var + self.eps).rsqrt()
        shift = beta - mean * scale
        return x * scale + shift

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def conv_bn_relu(in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, freeze_bn: bool = False) -> nn.Sequential:
    """``Conv2d(bias=True) -> (Frozen)BatchNorm2d -> ReLU`` as a 3-element ``nn.Sequential``."""
    norm = FrozenBatchNorm2d(out_planes) if freeze_bn else nn.BatchNorm2d(out_planes)
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride,
                  padding=padding, dilation=dilation, bias=True),
        norm,
        nn.ReLU(inplace=True),
    )


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    # nearest-neighbour, integer factor
    return F.interpolate(x, scale_factor=factor)


class _CornerHeadBase(nn.Module):
    """Shared layers and the soft-argmax read-out of both box-head variants."""

    _CORNERS = ("tl", "br")

    def __init__(self, inplanes: int = 64, channel: int = 256, feat_sz: int = 20,
                 stride: int = 16, freeze_bn: bool = False) -> None:
        super().__init__()
        self.feat_sz = feat_sz
        self.stride = stride
        self.img_sz = feat_sz * stride

        def block(cin: int, cout: int) -> nn.Sequential:
            return conv_bn_relu(cin, cout, freeze_bn=freeze_bn)

        # Registration order follows the checkpoint's key order.
        for c in self._CORNERS:
            setattr(self, f"conv1_{c}", block(inplanes, channel))
            setattr(self, f"conv2_{c}", block(channel, channel // 2))
            setattr(self, f"conv3_{c}", block(channel // 2, channel // 4))
            setattr(self, f"conv4_{c}", block(channel // 4, channel // 8))
            setattr(self, f"adjust1_{c}", block(inplanes, channel // 2))
            setattr(self, f"adjust2_{c}", block(inplanes, channel // 4))
        for c in self._CORNERS:
            # stride-16 features (channel // 2) -> stride 4, and stride-8 (channel // 4) -> stride 4
            setattr(self, f"adjust3_{c}", nn.Sequential(block(channel // 2, channel // 4),
                                                        block(channel // 4, channel // 8)))
            setattr(self, f"adjust4_{c}", nn.Sequential(block(channel // 4, channel // 8)))
            self._extra_layers(c, inplanes, channel, block)

        # Pixel coordinates of the heatmap cells, flattened row-major:
        # cell k sits at x = (k % feat_sz) * stride, y = (k // feat_sz) * stride.
        cells = torch.arange(feat_sz * feat_sz)
        self.register_buffer("coord_x", ((cells % feat_sz) * stride).float(), persistent=False)
        self.register_buffer("coord_y", ((cells // feat_sz) * stride).float(), persistent=False)

    def _extra_layers(self, c, inplanes, channel, block) -> None:
        pass

    # -- read-out ---------------------------------------------------------------------------
    def soft_argmax(self, score_map: torch.Tensor, return_dist: bool = False, softmax: bool = True):
        """Expected (x, y) pixel coordinate under ``softmax(score_map)``, per map.

        ``score_map``: any shape whose trailing size is ``feat_sz * feat_sz`` per map
        (e.g. ``[M, 1, feat_sz, feat_sz]``). Returns ``(x, y)`` each ``[M]``; with
        ``return_dist`` also the ``[M, feat_sz**2]`` probabilities (or the raw scores
        when ``softmax=False``).
        """
        scores = score_map.reshape(-1, self.feat_sz * self.feat_sz)
        prob = F.softmax(scores, dim=1)
        x = torch.sum(self.coord_x * prob, dim=1)
        y = torch.sum(self.coord_y * prob, dim=1)
        if return_dist:
            return x, y, (prob if softmax else scores)
        return x, y

    def _pyramid(self, c: str, x16: torch.Tensor, lateral8=None, lateral4=None) -> torch.Tensor:
        """One corner branch: stride-16 input -> ``[B, channel // 8, 4h, 4w]`` features."""
        f1 = getattr(self, f"conv1_{c}")(x16)
        f2 = getattr(self, f"conv2_{c}")(f1)

        up1 = _upsample(getattr(self, f"adjust1_{c}")(x16), 2) + _upsample(f2, 2)
        if lateral8 is not None:
            up1 = up1 + lateral8
        f3 = getattr(self, f"conv3_{c}")(up1)

        up2 = _upsample(getattr(self, f"adjust2_{c}")(x16), 4) + _upsample(f3, 2)
        if lateral4 is not None:
            up2 = up2 + lateral4
        f4 = getattr(self, f"conv4_{c}")(up2)

        return (f4 + _upsample(getattr(self, f"adjust3_{c}")(f2), 4)
                + _upsample(getattr(self, f"adjust4_{c}")(f3), 2))

    def _branch_features(self, c: str, x) -> torch.Tensor:
        raise NotImplementedError

    def get_score_map(self, x, hyper_in: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Top-left and bottom-right heatmaps, each ``[B, num_tokens, feat_sz, feat_sz]``."""
        maps = []
        for c in self._CORNERS:
            feats = self._branch_features(c, x)  # [B, C', H, W]
            maps.append(torch.einsum("bnc,bchw->bnhw", hyper_in, feats))
        return maps[0], maps[1]

    def forward(self, x, hyper_in: torch.Tensor, return_dist: bool = False, softmax: bool = True):
        """Predict one box per output token.

        Args:
            x: the features (see the subclass).
            hyper_in: ``[B, N, channel // 8]`` per-token hypernetwork vectors.
            return_dist: also return the per-corner distributions.
            softmax: with ``return_dist``, return probabilities (True) or raw scores.

        Returns:
            boxes ``[B, N, 4]``, normalised ``(x0, y0, x1, y1)`` (divided by
            ``feat_sz * stride``); with ``return_dist`` additionally the top-left and
            bottom-right distributions, each ``[B, N, feat_sz * feat_sz]``.
        """
        map_tl, map_br = self.get_score_map(x, hyper_in)
        B, N = hyper_in.shape[:2]
        if return_dist:
            x0, y0, dist_tl = self.soft_argmax(map_tl, return_dist=True, softmax=softmax)
            x1, y1, dist_br = self.soft_argmax(map_br, return_dist=True, softmax=softmax)
        else:
            x0, y0 = self.soft_argmax(map_tl)
            x1, y1 = self.soft_argmax(map_br)
        boxes = (torch.stack((x0, y0, x1, y1), dim=1) / self.img_sz).reshape(B, N, 4)
        if return_dist:
            return boxes, dist_tl.reshape(B, N, -1), dist_br.reshape(B, N, -1)
        return boxes


class BoxHead(_CornerHeadBase):
    """Box head fed with the decoder embedding and both high-resolution backbone levels.

    This is the variant used by SAM 2++ (``use_high_res_features=True``).

    Args:
        inplanes: channels of the stride-16 decoder embedding (transformer dim, 256).
            The stride-8 / stride-4 inputs have ``inplanes // 4`` / ``inplanes // 8``.
        channel: inner width (256); the final features are ``channel // 8`` wide and
            must equal the hypernetwork vector size.
        feat_sz: heatmap side (``4 * embedding side``, 256 for 1024 input).
        stride: pixels per heatmap cell (4).
        freeze_bn: use :class:`FrozenBatchNorm2d` (True in SAM 2++).

    ``forward(x_list, hyper_in, return_dist=False, softmax=True)`` with
    ``x_list = [feat_s0 [B, inplanes//8, 4h, 4w], feat_s1 [B, inplanes//4, 2h, 2w],
    embedding [B, inplanes, h, w]]``.
    """

    def _extra_layers(self, c, inplanes, channel, block) -> None:
        setattr(self, f"adjust_16_to_16_{c}", block(inplanes, inplanes))
        setattr(self, f"adjust_8_to_8_{c}", block(inplanes // 4, channel // 2))
        setattr(self, f"adjust_4_to_4_{c}", block(inplanes // 8, channel // 4))

    def _branch_features(self, c: str, x_list: Sequence[torch.Tensor]) -> torch.Tensor:
        feat_4, feat_8, feat_16 = x_list
        if feat_4.shape[-1] != self.feat_sz:
            raise ValueError(
                f"stride-4 feature width {feat_4.shape[-1]} != box head feat_sz {self.feat_sz}")
        x16 = getattr(self, f"adjust_16_to_16_{c}")(feat_16)
        # The lateral projections are evaluated up front; their values do not depend
        # on the order of evaluation.
        lat8 = getattr(self, f"adjust_8_to_8_{c}")(feat_8)
        lat4 = getattr(self, f"adjust_4_to_4_{c}")(feat_4)
        return self._pyramid(c, x16, lat8, lat4)

    def forward(self, x_list: Union[List[torch.Tensor], Tuple[torch.Tensor, ...]],
                hyper_in: torch.Tensor, return_dist: bool = False, softmax: bool = True):
        return super().forward(x_list, hyper_in, return_dist=return_dist, softmax=softmax)


class BoxHeadLowRes(_CornerHeadBase):
    """Box head fed with the stride-16 decoder embedding only (``use_high_res_features=False``).

    Same arguments as :class:`BoxHead`; ``forward(x, hyper_in, return_dist=False,
    softmax=True)`` with ``x`` of shape ``[B, inplanes, h, w]`` (``4h == feat_sz``).
    """

    def _branch_features(self, c: str, x: torch.Tensor) -> torch.Tensor:
        return self._pyramid(c, x)

    def forward(self, x: torch.Tensor, hyper_in: torch.Tensor, return_dist: bool = False,
                softmax: bool = True):
        return super().forward(x, hyper_in, return_dist=return_dist, softmax=softmax)
