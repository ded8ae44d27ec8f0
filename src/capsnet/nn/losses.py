"""CapsNet training objective.

Margin loss (paper eq. 4), for each class capsule k with length ||v_k|` and target T_k in {0, 1}:

    L_k = T_k max(0, m+ - ||v_k||)^2 + lambda (1 - T_k) max(0, ||v_k|| - m-)^2

summed over the classes and averaged over the batch (m+ = 0.9, m- = 0.1, lambda = 0.5). The
lengths enter directly: no softmax.

Reconstruction loss (section 4.1): the sum of squared pixel errors of each image, averaged over
the batch, weighted by alpha = 0.0005 so that it does not dominate the margin loss.

Total: ``margin_weight * margin + alpha * reconstruction``.
"""

from typing import NamedTuple

import torch
from torch import nn

from capsnet.nn.config import DecoderConfig, LossConfig


def margin_loss(
    lengths: torch.Tensor,
    targets: torch.Tensor,
    m_plus: float = 0.9,
    m_minus: float = 0.1,
    absent_weight: float = 0.5,
) -> torch.Tensor:
    """Eq. 4. ``lengths`` [B, K]; ``targets`` [B, K] in {0, 1} (several ones for overlapping digits)."""
    present = targets * torch.relu(m_plus - lengths).pow(2)
    absent = absent_weight * (1.0 - targets) * torch.relu(lengths - m_minus).pow(2)
    return (present + absent).sum(dim=1).mean()


def reconstruction_loss(reconstructions: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over each image's pixels, averaged over the batch."""
    return (reconstructions.float() - images.float()).pow(2).flatten(1).sum(dim=1).mean()


class LossTerms(NamedTuple):
    total: torch.Tensor
    margin: torch.Tensor
    reconstruction: torch.Tensor


class CapsuleLoss(nn.Module):
    """``margin_weight * margin + alpha * reconstruction``, with the ``loss`` group's settings and
    ``decoder.alpha``."""

    def __init__(self, loss: LossConfig | None = None, alpha: float = DecoderConfig.alpha):
        super().__init__()
        self.config = loss = loss or LossConfig()
        self.margin_weight = loss.margin_weight
        self.alpha = alpha  # decoder.alpha
        self.m_plus, self.m_minus, self.absent_weight = loss.m_plus, loss.m_minus, loss.absent_weight

    def forward(
        self,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        reconstructions: torch.Tensor,
        images: torch.Tensor,
    ) -> LossTerms:
        margin = margin_loss(lengths, targets, self.m_plus, self.m_minus, self.absent_weight)
        reconstruction = reconstruction_loss(reconstructions, images)
        total = self.margin_weight * margin + self.alpha * reconstruction
        return LossTerms(total, margin, reconstruction)
