"""capsnet.analysis: routing entropy, pose perturbation, lengths split by truth."""

import math
from itertools import pairwise

import pytest
import torch

from capsnet.analysis import coupling_entropy, lengths_by_truth, perturb_and_decode, perturbation_steps
from capsnet.decoder import ReconstructionDecoder, mask_capsules
from capsnet.routing import DynamicRouting


def test_entropy_of_uniform_and_one_hot_couplings():
    uniform = torch.full((2, 5, 10), 0.1)
    one_hot = torch.zeros(2, 5, 10).index_fill_(2, torch.tensor([3]), 1.0)  # exact zeros: 0 log 0 = 0
    assert coupling_entropy(uniform).item() == pytest.approx(math.log(10), abs=1e-6)
    assert coupling_entropy(one_hot).item() == 0.0


def test_entropy_falls_each_iteration_when_children_agree():
    """Every child predicts the same long vector for parent 0 and noise for the others: routing
    should couple them ever more to parent 0, so the entropy never rises."""
    torch.manual_seed(0)
    children, child_dim, parents, parent_dim = 64, 8, 10, 16
    u = torch.ones(4, children, child_dim) / math.sqrt(child_dim)
    weight = 0.01 * torch.randn(children, child_dim, parents, parent_dim)
    weight[:, :, 0, :] = 0.5 / math.sqrt(child_dim)  # identical predictions for parent 0
    couplings = DynamicRouting(iterations=5)(u, weight).couplings
    entropies = [coupling_entropy(c).item() for c in couplings]
    assert all(math.isfinite(e) for e in entropies)
    assert entropies[0] == pytest.approx(math.log(parents), abs=1e-6)
    assert all(later <= earlier for earlier, later in pairwise(entropies))
    assert entropies[-1] < 0.5 * entropies[0]


def test_perturbation_offsets_are_the_papers():
    assert torch.allclose(perturbation_steps(), torch.arange(-5, 6) * 0.05, atol=1e-7)


def test_perturbation_moves_one_dimension_of_the_chosen_capsule():
    torch.manual_seed(0)
    decoder = ReconstructionDecoder(10 * 16, [32], [1, 28, 28])
    poses, classes = torch.randn(2, 10, 16) * 0.3, torch.tensor([4, 7])
    offsets = perturbation_steps()
    images = perturb_and_decode(decoder, poses, classes, offsets)
    assert images.shape == (2, 16, 11, 1, 28, 28)
    with torch.no_grad():
        unperturbed = decoder(mask_capsules(poses, classes))
        for d in range(16):
            assert torch.allclose(images[:, d, 5], unperturbed, atol=1e-6)  # offset 0
        moved = poses.clone()
        moved[1, 7, 3] += offsets[0]
        assert torch.allclose(images[1, 3, 0], decoder(mask_capsules(moved, classes))[1], atol=1e-6)


def test_lengths_by_truth():
    lengths = torch.tensor([[0.9, 0.1, 0.2], [0.3, 0.4, 0.8]])
    true, others = lengths_by_truth(lengths, torch.tensor([0, 2]))
    assert torch.equal(true, torch.tensor([0.9, 0.8]))
    assert torch.equal(others.sort().values, torch.tensor([0.1, 0.2, 0.3, 0.4]))
