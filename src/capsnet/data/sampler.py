"""Evaluation under DDP over exactly the dataset: no padding, no duplicates.

Lightning's default ``DistributedSampler`` pads a dataset that does not divide evenly by the
number of processes with repeated examples, so a 10,001-image test set on 2 ranks would be scored
on 10,002 images. Rank r here takes indices r, r + W, r + 2W, ... (W = world size): the ranks may
see one example more or less, and the sum over ranks (torchmetrics) is over the dataset exactly.
Being a ``DistributedSampler``, Lightning leaves it in place instead of substituting its own.
"""

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))
