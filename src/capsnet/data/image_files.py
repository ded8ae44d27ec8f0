"""Image files a user hands over, as tensors that look like the training data (``src/predict.py``).

Each image is read with Pillow and:
- refused before it is decoded when it has more than ``MAX_PIXELS`` pixels (a decompression bomb, or a
  photo far larger than a digit needs), or fewer than 8 on a side;
- scaled to [0, 1] by the range of its pixel type: 8-bit by 255, 16-bit by 65,535, float images taken
  as they are when they lie in [0, 1] (others are refused: their range is unknown);
- converted to greyscale (colour, palette and alpha images; transparent areas become white paper);
- resized to the model's size (bilinear), and says so;
- inverted when its border is mostly light (a dark digit on white paper; MNIST digits are light on
  dark): ``invert=auto``; ``true``/``false`` force it.
Files Pillow cannot read are refused with a message naming them.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from capsnet.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MIN_SIDE = 8
MAX_PIXELS = 4096 * 4096
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def input_files(source: str) -> tuple[list[Path], list[Path]]:
    """The image files ``source`` names (a file, or a folder's image files in name order), and the
    entries skipped because they are not regular files (a FIFO would block the read forever)."""
    path = Path(source)
    if path.is_dir():
        named = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files = [p for p in named if p.is_file()]
        if not files:
            raise InputError(f"input={source}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return files, [p for p in named if not p.is_file()]
    if not path.exists():
        raise InputError(f"input={source}: no such file or folder")
    if not path.is_file():
        raise InputError(f"input={source}: not a regular file")
    return [path], []


def _pixels(image: Image.Image, path: Path) -> np.ndarray:
    """The image's values scaled to [0, 1] by the range of its pixel type: [H, W] or [H, W, C] float32."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise InputError(f"{path}: 32-bit integer pixels outside 0-65535; save it as 8 or 16 bits")
        return (values / 65535).astype(np.float32)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise InputError(f"{path}: floating-point pixels outside [0, 1]; their scale is unknown")
        return values
    return np.asarray(image, dtype=np.float32) / 255.0


def load_image(
    path: Path, image_shape: tuple[int, int, int], invert: str = "auto"
) -> tuple[torch.Tensor, list[str]]:
    """A file as a [C, H, W] tensor in [0, 1] shaped like the training images, and what was changed."""
    channels, height, width = image_shape
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_PIXELS:  # read from the header: nothing decoded yet
                raise InputError(
                    f"{path}: {opened.width}x{opened.height} pixels is more than the {MAX_PIXELS:,} "
                    "this reads; scale it down first"
                )
            image = opened.convert("RGBA") if opened.mode in ("P", "LA", "PA") else opened.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: not an image Pillow can read ({error})") from error
    notes = []
    if min(image.size) < MIN_SIDE:
        raise InputError(
            f"{path}: {image.size[0]}x{image.size[1]} pixels is too small (at least {MIN_SIDE}x{MIN_SIDE})"
        )
    if image.mode == "RGBA":  # transparent areas become white paper
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image)
    if image.mode not in ("L", "F", "I", *SIXTEEN_BIT_MODES) and channels == 1:
        notes.append(f"converted from {image.mode} to greyscale")
        image = image.convert("L")
    pixels = _pixels(image, path)
    if image.size != (width, height):
        notes.append(f"resized from {image.size[0]}x{image.size[1]} to {width}x{height}")
        planes = pixels[..., None] if pixels.ndim == 2 else pixels
        resized = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(planes[..., c]), "F").resize(
                    (width, height), Image.Resampling.BILINEAR
                )
            )
            for c in range(planes.shape[-1])
        ]
        pixels = np.stack(resized, axis=-1).squeeze(-1) if pixels.ndim == 2 else np.stack(resized, axis=-1)
    pixels = pixels.clip(0.0, 1.0)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if invert == "true" or (invert == "auto" and border.mean() > 0.5):
        notes.append("inverted (dark digit on a light background)")
        pixels = 1.0 - pixels
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    return (tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)), notes
