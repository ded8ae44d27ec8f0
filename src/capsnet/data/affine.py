"""An affNIST-like test set, generated: MNIST test digits under random small affine transformations.

The paper (section 5.2) tests robustness on affNIST, which cannot be downloaded here. This is a
*generated proxy*, not affNIST: each MNIST test digit is centred on a 40x40 black canvas and
transformed by its own random affine map, drawn with a fixed seed from these ranges (defaults):

    rotation  uniform in [-20, 20] degrees
    shear     uniform in [-0.2, 0.2]   (x += shear * y)
    scale     uniform in [0.8, 1.2]    (both axes)
    translate uniform in [-6, 6] pixels, x and y independently

The map is x -> R S K x + t about the canvas centre (R rotation, S shear, K scale), resampled
bilinearly with zero fill and rounded back to uint8. The set is generated once and cached under
``<data_dir>/affNIST_proxy/`` with the MD5 of its bytes; a cached file that fails its checksum is
generated again, never used.
"""

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from capsnet.data.cache import cache_key, cached_arrays, md5_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AffineRanges:
    rotation_deg: float = 20.0
    shear: float = 0.2
    scale_min: float = 0.8
    scale_max: float = 1.2
    translate_px: float = 6.0


def sample_transforms(count: int, seed: int, ranges: AffineRanges) -> torch.Tensor:
    """[count, 5]: rotation (degrees), shear, scale, x and y translation (pixels), one row per image."""
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(count, 5, generator=generator, dtype=torch.float64)
    low = torch.tensor(
        [-ranges.rotation_deg, -ranges.shear, ranges.scale_min, -ranges.translate_px, -ranges.translate_px]
    )
    high = torch.tensor(
        [ranges.rotation_deg, ranges.shear, ranges.scale_max, ranges.translate_px, ranges.translate_px]
    )
    return low + uniform * (high - low)


def transform_images(images: torch.Tensor, transforms: torch.Tensor, canvas: int) -> torch.Tensor:
    """uint8 digits [N, H, W] -> uint8 [N, canvas, canvas], each centred then moved by its transform."""
    count, height, width = images.shape
    top, left = (canvas - height) // 2, (canvas - width) // 2
    padded = F.pad(images.double().unsqueeze(1), (left, canvas - width - left, top, canvas - height - top))
    angle = transforms[:, 0] * math.pi / 180
    shear, scale, shift = transforms[:, 1], transforms[:, 2], transforms[:, 3:5]
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # [N, 2, 2]
    shearing = torch.stack(
        [torch.stack([torch.ones_like(shear), shear], -1), torch.stack([zero, torch.ones_like(shear)], -1)],
        -2,
    )
    forward = rotation @ shearing * scale.view(-1, 1, 1)  # output = forward @ input + shift, pixels
    # affine_grid maps output coordinates to input ones, in [-1, 1] units (a square canvas: one scale).
    inverse = torch.linalg.inv(forward)
    offset = -(inverse @ (shift * 2 / canvas).unsqueeze(-1))
    theta = torch.cat([inverse, offset], dim=-1)  # [N, 2, 3]
    grid = F.affine_grid(theta, [count, 1, canvas, canvas], align_corners=False)
    moved = F.grid_sample(padded, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def affine_test_set(
    folder: Path, images: np.ndarray, labels: np.ndarray, seed: int, ranges: AffineRanges, canvas: int = 40
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The proxy set: images [N, canvas, canvas] uint8, labels [N], transforms [N, 5]; cached in folder."""

    def make() -> dict[str, np.ndarray]:
        transforms = sample_transforms(len(images), seed, ranges)
        moved = transform_images(torch.from_numpy(images), transforms, canvas).numpy()
        log.info("affNIST proxy: %d images generated in %s", len(moved), folder)
        return {"images": moved, "labels": labels, "transforms": transforms.numpy()}

    info = {"seed": seed, "canvas": canvas, "ranges": asdict(ranges)}
    stem = folder / f"affnist_proxy_{cache_key(info, md5_of(images))}"
    arrays = cached_arrays(stem, make, info)
    return arrays["images"], arrays["labels"], arrays["transforms"]
