"""Routing-by-agreement between capsule layers (paper Procedure 1).

Child capsule ``i`` predicts parent ``j`` as ``u_hat_{j|i} = W_ij u_i`` (eq. 2) and is coupled to it
with weight ``c_ij``; couplings follow the agreement between predictions and outputs:

    b_ij <- 0                                   routing logits, per example, never learned
    repeat r times:
        c_i  = softmax_j(b_i)                   over the parents j of each child i
        s_j  = sum_i c_ij u_hat_{j|i}  (+ b_j, a learned bias, in the official code only)
        v_j  = squash(s_j)                      eq. 1
        b_ij = b_ij + u_hat_{j|i} . v_j         (skipped after the last iteration: unused)

Computed without ever materialising the predictions u_hat (B x 1152 x 10 x 16 values, 94 MB at
batch 128, read and written a dozen times per step), using the linearity of W_ij:

    s_j              = sum_i W_ij (c_ij u_i)      one matmul per parent: [B, I*K] @ [I*K, D]
    u_hat_{j|i} . v_j = u_i . (W_ij^T v_j)        one matmul per parent: [B, D] @ [D, I*K]

so every step is a matmul or an elementwise op on tensors of K = 8 (not D = 16) values per
(example, child, parent): the same function, in half the memory traffic.

The [J, B, I*K] intermediates (47 MB each at batch 128, two per iteration after the first) are
not kept for the backward pass: each is recomputed there from the small tensors it came from
(activation checkpointing), which costs one einsum per iteration, <0.5% of a training step's FLOPs,
and keeps them out of the step's peak memory.

Shapes: B examples, I children (1152), K child dims (8), J parents (10), D parent dims (16).
Internally the routing tensors are laid out parent-first, [J, B, I], so each matmul is batched over j,
and a child's components come before the children ([B, K, I], ``component_major``).

This module also holds what every routing shares: the protocol (``Routing``), and ``build_routing``,
which makes the routing a ``conf/routing/<name>.yaml`` names by its ``_target_``.
"""

import contextlib
import importlib
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from capsnet.nn.config import MAX_ITERATIONS, ROUTING_PRECISIONS
from capsnet.nn.squash import squash

DYNAMIC = "capsnet.nn.routing.DynamicRouting"
# A routing is a class of this package: a checkpoint's hyperparameters import nothing else.
PACKAGE = "capsnet.nn."


class RoutingResult(NamedTuple):
    outputs: torch.Tensor  # v, [B, J, D]
    couplings: tuple[torch.Tensor, ...]  # c used by each pass, each [B, I, J]


class Routing(nn.Module):
    """What every routing between two capsule layers computes; ``conf/routing/<name>.yaml`` names one by
    its ``_target_`` (a class of ``capsnet.nn``), and its other keys are the class's settings.

    ``forward(u [B, I, K], W [I, K, J, D], b [J, D] or None) -> RoutingResult``: the parents' outputs
    v [B, J, D] and the couplings c [B, I, J] that each of its ``passes`` used, which the metrics and
    pictures show. The network gives the sizes as keywords, ``children`` (I) and ``parents`` (J), for
    routings with parameters of their own.
    """

    passes: int  # how many coupling tensors forward returns


def build_routing(settings: dict, children: int, parents: int) -> Routing:
    """The routing ``settings`` (the ``routing`` group: ``_target_`` and the class's keys) describe.
    Settings without a ``_target_`` (checkpoints written before routing was a group) are Procedure 1's."""
    settings = dict(settings)
    target = settings.pop("_target_", DYNAMIC)
    module_name, _, class_name = target.rpartition(".")
    if not target.startswith(PACKAGE):
        raise ValueError(
            f"routing._target_={target!r}: a routing is a class of {PACKAGE[:-1]} (see conf/routing)"
        )
    routing_class = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(routing_class, type) and issubclass(routing_class, Routing)):
        raise ValueError(f"routing._target_={target!r} is not a Routing of {module_name}")
    try:
        return routing_class(**settings, children=children, parents=parents)
    except TypeError as error:
        raise ValueError(f"routing={class_name}: {error} (its settings: conf/routing)") from None


class DynamicRouting(Routing):
    """Procedure 1 with ``iterations`` rounds.

    ``detach_inner``: when true, the agreements added to the routing logits are computed without
    gradients, so the couplings are constants for backprop and gradients reach W and u only through
    the final weighted sum (the stop-gradient some implementations use). The paper's Procedure 1
    and the official code have no stop-gradient, so the default is false.
    """

    def __init__(
        self,
        iterations: int = 3,
        detach_inner: bool = False,
        precision: str = "float32",
        *,
        children=None,
        parents=None,
    ):
        super().__init__()
        if not (isinstance(iterations, int) and 1 <= iterations <= MAX_ITERATIONS):
            raise ValueError(f"routing.iterations={iterations!r}: an integer from 1 to {MAX_ITERATIONS}")
        if precision not in ROUTING_PRECISIONS:
            raise ValueError(f"routing.precision={precision!r}: one of {', '.join(ROUTING_PRECISIONS)}")
        self.iterations = self.passes = iterations
        self.detach_inner = detach_inner
        self.precision = precision

    def normalise(self, logits: torch.Tensor) -> torch.Tensor:
        """c_i = softmax_j(b_i): logits b [J, B, I] -> couplings [J, B, I]."""
        return torch.softmax(logits, dim=0)

    def shares(self, parents: int) -> int:
        """When all logits are 0 (the first iteration) every coupling is 1 / shares: 1/J."""
        return parents

    def forward(
        self, capsules: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> RoutingResult:
        """capsules u: [B, I, K]; weight W: [I, K, J, D] (W_ij is weight[i, :, j, :] transposed);
        bias b: [J, D] or None."""
        # Routing is <1% of the step's FLOPs: float32 (autocast off) keeps agreements exact under bf16;
        # precision=bf16 stores the votes' [J, B, K*I] products in bfloat16 when autocast is bf16.
        device = capsules.device.type
        low = self.precision == "bf16" and autocast_dtype(device) == torch.bfloat16
        with autocast_off(device):
            bias = None if bias is None else bias.float()
            dtype = torch.bfloat16 if low else torch.float32
            return self._route(capsules.to(dtype), weight.to(dtype), bias)

    def _route(
        self, u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> RoutingResult:
        batch, children, _ = u.shape
        parents = weight.shape[2]
        u, w = component_major(u, weight)  # [B, K, I], [K*I, J, D]
        w_parents = by_parent(w)  # [J, K*I, D]

        # Iteration 1: b = 0, so c_ij = 1/J for all pairs and s_j = sum_i W_ij u_i / J (1/shares:
        # a leaky routing's orphan parent takes a share too).
        shares = self.shares(parents)
        couplings = [u.new_full((), 1.0 / shares).expand(batch, children, parents)]
        biased = (lambda s: s) if bias is None else (lambda s: s + bias)  # s_j (+ b_j)
        # s_j, v_j and the logits b stay float32 (small tensors); u, W and their products are u's dtype.
        outputs = squash(biased(_summed_votes(u, w).float() / shares))
        coupling_logits = None  # b, [J, B, I]
        for _ in range(self.iterations - 1):
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_inner):
                agreement = _recomputed(_agreement, outputs.to(u.dtype), w_parents, u).float()  # [J, B, I]
            coupling_logits = agreement if coupling_logits is None else coupling_logits + agreement
            coupling = self.normalise(coupling_logits)  # over parents j
            couplings.append(coupling.permute(1, 2, 0))  # [B, I, J] view
            summed = _recomputed(_weighted_sum, coupling.to(u.dtype), u, w_parents).float()
            outputs = squash(biased(summed))  # [B, J, D]
        return RoutingResult(outputs, tuple(couplings))


def component_major(u: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """u [B, I, K] and W [I, K, J, D] laid out component-first: u as [B, K, I], W's rows as (k, i).

    The sums over a child's K = 8 components then run across rows of I = 1152 contiguous values, which
    vectorise; over 8 contiguous values (the [I, K] layout) each sum is a masked, horizontal one.
    """
    children, child_dim, parents, parent_dim = weight.shape
    w = weight.transpose(0, 1).reshape(child_dim * children, parents, parent_dim)
    return u.transpose(1, 2).contiguous(), w


def by_parent(w: torch.Tensor) -> torch.Tensor:
    """W's rows [K*I, J, D] laid out parent-first, [J, K*I, D]: each parent's matrix is then one contiguous
    operand of the per-parent matmuls (batched over j), which would otherwise copy W into that layout
    at every call."""
    return w.transpose(0, 1).contiguous()


def _summed_votes(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_i W_ij u_i: u [B, K, I], w [K*I, J, D] -> [B, J, D]."""
    batch, rows = u.shape[0], w.shape[0]
    return (u.reshape(batch, rows) @ w.reshape(rows, -1)).view(batch, *w.shape[1:])


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast computes in on this device now, or None where it is off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def autocast_off(device_type: str):
    """Autocast turned off where it is on (routing computes in float32); nothing otherwise, so that an
    exported network carries no autocast region."""
    enabled = torch.is_autocast_enabled(device_type)
    return torch.autocast(device_type, enabled=False) if enabled else contextlib.nullcontext()


def _recomputed(fn, *args: torch.Tensor) -> torch.Tensor:
    """fn(*args), with fn's intermediates recomputed in the backward pass rather than kept."""
    if torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _agreement(outputs: torch.Tensor, w_parents: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u_hat_{j|i} . v_j = u_i . (W_ij^T v_j): v [B, J, D], w_parents [J, K*I, D], u [B, K, I]
    -> [J, B, I]."""
    parents, (batch, child_dim, children) = outputs.shape[1], u.shape
    back_projected = torch.bmm(outputs.transpose(0, 1), w_parents.transpose(1, 2))  # W_ij^T v_j: [J, B, K*I]
    return (back_projected.view(parents, batch, child_dim, children) * u).sum(-2)


def _weighted_sum(coupling: torch.Tensor, u: torch.Tensor, w_parents: torch.Tensor) -> torch.Tensor:
    """s_j = sum_i W_ij (c_ij u_i): coupling c [J, B, I], u [B, K, I], w_parents [J, K*I, D] -> [B, J, D]."""
    parents, batch = coupling.shape[:2]
    weighted = (coupling.unsqueeze(-2) * u).view(parents, batch, -1)  # c_ij u_i: [J, B, K*I]
    return torch.bmm(weighted, w_parents).transpose(0, 1)


def coupling_entropy(couplings: torch.Tensor) -> torch.Tensor:
    """Mean entropy of each child's coupling distribution over parents, in nats.

    couplings c [B, I, J] -> scalar mean over (b, i) of -sum_j p_ij log p_ij, p_i = c_i / sum_j c_ij (the
    rows of Procedure 1 sum to 1 already; a leaky routing's sum to less, and negative couplings count
    as 0). The first routing iteration is uniform (log J: 2.303 for 10 parents); agreement lowers it.
    """
    c = couplings.float().clamp_min(0)
    p = c / c.sum(-1, keepdim=True).clamp_min(torch.finfo(c.dtype).tiny)
    return -torch.special.xlogy(p, p).sum(-1).mean()
