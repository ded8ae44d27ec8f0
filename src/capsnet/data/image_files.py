"""Image files a user hands over, as tensors that look like the training data (``src/predict.py``).

Each image is read with Pillow and:
- refused before it is decoded when it has more than ``MAX_PIXELS`` pixels (a decompression bomb, or a
  photo far larger than a digit needs), or fewer than 8 on a side;
- scaled to [0, 1] by the range of its pixel type: 8-bit by 255, 16-bit by 65,535, float images taken
  as they are when they lie in [0, 1] (others are refused: their range is unknown);
- converted to greyscale (colour, palette and alpha images; transparent areas become white paper);
- inverted when its border is mostly light (a dark digit on white paper; MNIST digits are light on
  dark): ``invert=auto``; ``true``/``false`` force it;
- brought to the model's size: an image of another size (a photo, a drawing) is taken for a digit and
  centred as MNIST's were made (``center=auto``; ``true`` for every image, ``false`` for none; greyscale
  models only): its ink's
  bounding box scaled, aspect kept, to fit the middle 20x20 of the 28x28 field (anti-aliased), and its
  centre of mass moved to the field's centre. Without centring an image is resized whole (bilinear).
  Each of these is said in the notes.
Files Pillow cannot read are refused with a message naming them; so is a blank image when centring.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from capsnet.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MIN_SIDE = 8
MAX_PIXELS = 4096 * 4096
# MNIST's digits: size-normalised to a 20x20 box (of a 28x28 field), then centred by centre of mass.
DIGIT_BOX_FRACTION = 20 / 28
INK = 0.1  # a pixel at least this bright (of the brightest) is ink, for the bounding box
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
    path: Path, image_shape: tuple[int, int, int], invert: str = "auto", center: str = "auto"
) -> tuple[torch.Tensor, list[str]]:
    """A file as a [C, H, W] tensor in [0, 1] shaped like the training images, and what was changed."""
    return prepare_image(read_image(path), image_shape, invert, center, source=path)


def read_image(path: Path) -> Image.Image:
    """A file's image, decoded only when it has at most ``MAX_PIXELS`` pixels."""
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_PIXELS:  # read from the header: nothing decoded yet
                raise InputError(
                    f"{path}: {opened.width}x{opened.height} pixels is more than the {MAX_PIXELS:,} "
                    "this reads; scale it down first"
                )
            return opened.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: not an image Pillow can read ({error})") from error


def prepare_image(
    image: Image.Image,
    image_shape: tuple[int, int, int],
    invert: str = "auto",
    center: str = "auto",
    source: str | Path = "the image",
) -> tuple[torch.Tensor, list[str]]:
    """An image as a [C, H, W] tensor in [0, 1] shaped like the training images, and what was changed
    (``source`` names it in errors)."""
    channels, height, width = image_shape
    notes = []
    if min(image.size) < MIN_SIDE:
        raise InputError(
            f"{source}: {image.size[0]}x{image.size[1]} pixels is too small (at least {MIN_SIDE}x{MIN_SIDE})"
        )
    if image.mode in ("P", "LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":  # transparent areas become white paper
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image)
    if image.mode not in ("L", "F", "I", *SIXTEEN_BIT_MODES) and channels == 1:
        notes.append(f"converted from {image.mode} to greyscale")
        image = image.convert("L")
    pixels = _pixels(image, source)
    resize = image.size != (width, height)
    if channels == 1 and (center == "true" or (center == "auto" and resize)):
        pixels = pixels.clip(0.0, 1.0)
        if _inverted(pixels, invert):
            notes.append("inverted (dark digit on a light background)")
            pixels = 1.0 - pixels
        pixels = centre_digit(pixels, height, width, source)
        notes.append(
            f"centred as MNIST's digits (ink scaled into {_box(height, width)}x{_box(height, width)})"
        )
    else:
        if resize:
            notes.append(f"resized from {image.size[0]}x{image.size[1]} to {width}x{height}")
            pixels = _resized(pixels, width, height, Image.Resampling.BILINEAR)
        pixels = pixels.clip(0.0, 1.0)
        if _inverted(pixels, invert):
            notes.append("inverted (dark digit on a light background)")
            pixels = 1.0 - pixels
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    return (tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)), notes


def _inverted(pixels: np.ndarray, invert: str) -> bool:
    """Whether to invert: forced, or (``auto``) when the border is mostly light."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return invert == "true" or (invert == "auto" and border.mean() > 0.5)


def _resized(pixels: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    """[H, W] or [H, W, C] float pixels resized plane by plane."""
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    resized = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(planes[..., c]), "F").resize((width, height), resample)
        )
        for c in range(planes.shape[-1])
    ]
    return np.stack(resized, axis=-1).squeeze(-1) if pixels.ndim == 2 else np.stack(resized, axis=-1)


def _box(height: int, width: int) -> int:
    return max(1, round(DIGIT_BOX_FRACTION * min(height, width)))


def centre_digit(pixels: np.ndarray, height: int, width: int, source: str | Path = "the image") -> np.ndarray:
    """A light-on-dark digit [h, w] in [0, 1] -> [height, width], made as MNIST's digits were: the ink's
    bounding box scaled (aspect kept, anti-aliased) to fit a 20x20 box (for 28x28), then placed so that
    its centre of mass is the field's centre."""
    if pixels.max() < INK:
        raise InputError(f"{source}: no digit in it (the image is blank)")
    rows, columns = np.nonzero(pixels >= INK * pixels.max())
    crop = pixels[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    scale = _box(height, width) / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = _resized(crop, *size, Image.Resampling.LANCZOS).clip(0.0, 1.0)
    mass = digit.sum()
    centre_y = (digit.sum(axis=1) * np.arange(digit.shape[0])).sum() / mass
    centre_x = (digit.sum(axis=0) * np.arange(digit.shape[1])).sum() / mass
    top, left = round((height - 1) / 2 - centre_y), round((width - 1) / 2 - centre_x)
    field = np.zeros((height, width), dtype=np.float32)
    # the part of the digit that lands inside the field (a lopsided digit may reach past an edge)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + digit.shape[0], height), min(left + digit.shape[1], width)
    field[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return field
