"""The two capsule layers of the paper's MNIST network (section 4).

PrimaryCaps: a 9x9 stride-2 convolution to ``types * dim`` channels, read as ``types`` maps of
``dim``-D capsules on the output grid (32 x 6 x 6 = 1152 capsules of 8D for 20x20 inputs), squashed.
The official code scales the convolution's input by 1/32 (``input_scale``: its primary capsules are a
one-iteration routing whose softmax over the 32 types gives every vote 1/32) before adding the bias.

DigitCaps: every child capsule ``i`` predicts every parent ``j`` through its own matrix,
``u_hat_{j|i} = W_ij u_i`` (paper eq. 2), and routing-by-agreement turns the predictions into
the parents' outputs ``v_j``.
"""

import torch
from torch import nn

from capsnet.nn.conv import FastWeightGradConv2d
from capsnet.nn.routing import Routing, RoutingResult
from capsnet.nn.squash import squash


class PrimaryCapsules(nn.Module):
    def __init__(
        self, in_channels: int, types: int, dim: int, kernel_size: int, stride: int, input_scale: float = 1.0
    ):
        super().__init__()
        self.types, self.dim, self.input_scale = types, dim, input_scale
        self.conv = FastWeightGradConv2d(in_channels, types * dim, kernel_size, stride)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.input_scale != 1.0:  # conv(x * a) = a * (W * x) + bias: the official votes/32 + bias
            features = features * self.input_scale
        maps = self.conv(features)  # [B, types*dim, H, W]
        batch, _, height, width = maps.shape
        # Channel c = type * dim + component; capsules are ordered (type, row, column).
        capsules = maps.view(batch, self.types, self.dim, height, width).permute(0, 1, 3, 4, 2)
        return squash(capsules.reshape(batch, self.types * height * width, self.dim))  # [B, I, dim]


class DigitCapsules(nn.Module):
    """``in_caps`` children of ``in_dim`` D to ``out_caps`` parents of ``out_dim`` D, routed.

    One ``in_dim x out_dim`` matrix per (child, parent) pair, in a single tensor
    ``[I, in_dim, J, out_dim]`` that routing uses whole: no per-example copies of W, and the
    predictions u_hat are never materialised (see ``capsnet.nn.routing``). No bias in the paper's
    parameter count; the official code adds one to each s_j (``bias=True``: [J, D]).
    """

    def __init__(
        self,
        in_caps: int,
        in_dim: int,
        out_caps: int,
        out_dim: int,
        routing: Routing,
        weight_init_std: float = 0.01,
        bias: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_caps, in_dim, out_caps, out_dim) * weight_init_std)
        self.bias = nn.Parameter(torch.zeros(out_caps, out_dim)) if bias else None
        self.routing = routing

    def predictions(self, capsules: torch.Tensor) -> torch.Tensor:
        """u_hat_{j|i} = W_ij u_i for every (example, child, parent): [B, I, in_dim] -> [B, I, J, D].

        Routing does not need them; they are here for inspection and tests.
        """
        return torch.einsum("bik,ikjd->bijd", capsules, self.weight.to(capsules.dtype))

    def forward(self, capsules: torch.Tensor) -> RoutingResult:
        return self.routing(capsules, self.weight, self.bias)
