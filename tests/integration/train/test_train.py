"""src/train.py on the synthetic dataset: one batch of everything, the time-to-accuracy experiment, the
run-length line, Lightning's messages, compilation."""

import csv
import json
import re

import pytest

from tests.helpers import run_entry, run_in_process


def test_train_fast_dev_run(tmp_path, tiny_overrides):
    result = run_in_process("train", ["debug=fast_dev_run", *tiny_overrides], tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert "CONFIG" in result.output  # the config tree
    assert "test/acc" in result.output
    assert (tmp_path / "resolved_config.yaml").read_text().count("iterations: 3") == 1  # held once


def test_a_run_that_ends_before_its_first_validation_completes(tmp_path, tiny_overrides):
    """trainer.max_steps short of an epoch: no val/acc_best for a sweeper, which a single run only
    mentions; it tests and records its metrics as any run does."""
    result = run_in_process("train", [*tiny_overrides, "trainer.max_steps=3", "logger=csv"], tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert "optimized_metric='val/acc_best' was not logged" in result.output
    assert "test/acc" in json.loads((tmp_path / "metrics.json").read_text())


def test_the_run_says_how_long_it_will_take(trained_capsnet):
    """20 steps: timed from the second to the sixth, then one line with what is left."""
    line = next(line for line in trained_capsnet.output.splitlines() if "Training on cpu" in line)
    assert "precision 32-true: 14 steps left at" in line and "s/step, about 1 min more" in line
    # with trainer.precision=32 on a CPU that emulates bfloat16 (tests/unit/callbacks)
    assert re.search(
        r"for a fast result on a CPU: python src/train.py experiment=fast_cpu( trainer.precision=32)?$", line
    )


def test_lightnings_messages_are_printed_once_and_kept_in_the_log(trained_capsnet):
    """Lightning's own console handler and Hydra's would print each of its lines twice."""
    assert trained_capsnet.output.count("GPU available: False") == 1, trained_capsnet.output[-3000:]
    assert "GPU available: False" in (trained_capsnet.out / "train.log").read_text()


def test_fast_cpu_experiment_trains_a_fixed_schedule_then_tests_once(tmp_path, tiny_overrides):
    """bf16, the one-cycle schedule sized by max_steps, no validation, then one test of the last weights."""
    overrides = ["experiment=fast_cpu", "model.compile=false", "logger=csv", "trainer.log_every_n_steps=1"]
    overrides += [*tiny_overrides, "data.val_size=0", "trainer.max_steps=15"]  # 112 images: 14 steps an epoch
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == 0, result.output[-3000:]
    with open(tmp_path / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert not [row for row in rows if row.get("val/acc")]  # the test set is looked at once, at the end
    assert max(int(row["step"]) for row in rows if row.get("train/lr")) == 14  # steps 0-14
    learning_rates = [float(row["train/lr"]) for row in rows if row.get("train/lr")]
    assert learning_rates[-1] < 1e-3 * max(learning_rates)  # annealed to ~0 over exactly these steps
    assert [row for row in rows if row.get("test/acc")]
    assert "no validation; the last weights are tested" in result.output


def test_stop_at_accuracy_stops_at_the_target_and_logs_the_time(tmp_path, tiny_overrides):
    overrides = ["callbacks=[default,stop_at_accuracy]", "callbacks.stop_at_accuracy.target=0.0"]
    overrides += [*tiny_overrides, "logger=csv", "trainer.max_epochs=3", "trainer.min_epochs=0"]
    overrides += ["trainer.val_check_interval=5"]  # steps: the first validation is half-way through epoch 0
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == 0, result.output[-3000:]
    with open(tmp_path / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    stops = [row for row in rows if row.get("time_to_target_s")]
    assert len(stops) == 1 and float(stops[0]["time_to_target_s"]) > 0
    # any accuracy reaches 0.0: the run stops at its first validation, after step 5 of epoch 0
    assert max(int(row["step"]) for row in rows) == 5
    assert any(row.get("test/acc") for row in rows)


def test_stop_at_accuracy_refuses_a_metric_validation_does_not_log(tmp_path, tiny_overrides):
    overrides = ["callbacks=[default,stop_at_accuracy]", "logger=csv", "trainer.val_check_interval=5"]
    overrides += ["callbacks.stop_at_accuracy.monitor=val/accuracy", *tiny_overrides]
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == 2, result.output[-3000:]
    assert "callbacks.stop_at_accuracy.monitor='val/accuracy' is not logged by validation" in result.output
    assert "val/acc," in result.output  # the names it could have been
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_compiled_model_trains_and_tests(tmp_path, tiny_overrides):
    """model.compile=true: torch.compile of the whole network, routing included (about a minute)."""
    result = run_entry("train.py", ["debug=fast_dev_run", "model.compile=true", *tiny_overrides], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout
