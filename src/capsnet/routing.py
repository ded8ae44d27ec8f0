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

Both contractions are partial derivatives of one trilinear form, F(c, u, v) = sum c_ij u_i.(W_ij^T v_j):
the agreement is dF/dc and the weighted sum dF/dv. So each one's backward is the other one plus
the gradients of F in u and W, and autograd needs to keep only c, v, u and W (small), not the
[J, B, I*K] intermediates (47 MB each at batch 128): ``_Agreement`` and ``_WeightedSum`` below.

Shapes: B examples, I children (1152), K child dims (8), J parents (10), D parent dims (16).
Internally the routing tensors are laid out parent-first, [J, B, I], so each matmul is batched over j.
"""

from typing import NamedTuple

import torch
from torch import nn

from capsnet.squash import squash


def _back_project(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """W_ij^T v_j for every (parent, example, child): [B, J, D], [I*K, J, D] -> [J, B, I*K]."""
    return torch.einsum("bjd,njd->jbn", v, w)


def _spread(c: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """c_ij u_i: [J, B, I], [B, I, K] -> [J, B, I*K]."""
    return (c.unsqueeze(-1) * u).flatten(2)


def _agreement(v: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """u_hat_{j|i} . v_j = u_i . (W_ij^T v_j): -> [J, B, I]."""
    return (_back_project(v, w).view(w.shape[1], *u.shape) * u).sum(-1)


def _weighted_sum(c: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """s_j = sum_i W_ij (c_ij u_i): -> [B, J, D]."""
    return torch.einsum("jbn,njd->bjd", _spread(c, u), w)


def _form_grad_u(c: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """dF/du_i = sum_j c_ij W_ij^T v_j: -> [B, I, K]."""
    parents, batch, children = c.shape
    return (_back_project(v, w).view(parents, batch, children, -1) * c.unsqueeze(-1)).sum(0)


def _form_grad_w(c: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """dF/dW_ij = sum_b c_ij u_i v_j^T: -> [I*K, J, D]."""
    return torch.einsum("jbn,bjd->njd", _spread(c, u), v)


class _Agreement(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, u, w):
        ctx.save_for_backward(v, u, w)
        return _agreement(v, u, w)

    @staticmethod
    def backward(ctx, grad):
        v, u, w = ctx.saved_tensors
        return _weighted_sum(grad, u, w), _form_grad_u(grad, v, w), _form_grad_w(grad, u, v)


class _WeightedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c, u, w):
        ctx.save_for_backward(c, u, w)
        return _weighted_sum(c, u, w)

    @staticmethod
    def backward(ctx, grad):
        c, u, w = ctx.saved_tensors
        return _agreement(grad, u, w), _form_grad_u(c, grad, w), _form_grad_w(c, u, grad)


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
        parents, parent_dim = weight.shape[2:]
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
                agreement = _Agreement.apply(outputs, u, w)  # u_hat_{j|i} . v_j: [J, B, I]
            coupling_logits = agreement if coupling_logits is None else coupling_logits + agreement
            coupling = torch.softmax(coupling_logits, dim=0)  # over parents j
            couplings.append(coupling.permute(1, 2, 0))  # [B, I, J] view
            outputs = squash(_WeightedSum.apply(coupling, u, w))  # [B, J, D]
        return RoutingResult(outputs, tuple(couplings))
