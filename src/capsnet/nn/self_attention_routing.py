"""Self-attention routing (Mazzia, Salvetti & Chiaberge, "Efficient-CapsNet: capsule network with
self-attention routing", Scientific Reports 11, 2021): the routing alone, on this network's
predictions u_hat_{j|i} = W_ij u_i and with its squash (eq. 1).

One pass, no iterations: a child's prediction for parent j is scored against every child's prediction
for j (self-attention, the scores summed over the other children), the scores are normalised over the
parents, and a learned log prior is added:

    A_ij = sum_k u_hat_{j|i} . u_hat_{j|k} / sqrt(D)     [B, I, J]
    c_ij = softmax_j(A_ij) + p_ij                        p [I, J]: learned, 0 at first
    s_j  = sum_i c_ij u_hat_{j|i}  (+ b_j)
    v_j  = squash(s_j)

Never materialised: the I x I attention matrices (B x J x 1152^2 values). Summed over k first,
A_ij = u_hat_{j|i} . t_j / sqrt(D) with t_j = sum_k W_kj u_k, one matmul; and u_hat_{j|i} . t_j is the
agreement of Procedure 1 with t in place of v (``capsnet.nn.routing``'s helpers compute both).
"""

import math

import torch
from torch import nn

from capsnet.nn.routing import (
    Routing,
    RoutingResult,
    _agreement,
    _recomputed,
    _summed_votes,
    _weighted_sum,
    autocast_off,
    by_parent,
    component_major,
)
from capsnet.nn.squash import squash


class SelfAttentionRouting(Routing):
    passes = 1

    def __init__(self, *, children: int, parents: int):
        super().__init__()
        self.log_prior = nn.Parameter(torch.zeros(children, parents))  # p, [I, J]

    def forward(
        self, capsules: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> RoutingResult:
        """capsules u: [B, I, K]; weight W: [I, K, J, D]; bias b: [J, D] or None."""
        with autocast_off(capsules.device.type):  # float32, as Procedure 1
            parent_dim = weight.shape[-1]
            u, w = component_major(capsules.float(), weight.float())  # [B, K, I], [K*I, J, D]
            w_parents = by_parent(w)  # [J, K*I, D]
            totals = _summed_votes(u, w)  # t_j, [B, J, D]
            scores = _recomputed(_agreement, totals, w_parents, u) / math.sqrt(parent_dim)  # A, [J, B, I]
            coupling = torch.softmax(scores, dim=0) + self.log_prior.float().T.unsqueeze(1)  # c, [J, B, I]
            s = _recomputed(_weighted_sum, coupling, u, w_parents)  # [B, J, D]
            if bias is not None:
                s = s + bias.float()
            return RoutingResult(squash(s), (coupling.permute(1, 2, 0),))
