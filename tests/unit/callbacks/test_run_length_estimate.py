"""The warning before an eager bf16 run on a CPU that emulates bfloat16, and the run-length line's advice
(the line in a real run: tests/integration/train/test_train.py)."""

import logging
from types import SimpleNamespace

import pytest
import torch

import capsnet.callbacks.run_length_estimate as run_length_estimate
from capsnet.callbacks.run_length_estimate import RunLengthEstimate


def _probe(monkeypatch, bf16_rate: float) -> None:
    """What the bf16 probe (capsnet.nn.bfloat16_speed) finds beside a float32 rate of 140 GFLOP/s."""
    slow = (bf16_rate, 140.0) if bf16_rate < 70.0 else None
    monkeypatch.setattr(run_length_estimate, "slow_bfloat16", lambda: slow)


def _trainer(device: str, precision: str):
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), precision=precision, is_global_zero=True
    )


@pytest.mark.parametrize(
    ("device", "precision", "bf16_rate", "compiled", "warned"),
    [
        ("cpu", "bf16-mixed", 3.0, False, True),  # an AVX2-only CPU
        ("cpu", "bf16-true", 3.0, False, True),
        ("cpu", "bf16-mixed", 3.0, True, False),  # compiled: its matmuls in float32
        ("cpu", "bf16-mixed", 900.0, False, False),  # AVX-512 BF16
        ("cpu", "32-true", 3.0, False, False),
        ("meta", "bf16-mixed", 3.0, False, False),  # not a CPU run
    ],
)
def test_eager_bf16_on_a_cpu_that_emulates_it_is_named_before_training(
    monkeypatch, caplog, device, precision, bf16_rate, compiled, warned
):
    _probe(monkeypatch, bf16_rate)
    module = SimpleNamespace(bf16_products_in_float32=compiled)
    with caplog.at_level(logging.INFO, logger=run_length_estimate.__name__):
        RunLengthEstimate().on_fit_start(_trainer(device, precision), module)
    expected = (
        f"trainer.precision={precision} on a CPU without fast bfloat16 (no AVX-512 BF16 or AMX): its bf16 "
        "matmuls run at 3.0 GFLOP/s, float32 at 140.0, so this run trains many times slower than in "
        "float32; for speed add model.compile=true (its matmuls then run in float32) or "
        "trainer.precision=32"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ([expected] if warned else [])
    told = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert bool(told) == compiled and all(
        "compute its matmuls and convolutions in float32" in m for m in told
    )


def test_a_module_that_does_not_compile_is_told_float32_only(monkeypatch, caplog):
    """The baseline CNN has no model.compile: only trainer.precision=32 is named."""
    _probe(monkeypatch, 3.0)
    with caplog.at_level(logging.WARNING, logger=run_length_estimate.__name__):
        RunLengthEstimate().on_fit_start(_trainer("cpu", "bf16-mixed"), SimpleNamespace())
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.endswith("float32; for speed add trainer.precision=32")


def _run_length_line(caplog, callback: RunLengthEstimate) -> str:
    trainer = _trainer("cpu", "32-true")
    trainer.global_step, trainer.world_size, trainer.estimated_stepping_batches = 0, 1, 100
    callback.on_fit_start(trainer, None)
    with caplog.at_level(logging.INFO):
        for step in range(3):
            callback.on_train_batch_start(trainer, None, None, step)
            trainer.global_step += 1
            callback.on_train_batch_end(trainer, None, None, None, step)
    (line,) = [r.getMessage() for r in caplog.records if "Training on cpu" in r.getMessage()]
    return line


@pytest.mark.parametrize(("bf16_rate", "advice"), [(3.0, " trainer.precision=32"), (900.0, "")])
def test_the_fast_recipe_named_runs_in_float32_where_bf16_is_emulated(monkeypatch, caplog, bf16_rate, advice):
    """There float32 is faster still than fast_cpu's bf16 with its products in float32 (docs/speed.md)."""
    _probe(monkeypatch, bf16_rate)
    line = _run_length_line(caplog, RunLengthEstimate(timed_steps=1))
    assert line.endswith(f"for a fast result on a CPU: python src/train.py experiment=fast_cpu{advice}")


def test_a_run_of_the_fast_recipe_does_not_name_it(monkeypatch, caplog):
    _probe(monkeypatch, 3.0)
    line = _run_length_line(caplog, RunLengthEstimate(timed_steps=1, suggest_fast_cpu=False))
    assert line.startswith("Training on cpu") and "fast_cpu" not in line
