"""Margin loss (eq. 4) and reconstruction loss, computed by hand."""

import torch

from capsnet.nn.config import LossConfig
from capsnet.nn.losses import CapsuleLoss, margin_loss, reconstruction_loss


def test_margin_loss_hand_computed():
    lengths = torch.tensor([[0.95, 0.30, 0.05], [0.50, 0.20, 0.80]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # Example 1: present 0.95 >= 0.9 -> 0; absent 0.30 -> 0.5 * 0.2^2 = 0.02; absent 0.05 -> 0.
    # Example 2: absent 0.50 -> 0.5 * 0.4^2 = 0.08; absent 0.20 -> 0.5 * 0.1^2 = 0.005;
    #            present 0.80 -> 0.1^2 = 0.01.  Sum over classes, mean over the batch:
    expected = (0.02 + (0.08 + 0.005 + 0.01)) / 2
    assert abs(margin_loss(lengths, targets).item() - expected) < 1e-6


def test_reconstruction_loss_sums_pixels_and_averages_batch():
    images = torch.zeros(2, 1, 28, 28)
    reconstructions = torch.full((2, 1, 28, 28), 0.5)
    reconstructions[1] = 1.0
    expected = (784 * 0.25 + 784 * 1.0) / 2
    assert abs(reconstruction_loss(reconstructions, images).item() - expected) < 1e-3


def test_total_weights_terms():
    lengths, targets = torch.tensor([[0.2, 0.7]]), torch.tensor([[1.0, 0.0]])
    images, reconstructions = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    terms = CapsuleLoss(LossConfig(margin_weight=2.0), alpha=0.5)(lengths, targets, reconstructions, images)
    assert torch.isclose(terms.total, 2.0 * terms.margin + 0.5 * terms.reconstruction)
    assert torch.isclose(terms.reconstruction, torch.tensor(4.0))


def test_loss_official_is_the_official_codes_margin_loss_beside_the_same_reconstruction():
    """The official margin loss: each class's terms halved, then the mean over batch and classes."""
    from tests.helpers import compose_config

    loss = compose_config("train", ["loss=official"]).loss
    generator = torch.Generator().manual_seed(0)
    lengths = torch.rand(6, 10, generator=generator)
    targets = torch.nn.functional.one_hot(torch.arange(6) % 10, 10).float()
    images, reconstructions = torch.rand(6, 1, 4, 4, generator=generator), torch.rand(6, 1, 4, 4)
    logits, margin = lengths - 0.5, 0.4  # the official code's form of eq. 4's hinges
    present = targets * (logits < margin) * (logits - margin).pow(2)
    absent = (1 - targets) * (logits > -margin) * (logits + margin).pow(2)
    official_margin = (0.5 * present + 0.5 * 0.5 * absent).mean()
    terms = CapsuleLoss(LossConfig(**loss), alpha=0.0005)(lengths, targets, reconstructions, images)
    expected = official_margin + 0.0005 * terms.reconstruction
    assert torch.isclose(terms.total, expected, rtol=1e-6)
