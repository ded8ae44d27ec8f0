"""A training order that a run resumed in the middle of an epoch can skip into exactly.

(Evaluation under DDP uses Lightning's ``UnrepeatedDistributedSampler``: no padding, so every example
is scored once; see ``capsnet.data.datamodule``.)
"""

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochPermutationSampler(Sampler[int]):
    """Shuffles training data with a permutation that depends only on (seed, epoch), so that a run
    resumed in the middle of an epoch can skip exactly the examples it has already trained on.

    Lightning calls ``set_epoch`` at the start of every epoch; ``skip_next(n)`` drops the first n
    indices of the next epoch iterated (the resumed one) and then forgets it.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_next(self, count: int) -> None:
        self._skip = count

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)[self._skip :]
        self._skip = 0
        return iter(order.tolist())
