"""Image files a user hands over, as tensors that look like the training data (``src/predict.py``).

Each image is read with Pillow and:
- colour (or palette, or alpha) images are converted to greyscale;
- an image of another size is resized to the model's (bilinear), and says so;
- MNIST digits are light on a dark background: an image whose border is mostly light (a dark
  digit on white paper) is inverted (``invert=auto``; ``true``/``false`` force it);
- pixels are scaled to [0, 1].
Files Pillow cannot read, and images smaller than 8x8 pixels, are refused with a message naming them.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from capsnet.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MIN_SIDE = 8


def input_files(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"input={source}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return files
    if not path.is_file():
        raise InputError(f"input={source}: no such file or folder")
    return [path]


def load_image(
    path: Path, image_shape: tuple[int, int, int], invert: str = "auto"
) -> tuple[torch.Tensor, list[str]]:
    """A file as a [C, H, W] tensor in [0, 1] shaped like the training images, and what was changed."""
    channels, height, width = image_shape
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA") if opened.mode in ("P", "LA", "PA") else opened.copy()
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: not an image Pillow can read ({error})") from error
    notes = []
    if min(image.size) < MIN_SIDE:
        raise InputError(
            f"{path}: {image.size[0]}x{image.size[1]} pixels is too small (at least {MIN_SIDE}x{MIN_SIDE})"
        )
    if image.mode == "RGBA":  # transparent areas become white paper
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image)
    if image.mode != "L" and channels == 1:
        notes.append(f"converted from {image.mode} to greyscale")
        image = image.convert("L")
    if image.size != (width, height):
        notes.append(f"resized from {image.size[0]}x{image.size[1]} to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if invert == "true" or (invert == "auto" and border.mean() > 0.5):
        notes.append("inverted (dark digit on a light background)")
        pixels = 1.0 - pixels
    tensor = torch.from_numpy(pixels.copy())
    return (tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)), notes
