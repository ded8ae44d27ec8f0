"""capsnet.viz.analysis: routing entropy, pose perturbation, lengths split by truth."""

import torch

from capsnet.nn.decoder import ReconstructionDecoder, mask_capsules
from capsnet.viz.analysis import lengths_by_truth, perturb_and_decode, perturbation_steps


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
