"""The capsule non-linearity (paper eq. 1) and capsule lengths.

    v_j = ||s_j||^2 / (1 + ||s_j||^2) * s_j / ||s_j||

Short vectors shrink to almost zero length and long ones to a length just below 1, so a capsule's
length can be read as the probability that its entity is present.

``||s||`` is computed as ``sqrt(||s||^2 + eps)``: with the epsilon *inside* the square root the
derivative of the norm stays finite at ``s = 0`` (a bare ``sqrt`` has an infinite slope there and
turns a zero capsule into NaN gradients, a bug several public implementations have).
"""

import torch

EPS = 1e-8


def squash(s: torch.Tensor, dim: int = -1, eps: float = EPS) -> torch.Tensor:
    """Squash vectors along ``dim``; the result has the same shape and a length in [0, 1).

    Half-precision inputs are computed in float32: the squared norm of a capsule is a sum of
    small terms that loses too much precision in bf16 or fp16.
    """
    s = _at_least_float32(s)
    squared_norm = s.pow(2).sum(dim=dim, keepdim=True)  # [..., 1]
    scale = squared_norm / ((1.0 + squared_norm) * torch.sqrt(squared_norm + eps))
    return s * scale


def capsule_lengths(v: torch.Tensor, dim: int = -1, eps: float = EPS) -> torch.Tensor:
    """Euclidean length of each capsule, ``sqrt(||v||^2 + eps)`` (finite gradient at zero)."""
    return torch.sqrt(_at_least_float32(v).pow(2).sum(dim=dim) + eps)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
