"""Squash (eq. 1): lengths in [0, 1), direction kept, finite gradients at zero."""

import torch

from capsnet.nn.squash import capsule_lengths, squash


def test_lengths_below_one_and_direction_kept():
    vectors = torch.randn(1000, 16, dtype=torch.float64) * torch.logspace(-3, 3, 1000).unsqueeze(1)
    squashed = squash(vectors)
    lengths = squashed.norm(dim=-1)
    assert (lengths >= 0).all() and (lengths < 1).all()
    cosine = torch.nn.functional.cosine_similarity(squashed, vectors, dim=-1)
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-9)
    # float32 rounds 1 - 1/(1 + ||s||^2) to 1 for very long vectors, but never beyond it.
    assert (squash(vectors.float()).norm(dim=-1) <= 1 + 1e-6).all()


def test_half_precision_is_squashed_in_float32():
    assert squash(torch.randn(4, 8, dtype=torch.bfloat16)).dtype == torch.float32


def test_matches_equation_one():
    s = torch.randn(64, 8, dtype=torch.float64)
    norm = s.norm(dim=-1, keepdim=True)
    expected = norm**2 / (1 + norm**2) * s / norm
    assert torch.allclose(squash(s).double(), expected, atol=1e-6)


def test_short_vectors_shrink_long_ones_approach_one():
    assert squash(torch.tensor([[1e-3, 0.0]])).norm() < 1e-5
    assert squash(torch.tensor([[1e3, 0.0]])).norm() > 0.999


def test_zero_vector_has_finite_gradients():
    s = torch.zeros(4, 16, requires_grad=True)
    lengths = capsule_lengths(squash(s))
    lengths.sum().backward()
    assert torch.isfinite(lengths).all()
    assert torch.isfinite(s.grad).all()
