"""Small building blocks shared by the SAM 2 / SAM 2++ model components."""

from __future__ import annotations

import copy
from typing import Callable, Type

import torch
import torch.nn.functional as F
from torch import nn


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Functional activation selected by its config name."""
    table = {"relu": F.relu, "gelu": F.gelu, "glu": F.glu}
    if name not in table:
        raise RuntimeError(f"unsupported activation {name!r}; expected one of {sorted(table)}")
    return table[name]


def clone_module(module: nn.Module, count: int) -> nn.ModuleList:
    """`count` independent deep copies of `module`."""
    return nn.ModuleList(copy.deepcopy(module) for _ in range(count))


class MLP(nn.Module):
    """Stack of `num_layers` linear layers with an activation between them."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: Type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.sigmoid_output = sigmoid_output
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for idx, linear in enumerate(self.layers):
            x = linear(x)
            if idx < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of an (N, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Explicit two-pass mean/variance (not F.layer_norm) to reproduce the
        # reference's float rounding exactly.
        centered = x - x.mean(dim=1, keepdim=True)
        var = centered.pow(2).mean(dim=1, keepdim=True)
        normed = centered / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * normed + self.bias[:, None, None]
