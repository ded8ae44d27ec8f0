"""A training order that a run resumed in the middle of an epoch skips into exactly, on one process or many.

(Evaluation under DDP uses Lightning's ``UnrepeatedDistributedSampler``: no padding, so every example
is scored once; see ``capsnet.data.datamodule``.)
"""

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler


class EpochPermutationSampler(DistributedSampler):
    """Shuffles training data with a permutation that depends only on (seed, epoch).

    Under DDP (``num_replicas`` processes) rank r takes positions r, r + R, r + 2R, ... of the epoch's
    order, padded with its first indices to a multiple of R so that every rank runs the same number of
    steps: each example of the epoch is trained on once (the padding aside), by one rank. Being a
    ``DistributedSampler``, Lightning uses it as it is instead of wrapping it in its own.

    ``skip_next(n)``: the next epoch iterated (the resumed one) starts after the first n positions of the
    epoch's order, counted over all ranks (steps done x batch size x ranks); the rest is shared among the
    ranks there are now. With as many ranks as before, every rank continues exactly where it stopped; with
    another number, every remaining example is still trained on once, in other batches.
    """

    def __init__(self, size: int, seed: int, num_replicas: int = 1, rank: int = 0):
        Sampler.__init__(self)  # not DistributedSampler's: it would ask torch.distributed for these
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} of {num_replicas} processes")
        self.size, self.seed, self.num_replicas, self.rank = size, seed, num_replicas, rank
        self.dataset, self.shuffle, self.drop_last = None, True, False
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_next(self, count: int) -> None:
        self._skip = count

    def _remaining(self) -> torch.Tensor:
        """The epoch's order after the skipped positions, padded to a multiple of the ranks."""
        # Modulo 2^63: torch.initial_seed() of an unseeded process is a 64-bit number.
        generator = torch.Generator().manual_seed((self.seed * 100_003 + self.epoch) % 2**63)
        order = torch.randperm(self.size, generator=generator)[self._skip :]
        padding = math.ceil(len(order) / self.num_replicas) * self.num_replicas - len(order)
        return torch.cat([order, order[:padding]])

    @property
    def num_samples(self) -> int:
        """A whole epoch's share, skipped or not: Lightning counts an epoch's steps by it, and its
        progress (restored from the checkpoint) already counts the steps done before the stop."""
        return math.ceil(self.size / self.num_replicas)

    @property
    def total_size(self) -> int:
        return self.num_samples * self.num_replicas

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        shard = self._remaining()[self.rank :: self.num_replicas]
        self._skip = 0
        return iter(shard.tolist())
