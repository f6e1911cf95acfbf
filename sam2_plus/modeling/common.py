"""Small building blocks shared by the SAM 2 / SAM 2++ model components."""

from __future__ import annotations

import copy
from typing import Callable, Optional, Type

import torch
import torch.nn.functional as F
from torch import nn


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Functional activation selected by its config name."""
    table = {"relu": F.relu, "gelu": F.gelu, "glu": F.glu}
    if name not in table:
        raise RuntimeError(f"unsupported activation {name!r}; expected one of {sorted(table)}")
    return table[name]


_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_dtype(x: torch.Tensor) -> Optional[torch.dtype]:
    """bfloat16 where a product on `x` runs through oneDNN: CPU inference in bfloat16 (or under CPU
    bfloat16 autocast), the fast mode. None where PyTorch's own kernels run: float32, other devices,
    training (grad enabled), inside `torch.compile` (which fuses and lowers linear layers itself).

    PyTorch's CPU products use MKL, whose GEMM runs at about half the hardware's rate on AMD processors,
    while oneDNN uses the full vector width there (float32: 184 vs 320 GFLOP/s on two cores of an EPYC).
    float32 keeps MKL all the same: those are the reference's kernels, which reproduce its results bit
    for bit. oneDNN sums in another order, and where tracking is unstable (an object absent on its own
    prompted frame) that rounding grew past the parity tolerances within a few frames."""
    if not _ONEDNN_LINEAR or x.device.type != "cpu" or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return dtype if dtype == torch.bfloat16 else None


def matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T for 2-D tensors of one oneDNN dtype (see `onednn_dtype`)."""
    return torch.ops.mkldnn._linear_pointwise(a.contiguous(), b.contiguous(), None, "none", [], "")


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, same state-dict keys) that runs bfloat16 inference on the CPU
    through oneDNN (see `onednn_dtype`). `gelu=True` applies an exact GELU and `residual` is added last:
    residual + gelu(x W^T + b); either one alone is fused into the product, which saves passes over
    large activations."""

    def forward(self, x: torch.Tensor, *, gelu: bool = False, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        dtype = onednn_dtype(x)
        if dtype is None or (residual is not None and residual.dtype != dtype):
            y = super().forward(x)
            y = F.gelu(y) if gelu else y
            return y if residual is None else residual + y
        weight = self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        x = x.to(dtype).contiguous()
        if residual is not None and not gelu:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual.contiguous(), weight, bias, "add")
        y = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                               "none" if gelu else "")
        return y if residual is None else residual + y


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
        self.layers = nn.ModuleList(Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.sigmoid_output = sigmoid_output
        self.act = activation()

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The stack applied to x; `residual`, if given, is added to the output (fused where possible)."""
        exact_gelu = isinstance(self.act, nn.GELU) and self.act.approximate == "none"
        for linear in self.layers[:-1]:
            x = linear(x, gelu=True) if exact_gelu else self.act(linear(x))
        if self.sigmoid_output:
            x = torch.sigmoid(self.layers[-1](x))
            return x if residual is None else residual + x
        return self.layers[-1](x, residual=residual)


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
