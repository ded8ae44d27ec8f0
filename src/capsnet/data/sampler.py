"""Samplers: evaluation under DDP over exactly the dataset, and a resumable training order.

``UnpaddedDistributedSampler``: evaluation under DDP over exactly the dataset, no padding, no duplicates.

Lightning's default ``DistributedSampler`` pads a dataset that does not divide evenly by the
number of processes with repeated examples, so a 10,001-image test set on 2 ranks would be scored
on 10,002 images. Rank r here takes indices r, r + W, r + 2W, ... (W = world size): the ranks may
see one example more or less, and the sum over ranks (torchmetrics) is over the dataset exactly.
Being a ``DistributedSampler``, Lightning leaves it in place instead of substituting its own.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


class UnpaddedDistributedSampler(DistributedSampler):
    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


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
