"""MultiMNIST (paper section 6): pairs of overlapping digits of different classes.

For every digit of a split, ``pairs_per_digit`` partners are drawn (seeded) among the digits of
*other* classes of the same split. Each digit of a pair is padded to 36x36 (28 + 2 x 4) and
shifted by its own random integer offset of up to 4 pixels in x and y; the example is their
pixel-wise sum, clipped to [0, 255] (in [0, 1] after scaling). The paper used 1,000 pairs per digit
(60M training examples); the default here is small.

What is generated and cached (``capsnet.data.cache``, MD5-checked) is the table of pairs: the two
digits' indices and their four offsets. Images are composed from it per batch, on the device
(``compose_pairs``): memory holds the 28x28 digits once, whatever the number of pairs.
"""

import numpy as np
import torch
import torch.nn.functional as F

from capsnet.data.cache import cache_key, cached_arrays

CANVAS = 36
MAX_SHIFT = 4


def pair_table(labels: np.ndarray, pairs_per_digit: int, seed: int) -> dict[str, np.ndarray]:
    """{"first": [M] int64, "second": [M] int64, "shifts": [M, 4] int64 (dy1, dx1, dy2, dx2)}."""
    generator = torch.Generator().manual_seed(seed)
    labels_t = torch.from_numpy(labels.astype(np.int64))
    first = torch.arange(len(labels_t)).repeat_interleave(pairs_per_digit)
    second = torch.randint(len(labels_t), (len(first),), generator=generator)
    while (clash := labels_t[second] == labels_t[first]).any():  # redraw partners of the same class
        second[clash] = torch.randint(len(labels_t), (int(clash.sum()),), generator=generator)
    shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (len(first), 4), generator=generator)
    return {"first": first.numpy(), "second": second.numpy(), "shifts": shifts.numpy()}


def cached_pair_table(folder, labels: np.ndarray, pairs_per_digit: int, seed: int, split: str) -> dict:
    info = {"split": split, "pairs_per_digit": pairs_per_digit, "seed": seed, "examples": len(labels)}
    stem = folder / f"multimnist_{split}_{cache_key(info, labels.tolist()[:1000])}"
    return cached_arrays(stem, lambda: pair_table(labels, pairs_per_digit, seed), info)


def place(digits: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Digits [B, 28, 28] on a 36x36 canvas, centred then moved by offsets [B, 2] (dy, dx) -> [B, 36, 36]."""
    batch, size = digits.shape[0], CANVAS
    padded = F.pad(digits, (2 * MAX_SHIFT,) * 4)  # [B, 44, 44]: room for every shift
    rows = (MAX_SHIFT - offsets[:, 0:1] + torch.arange(size, device=digits.device)).view(batch, size, 1)
    cols = (MAX_SHIFT - offsets[:, 1:2] + torch.arange(size, device=digits.device)).view(batch, 1, size)
    return padded[torch.arange(batch, device=digits.device).view(batch, 1, 1), rows, cols]


def compose_pairs(first: torch.Tensor, second: torch.Tensor, shifts: torch.Tensor):
    """Digits [B, 28, 28] in [0, 1] and shifts [B, 4] -> (overlays [B, 1, 36, 36], each digit alone
    [B, 2, 1, 36, 36]): the reconstruction targets of the two capsules."""
    alone = torch.stack([place(first, shifts[:, 0:2]), place(second, shifts[:, 2:4])], dim=1).unsqueeze(2)
    return alone.sum(dim=1).clamp(max=1.0), alone
