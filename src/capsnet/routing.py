"""Routing-by-agreement between capsule layers (paper Procedure 1).

For every example, child capsule ``i`` sends its prediction ``u_hat_{j|i}`` to parent ``j`` with a
coupling coefficient ``c_ij``; couplings follow the agreement between predictions and outputs:

    b_ij <- 0                                   routing logits, per example, never learned
    repeat r times:
        c_i  = softmax_j(b_i)                   over the parents j of each child i
        s_j  = sum_i c_ij u_hat_{j|i}
        v_j  = squash(s_j)                      eq. 1
        b_ij = b_ij + u_hat_{j|i} . v_j         (skipped after the last iteration: unused)

Shapes: B examples, I child capsules (1152 for MNIST), J parents (10), D pose dims (16).
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

    ``detach_inner``: when true, the agreement added to the routing logits is computed without
    gradients, so the couplings are constants for backprop and gradients reach ``u_hat`` only
    through the final weighted sum (the stop-gradient some implementations use). The paper's
    Procedure 1 and the official code have no stop-gradient, so the default is false.
    """

    def __init__(self, iterations: int = 3, detach_inner: bool = False):
        super().__init__()
        if iterations < 1:
            raise ValueError(f"routing iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        self.detach_inner = detach_inner

    def forward(self, predictions: torch.Tensor) -> RoutingResult:
        # Routing is <1% of the step's FLOPs: float32 (autocast off) keeps agreements exact under bf16.
        with torch.autocast(predictions.device.type, enabled=False):
            return self._route(predictions.float())

    def _route(self, predictions: torch.Tensor) -> RoutingResult:
        batch, children, parents, _ = predictions.shape  # u_hat: [B, I, J, D]
        # Iteration 1: b = 0, so softmax(b) is uniform, c_ij = 1/J, and s_j = sum_i u_hat_{j|i} / J.
        uniform = predictions.new_full((), 1.0 / parents).expand(batch, children, parents)
        couplings = [uniform]
        outputs = squash(predictions.sum(dim=1) / parents)  # [B, J, D]
        coupling_logits = None
        for _ in range(self.iterations - 1):
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_inner):
                agreement = torch.einsum("bijd,bjd->bij", predictions, outputs)  # u_hat . v
            coupling_logits = agreement if coupling_logits is None else coupling_logits + agreement
            coupling = torch.softmax(coupling_logits, dim=2)  # over parents j; [B, I, J]
            couplings.append(coupling)
            outputs = squash(torch.einsum("bij,bijd->bjd", coupling, predictions))  # [B, J, D]
        return RoutingResult(outputs, tuple(couplings))
