"""The paper's MNIST CapsNet (section 4, fig. 1 and 2), as a plain ``nn.Module``.

    images [B, 1, 28, 28]
    -> Conv1: 256 maps, 9x9, stride 1, ReLU               [B, 256, 20, 20]
    -> PrimaryCaps: 32 maps of 8D capsules, 9x9 stride 2  [B, 1152, 8]
    -> DigitCaps: 10 capsules of 16D, routed (Procedure 1)  [B, 10, 16]
    -> lengths = class probabilities                      [B, 10]
    -> decoder on the masked DigitCaps                    [B, 1, 28, 28]

With the defaults it has 6,804,224 parameters without the decoder and 8,215,568 with it.

``parametrisation="official"`` is the official code's network instead of the text's: the same layers,
with the PrimaryCaps input scaled by 1/32, a bias on each DigitCaps s_j (160 more parameters) and its
initial values (``OFFICIAL_PARAMETRISATION``).
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from capsnet.nn.capsules import DigitCapsules, PrimaryCapsules
from capsnet.nn.config import CapsNetConfig
from capsnet.nn.conv import PatchMatmulConv2d
from capsnet.nn.decoder import ReconstructionDecoder, mask_capsules
from capsnet.nn.routing import build_routing
from capsnet.nn.squash import capsule_lengths

# The official code's initial values: truncated normals cut at two standard deviations (TensorFlow's),
# of these standard deviations, and every bias of the capsule layers 0.1. The decoder keeps torch's
# default initialisation.
OFFICIAL_PARAMETRISATION = {"weight_std": {"conv": 0.05, "primary.conv": 0.1, "digits": 0.1}, "bias": 0.1}


class CapsNetOutput(NamedTuple):
    lengths: torch.Tensor  # [B, J], the class "probabilities"
    poses: torch.Tensor  # v, [B, J, D]
    reconstructions: torch.Tensor  # [B, C, H, W]
    couplings: tuple[torch.Tensor, ...]  # per routing pass (iteration), [B, I, J]


class CapsNet(nn.Module):
    def __init__(self, config: CapsNetConfig | None = None):
        super().__init__()
        self.config = config = config or CapsNetConfig()
        official = config.parametrisation == "official"
        channels, height, width = config.image_shape
        self.conv = PatchMatmulConv2d(channels, config.conv_channels, config.conv_kernel)
        self.primary = PrimaryCapsules(
            config.conv_channels,
            config.primary_types,
            config.primary_dim,
            config.primary_kernel,
            config.primary_stride,
            input_scale=1.0 / config.primary_types if official else 1.0,
        )
        grid_h = (height - config.conv_kernel + 1 - config.primary_kernel) // config.primary_stride + 1
        grid_w = (width - config.conv_kernel + 1 - config.primary_kernel) // config.primary_stride + 1
        if grid_h < 1 or grid_w < 1:
            raise ValueError(
                f"data.image_shape={list(config.image_shape)} is too small for a {config.conv_kernel}x"
                f"{config.conv_kernel} conv then a {config.primary_kernel}x{config.primary_kernel} "
                f"stride-{config.primary_stride} conv"
            )
        self.primary_grid = (grid_h, grid_w)  # 6x6 for 28x28 images
        in_caps = config.primary_types * grid_h * grid_w
        self.digits = DigitCapsules(
            in_caps=in_caps,
            in_dim=config.primary_dim,
            out_caps=config.num_classes,
            out_dim=config.digit_dim,
            routing=build_routing(config.routing, children=in_caps, parents=config.num_classes),
            weight_init_std=config.weight_init_std,
            bias=official,
        )
        self.decoder = ReconstructionDecoder(
            config.num_classes * config.digit_dim, list(config.decoder.hidden), list(config.image_shape)
        )
        if official:
            self._initialise_as_the_official_code()

    @torch.no_grad()
    def _initialise_as_the_official_code(self) -> None:
        for name, std in OFFICIAL_PARAMETRISATION["weight_std"].items():
            layer = self.get_submodule(name)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            layer.bias.fill_(OFFICIAL_PARAMETRISATION["bias"])

    def encode(self, images: torch.Tensor):
        """Images -> (DigitCaps poses v [B, J, D], couplings)."""
        features = self._features(images)  # [B, 256, 20, 20]
        primary = self.primary(features)  # [B, 1152, 8]
        routed = self.digits(primary)
        return routed.outputs, routed.couplings

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """Conv1 + ReLU. When PrimaryCaps keeps only their spectra (its Fourier form), a compiled graph
        would keep ReLU's mask for the backward pass as booleans, which inductor stores slowly on the
        CPU; there the two layers are recomputed in the backward pass from the images instead (one small
        matmul)."""
        if torch.compiler.is_compiling() and self.primary.conv.keeps_only_spectra(images):
            return checkpoint(self._conv_relu, images, use_reentrant=False)
        return self._conv_relu(images)

    def _conv_relu(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(images))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> CapsNetOutput:
        """Decode the true class's capsule when ``labels`` are given (training), else the longest."""
        if images.dim() != 4 or tuple(images.shape[1:]) != self.decoder.image_shape:
            raise ValueError(
                f"images of shape {list(images.shape)}; this network takes [batch, "
                f"{', '.join(map(str, self.decoder.image_shape))}] (channels, height, width) in [0, 1]"
            )
        poses, couplings = self.encode(images)
        lengths = capsule_lengths(poses)  # [B, J]
        chosen = labels if labels is not None else lengths.argmax(dim=1)
        reconstructions = self.decoder(mask_capsules(poses, chosen))
        return CapsNetOutput(lengths, poses, reconstructions, couplings)
