"""The paper's only augmentation: shift each training image by up to ``max_shift`` pixels in x and y,
independently per image, filling with zeros (section 5: "shifted by up to 2 pixels in each direction
with zero padding").

Done on a whole batch at once, on whatever device the batch is on: pad, then gather each image's
window at its own offset. No per-image Python or PIL work.
"""

import torch


def random_shift(
    images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H, W], each image moved by integers in [-max_shift, max_shift]."""
    if max_shift == 0:
        return images
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # [B, C, H + 2s, W + 2s]
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch, 1), device=images.device, generator=generator)
    rows = (offsets[0] + torch.arange(height, device=images.device)).view(batch, 1, height, 1)
    cols = (offsets[1] + torch.arange(width, device=images.device)).view(batch, 1, 1, width)
    examples = torch.arange(batch, device=images.device).view(batch, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[examples, channels, rows, cols]
