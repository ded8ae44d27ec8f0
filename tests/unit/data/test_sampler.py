"""The resumable training order under DDP: disjoint shares, the exact continuation after a stop, and a
fair re-share when the number of processes changes."""

import math
from types import SimpleNamespace

import pytest
from lightning.pytorch.trainer.connectors.data_connector import _DataConnector
from torch.utils.data import DataLoader, DistributedSampler

from capsnet.data.sampler import EpochPermutationSampler


def _ddp_trainer():
    """What Lightning's check reads of a 2-process DDP trainer that wants distributed samplers."""
    connector = SimpleNamespace(use_distributed_sampler=True, is_distributed=True)
    return SimpleNamespace(_accelerator_connector=connector)


def _shards(size, ranks, skip=0, epoch=3, seed=7):
    shards = []
    for rank in range(ranks):
        sampler = EpochPermutationSampler(size, seed, num_replicas=ranks, rank=rank)
        sampler.set_epoch(epoch)
        sampler.skip_next(skip)
        assert len(sampler) == math.ceil(size / ranks)  # what Lightning counts an epoch by, resumed or not
        shards.append(list(sampler))
        assert len(shards[-1]) == math.ceil((size - skip) / ranks)  # the rest, shared
    return shards


def test_the_crash_of_a_ddp_run_resumed_mid_epoch_is_gone():
    """Lightning wrapped the plain sampler in its DistributedSamplerWrapper, which promised the whole
    dataset while the resumed sampler gave fewer indices: IndexError. This one is a DistributedSampler,
    which Lightning uses as it is (its data connector wraps only other samplers)."""
    sampler = EpochPermutationSampler(10, 0, num_replicas=2, rank=0)
    assert isinstance(sampler, DistributedSampler)
    loader = DataLoader(range(10), sampler=sampler)
    connector = SimpleNamespace(trainer=_ddp_trainer())
    assert not _DataConnector._requires_distributed_sampler(connector, loader)
    assert _DataConnector._requires_distributed_sampler(connector, DataLoader(range(10)))  # the check works
    first, second = _shards(10, 2, skip=4)
    assert len(first) == len(second) == 3 and not set(first) & set(second)


@pytest.mark.parametrize("size", [12, 13])
def test_ranks_take_disjoint_shares_of_the_same_order(size):
    (whole,) = _shards(size, 1)
    shards = _shards(size, 3)
    assert len({len(s) for s in shards}) == 1  # the same number of steps on every rank
    assert sorted({i for s in shards for i in s}) == sorted(whole)  # every example, by one rank
    assert sum(len(s) for s in shards) - size == (-size) % 3  # padding only to a multiple of 3


def test_resumed_ranks_continue_exactly_where_they_stopped():
    """2 ranks, batches of 2, stopped after 2 steps: 8 positions of the order done."""
    uninterrupted = _shards(20, 2)
    resumed = _shards(20, 2, skip=2 * 2 * 2)
    assert [s[4:] for s in uninterrupted] == resumed


def test_another_number_of_processes_shares_the_rest_once_each():
    (whole,) = _shards(20, 1)
    resumed = _shards(20, 3, skip=8)  # stopped on 2 processes after 8 positions, resumed on 3
    assert sorted({i for s in resumed for i in s}) == sorted(whole[8:])


def test_the_seed_of_an_unseeded_process_is_accepted():
    # torch.initial_seed() without seeding is a 64-bit number; the order must still be drawn.
    sampler = EpochPermutationSampler(10, seed=2**64 - 1)
    assert sorted(sampler) == list(range(10))
