"""Reconstruction decoder (paper section 4.1, fig. 2).

The DigitCaps outputs are masked so that only one capsule's pose survives (the true class during
training, the longest capsule otherwise), flattened to J*D = 160 values, and decoded by a
512-1024-784 MLP (ReLU, ReLU, sigmoid) into an image in [0, 1].
"""

import math

import torch
from torch import nn

from capsnet.nn.one_hot import one_hot


def mask_capsules(poses: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Zero every capsule but ``classes[b]`` in each example: [B, J, D], [B] -> [B, J * D]."""
    keep = one_hot(classes, poses.shape[1], poses.dtype)  # [B, J]
    return (poses * keep.unsqueeze(-1)).flatten(1)


class ReconstructionDecoder(nn.Module):
    def __init__(self, in_features: int, hidden: list[int], image_shape: list[int]):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        layers += [nn.Linear(width, math.prod(self.image_shape)), nn.Sigmoid()]
        self.mlp = nn.Sequential(*layers)

    def forward(self, masked_poses: torch.Tensor) -> torch.Tensor:
        """[B, J * D] -> images [B, C, H, W] in [0, 1]."""
        return self.mlp(masked_poses).view(-1, *self.image_shape)
