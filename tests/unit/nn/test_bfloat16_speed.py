"""Whether this CPU's bfloat16 is slow: two short matmuls, measured once a process."""

import pytest
import torch

from capsnet.nn import bfloat16_speed
from capsnet.nn.bfloat16_speed import matmul_gflops, slow_bfloat16


@pytest.fixture(autouse=True)
def measured_anew():
    """Each test measures (with its own rates); a process otherwise measures once."""
    slow_bfloat16.cache_clear()
    yield
    slow_bfloat16.cache_clear()


def _with_rates(monkeypatch, rates) -> None:
    monkeypatch.setattr(bfloat16_speed, "matmul_gflops", rates)


@pytest.mark.parametrize(("bf16_rate", "slow"), [(3.0, True), (69.0, True), (71.0, False), (900.0, False)])
def test_bf16_below_half_the_float32_rate_is_slow(monkeypatch, bf16_rate, slow):
    _with_rates(monkeypatch, {torch.bfloat16: bf16_rate, torch.float32: 140.0}.get)
    assert slow_bfloat16() == ((bf16_rate, 140.0) if slow else None)


def test_the_matmul_rates_are_measured():
    assert matmul_gflops(torch.float32, size=64, repeats=2) > 0
    assert matmul_gflops(torch.bfloat16, size=64, repeats=2) > 0


def test_both_rates_are_measured_on_one_thread_and_the_thread_count_restored(monkeypatch):
    seen = []
    _with_rates(monkeypatch, lambda dtype: seen.append(torch.get_num_threads()) or 1.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert slow_bfloat16() is None
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_the_measurement_draws_nothing_from_the_global_generator():
    """A resumed run restores the random state before training starts: a draw from it changes the run."""
    state = torch.get_rng_state()
    slow_bfloat16()
    assert torch.equal(torch.get_rng_state(), state)


def test_a_process_measures_once(monkeypatch):
    calls = []
    _with_rates(monkeypatch, lambda dtype: calls.append(dtype) or 1.0)
    slow_bfloat16(), slow_bfloat16()
    assert calls == [torch.bfloat16, torch.float32]
