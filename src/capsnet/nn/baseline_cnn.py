"""The paper's baseline CNN (section 5), as a plain ``nn.Module``.

"Three convolutional layers of 256, 256, 128 channels. Each has 5x5 kernels and stride of 1. The
last convolutional layers are followed by two fully connected layers of size 328, 192. The last
fully connected layer is connected with dropout to a 10 class softmax layer with cross entropy loss."

    images [B, 1, 28, 28]
    -> conv 256@5x5, ReLU -> conv 256@5x5, ReLU -> conv 128@5x5, ReLU      [B, 128, 28, 28]
    -> FC 328, ReLU -> FC 192, ReLU -> dropout -> FC 10 (logits)           [B, 10]

Choices the paper leaves open: zero padding of 2 ("same"), so that the maps stay 28x28, and no
pooling. That is the only reading that gives the paper's "35.4M parameters": 35,445,522 here (with
"valid" convolutions, 16x16 maps, it would be 10.7M). Dropout p = 0.5 before the last layer only.
"""

import torch
from torch import nn


class BaselineCNN(nn.Module):
    def __init__(
        self,
        image_shape: list[int] = (1, 28, 28),
        num_classes: int = 10,
        conv_channels: list[int] = (256, 256, 128),
        kernel_size: int = 5,
        hidden: list[int] = (328, 192),
        dropout: float = 0.5,
    ):
        super().__init__()
        channels, height, width = image_shape
        layers: list[nn.Module] = []
        for out_channels in conv_channels:
            layers += [nn.Conv2d(channels, out_channels, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        width_in = channels * height * width
        layers = []
        for size in hidden:
            layers += [nn.Linear(width_in, size), nn.ReLU()]
            width_in = size
        self.classifier = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(width_in, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> logits [B, num_classes]."""
        return self.classifier(self.features(images).flatten(1))
