"""The real entry points, run as a user runs them, on the synthetic dataset."""

import csv
import re

import pytest
import torch

from .helpers import run_entry


def test_train_fast_dev_run(tmp_path, data_overrides):
    result = run_entry("train.py", ["debug=fast_dev_run", *data_overrides], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CONFIG" in result.stdout  # the config tree
    assert "test/acc" in result.stdout
    assert (tmp_path / "resolved_config.yaml").read_text().count("iterations: 3") == 2


def test_train_then_eval_agree(tmp_path, data_overrides):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    overrides = [
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "routing.iterations=2",
        "logger=csv",
    ]
    result = run_entry("train.py", [*overrides, *data_overrides], train_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    best = list((train_dir / "checkpoints").glob("epoch_*.ckpt"))  # top-1 by val/acc, as train tested
    assert len(best) == 1 and (train_dir / "checkpoints" / "last.ckpt").is_file()
    with open(train_dir / "csv" / "metrics.csv") as file:
        train_test_acc = [float(row["test/acc"]) for row in csv.DictReader(file) if row["test/acc"]]
    assert len(train_test_acc) == 1
    saved = torch.load(best[0], map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["routing"]["iterations"] == 2

    # eval rebuilds the 2-iteration network from the checkpoint, whatever its own config says.
    result = run_entry("eval.py", [f"ckpt_path={best[0]}", *data_overrides], eval_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = re.search(r"test/acc\s*│\s*([0-9.]+)", result.stdout)
    error = re.search(r"test/error\s*│\s*([0-9.]+)", result.stdout)
    assert accuracy and error, result.stdout[-2000:]
    assert abs(float(accuracy.group(1)) - train_test_acc[0]) < 1e-4
    assert abs(float(accuracy.group(1)) + float(error.group(1)) - 1.0) < 1e-4
    for term in ("test/margin_loss", "test/reconstruction_loss", "test/total_loss"):
        assert term in result.stdout


BAD_CONFIGS = [  # (override, exit code, what the one line must say)
    ("routing.iterations=0", 2, "routing.iterations=0 is invalid; allowed: an integer >= 1"),
    ("routing.iterations=abc", 2, "routing.iterations='abc' is invalid"),
    ("routing.iterations=2.5", 2, "routing.iterations=2.5 is invalid"),
    ("routing.detach_inner=maybe", 2, "routing.detach_inner='maybe' is invalid; allowed: true or false"),
    ("decoder.alpha=-1", 2, "decoder.alpha=-1 is invalid; allowed: a number >= 0.0"),
    ("decoder.hidden=[512,0]", 2, "decoder.hidden=[512, 0] is invalid; allowed: a list of integers >= 1"),
    ("loss.margin_weight=-0.5", 2, "loss.margin_weight=-0.5 is invalid"),
    ("loss.m_plus=1.5", 2, "loss.m_plus=1.5 is invalid"),
    ("loss.m_minus=0.95", 2, "loss.m_minus=0.95 must be below loss.m_plus=0.9"),
    ("data.batch_size=0", 2, "data.batch_size=0 is invalid; allowed: an integer >= 1"),
    ("data.batch_size=abc", 2, "data.batch_size='abc' is invalid"),
    ("data.shift_pixels=-1", 2, "data.shift_pixels=-1 is invalid"),
    ("data.val_size=-1", 2, "data.val_size=-1 is invalid"),
    ("model.optimizer.lr=0", 2, "model.optimizer.lr=0 is invalid"),
    ("trainer.precision=8", 2, "trainer.precision=8 is invalid"),
    ("trainer.max_epochs=-5", 2, "trainer.max_epochs=-5 is invalid"),
    ("seed=-1", 2, "seed=-1 is invalid"),
    ("experiment=fast_cpu callbacks.stop_at_accuracy.target=99", 2, "stop_at_accuracy.target=99 is invalid"),
    ("logger.wandb.mode=sometimes", 2, "logger.wandb.mode='sometimes' is invalid"),
    ("malloc_mmap_threshold=-1", 2, "malloc_mmap_threshold=-1 is invalid"),
    ("huge_pages=sometimes", 2, "huge_pages='sometimes' is invalid; allowed: true or false"),
    ("ckpt_path=/no/such/file.ckpt", 2, "ckpt_path='/no/such/file.ckpt': no such file"),
    ("routing.no_such_key=1", 1, "Key 'no_such_key' is not in struct"),
    ("no_such_group=x", 1, "Could not override 'no_such_group'"),
]


@pytest.mark.parametrize(("override", "code", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_exits_with_one_clear_line(tmp_path, override, code, expected):
    overrides = [*override.split(), "data.sources=[]", f"data.data_dir={tmp_path}/none"]
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode == code, result.stderr[-2000:]
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "none").exists()  # nothing touched the data


def test_missing_data_names_every_source_tried(tmp_path):
    result = run_entry("train.py", ["data.sources=[]", f"data.data_dir={tmp_path}/empty"], tmp_path)
    assert result.returncode == 3
    assert "cannot get verified MNIST files" in result.stderr
    assert "train-images-idx3-ubyte is missing" in result.stderr


def test_fast_cpu_experiment_stops_at_target_and_logs_time(tmp_path, data_overrides):
    """One-cycle schedule sized by the Trainer, bf16, and the stop at the target accuracy."""
    overrides = [
        "experiment=fast_cpu",
        "model.compile=false",  # compiling is covered by a slow test
        "logger=csv",
        "trainer.max_epochs=3",
        "trainer.val_check_interval=5",  # steps: the first validation is half-way through epoch 0
    ]
    overrides += ["callbacks.stop_at_accuracy.target=0.0", *data_overrides]  # any accuracy reaches 0.0
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    stops = [row for row in rows if row.get("time_to_target_s")]
    assert len(stops) == 1 and float(stops[0]["time_to_target_s"]) > 0
    # 80 training images in batches of 8: the first validation comes after step 5, and the run stops
    # there, within the first epoch.
    assert max(int(row["step"]) for row in rows) == 5
    assert any(row.get("test/acc") for row in rows)


def test_stop_at_accuracy_refuses_a_metric_validation_does_not_log(tmp_path, data_overrides):
    overrides = ["experiment=fast_cpu", "model.compile=false", "logger=csv", "trainer.val_check_interval=5"]
    overrides += ["callbacks.stop_at_accuracy.monitor=val/accuracy", *data_overrides]
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "callbacks.stop_at_accuracy.monitor='val/accuracy' is not logged by validation" in result.stderr
    assert "val/acc," in result.stderr  # the names it could have been
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_compiled_model_trains_and_tests(tmp_path, data_overrides):
    """model.compile=true: torch.compile of the whole network, routing included (about a minute)."""
    result = run_entry("train.py", ["debug=fast_dev_run", "model.compile=true", *data_overrides], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout
