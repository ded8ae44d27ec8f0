"""Routing-by-agreement between capsule layers (paper Procedure 1).

Child capsule ``i`` predicts parent ``j`` as ``u_hat_{j|i} = W_ij u_i`` (eq. 2) and is coupled to it
with weight ``c_ij``; couplings follow the agreement between predictions and outputs:

    b_ij <- 0                                   routing logits, per example, never learned
    repeat r times:
        c_i  = softmax_j(b_i)                   over the parents j of each child i
        s_j  = sum_i c_ij u_hat_{j|i}
        v_j  = squash(s_j)                      eq. 1
        b_ij = b_ij + u_hat_{j|i} . v_j         (skipped after the last iteration: unused)

Computed without ever materialising the predictions u_hat (B x 1152 x 10 x 16 values, 94 MB at
batch 128, read and written a dozen times per step), using the linearity of W_ij:

    s_j              = sum_i W_ij (c_ij u_i)      one matmul per parent: [B, I*K] @ [I*K, D]
    u_hat_{j|i} . v_j = u_i . (W_ij^T v_j)        one matmul per parent: [B, D] @ [D, I*K]

so every step is a matmul or an elementwise op on tensors of K = 8 (not D = 16) values per
(example, child, parent): the same function, in half the memory traffic.

(Autograd keeps the [J, B, I*K] intermediates, 47 MB each at batch 128, for the backward pass.
Recomputing them there instead, with hand-written backward passes, saved ~100 MB of peak memory
but made routing forward + backward 60-80% slower: 353 -> 556-651 ms at batch 128.)

Shapes: B examples, I children (1152), K child dims (8), J parents (10), D parent dims (16).
Internally the routing tensors are laid out parent-first, [J, B, I], so each matmul is batched over j.
"""

from typing import NamedTuple

import torch
from torch import nn

from capsnet.squash import squash


class RoutingResult(NamedTuple):
    outputs: torch.Tensor  # v, [B, J, D]
    couplings: tuple[torch.Tensor, ...]  # c used by each iteration, each [B, I, J]


class DynamicRouting(nn.Module):
    """Procedure 1 with ``iterations`` rounds.

    ``detach_inner``: when true, the agreements added to the routing logits are computed without
    gradients, so the couplings are constants for backprop and gradients reach W and u only through
    the final weighted sum (the stop-gradient some implementations use). The paper's Procedure 1
    and the official code have no stop-gradient, so the default is false.
    """

    def __init__(self, iterations: int = 3, detach_inner: bool = False):
        super().__init__()
        if iterations < 1:
            raise ValueError(f"routing iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        self.detach_inner = detach_inner

    def forward(self, capsules: torch.Tensor, weight: torch.Tensor) -> RoutingResult:
        """capsules u: [B, I, K]; weight W: [I, K, J, D] (W_ij is weight[i, :, j, :] transposed)."""
        # Routing is <1% of the step's FLOPs: float32 (autocast off) keeps agreements exact under bf16.
        with torch.autocast(capsules.device.type, enabled=False):
            return self._route(capsules.float(), weight.float())

    def _route(self, u: torch.Tensor, weight: torch.Tensor) -> RoutingResult:
        batch, children, child_dim = u.shape
        _, _, parents, parent_dim = weight.shape
        rows = children * child_dim
        w = weight.reshape(rows, parents, parent_dim)  # [I*K, J, D], rows ordered (i, k)

        # Iteration 1: b = 0, so c_ij = 1/J for all pairs and s_j = sum_i W_ij u_i / J.
        uniform = u.new_full((), 1.0 / parents).expand(batch, children, parents)
        couplings = [uniform]
        outputs = squash(
            (u.reshape(batch, rows) @ w.reshape(rows, -1)).view(batch, parents, parent_dim) / parents
        )
        coupling_logits = None  # b, [J, B, I]
        for _ in range(self.iterations - 1):
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_inner):
                back_projected = torch.einsum("bjd,njd->jbn", outputs, w)  # W_ij^T v_j: [J, B, I*K]
                agreement = (back_projected.view(parents, batch, children, child_dim) * u).sum(
                    -1
                )  # [J, B, I]
            coupling_logits = agreement if coupling_logits is None else coupling_logits + agreement
            coupling = torch.softmax(coupling_logits, dim=0)  # over parents j
            couplings.append(coupling.permute(1, 2, 0))  # [B, I, J] view
            weighted = (coupling.unsqueeze(-1) * u).view(parents, batch, rows)  # c_ij u_i: [J, B, I*K]
            outputs = squash(torch.einsum("jbn,njd->bjd", weighted, w))  # [B, J, D]
        return RoutingResult(outputs, tuple(couplings))
