"""Careless values: each ends the run with one line naming the key and what is allowed, and an exit code."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_entry, run_in_process

BAD_CONFIGS = [  # (override, exit code, what the one line must say)
    ("routing.iterations=0", 2, "routing.iterations=0 is invalid; allowed: an integer from 1 to 100"),
    ("routing.iterations=abc", 2, "routing.iterations='abc' is invalid"),
    ("routing.iterations=2.5", 2, "routing.iterations=2.5 is invalid"),
    ("routing.detach_inner=maybe", 2, "routing.detach_inner='maybe' is invalid; allowed: true or false"),
    ("routing.precision=fp16", 2, "routing.precision='fp16' is invalid; allowed: float32 or bf16"),
    ("decoder.alpha=-1", 2, "decoder.alpha=-1 is invalid; allowed: a number >= 0"),
    (
        "decoder.hidden=[512,0]",
        2,
        "decoder.hidden=[512, 0] is invalid; allowed: a list of integers from 1 to 65536",
    ),
    ("loss.margin_weight=-0.5", 2, "loss.margin_weight=-0.5 is invalid"),
    ("loss.m_plus=1.5", 2, "loss.m_plus=1.5 is invalid"),
    ("loss.m_minus=0.95", 2, "loss.m_minus=0.95 must be below loss.m_plus=0.9"),
    ("data.batch_size=0", 2, "data.batch_size=0 is invalid; allowed: an integer >= 1"),
    ("data.batch_size=abc", 2, "data.batch_size='abc' is invalid"),
    ("data.shift_pixels=-1", 2, "data.shift_pixels=-1 is invalid"),
    ("data.val_size=-1", 2, "data.val_size=-1 is invalid"),
    ("trainer.accumulate_grad_batches=0", 2, "trainer.accumulate_grad_batches=0 is invalid"),
    ("trainer.val_check_interval=0", 2, "trainer.val_check_interval=0 is invalid; allowed: a fraction"),
    ("routing.iterations=1000", 2, "routing.iterations=1000 is invalid; allowed: an integer from 1 to 100"),
    ("model.optimizer.lr=0", 2, "model.optimizer.lr=0 is invalid"),
    ("trainer.precision=8", 2, "trainer.precision=8 is invalid"),
    ("trainer.max_epochs=-5", 2, "trainer.max_epochs=-5 is invalid"),
    ("seed=-1", 2, "seed=-1 is invalid"),
    ("seed=5000000000", 2, "seed=5000000000 is invalid; allowed: an integer in [0, 4294967295]"),
    ("tags=[" + "x" * 65 + "]", 2, "allowed: a list of tags of 1 to 64 characters"),
    ("tags=['']", 2, "tags=[''] is invalid; allowed: a list of tags of 1 to 64 characters"),
    ("trainer.max_epochs=0", 2, "trainer.max_epochs=0 is invalid; allowed: an integer >= 1, or -1"),
    ("trainer.max_steps=0", 2, "trainer.max_steps=0 is invalid"),
    ("trainer.precision=64", 2, "trainer.precision=64 is invalid; allowed: one of 32, 32-true, bf16-mixed"),
    ("trainer.precision=64-true", 2, "trainer.precision='64-true' is invalid"),
    ("trainer.precision=bf16-true", 2, "trainer.precision='bf16-true' is invalid"),
    ("trainer.precision=16-true", 2, "trainer.precision='16-true' is invalid"),
    (
        "callbacks=[default,stop_at_accuracy] callbacks.stop_at_accuracy.target=99",
        2,
        "callbacks.stop_at_accuracy.target=99 is invalid",
    ),
    ("logger.wandb.mode=sometimes", 2, "logger.wandb.mode='sometimes' is invalid"),
    ("malloc_mmap_threshold=-1", 2, "malloc_mmap_threshold=-1 is invalid"),
    ("huge_pages=sometimes", 2, "huge_pages='sometimes' is invalid; allowed: true or false"),
    (
        "requeue_signals=[SIGTERM]",
        2,
        "requeue_signals=['SIGTERM'] is invalid; allowed: a list of signal names other",
    ),
    ("ckpt_path=/no/such/file.ckpt", 2, "ckpt_path='/no/such/file.ckpt': no such file"),
]
# Refused by Hydra while composing, before our check: only a real process shows its exit code.
BAD_COMPOSITIONS = [
    ("routing.no_such_key=1", 1, "Key 'no_such_key' is not in struct"),
    ("routing=self_attention routing.iterations=3", 1, "Key 'iterations' is not in struct"),  # not its key
    ("no_such_group=x", 1, "Could not override 'no_such_group'"),
]


@pytest.mark.parametrize(("override", "code", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_ends_with_one_clear_line(tmp_path, override, code, expected):
    overrides = [*override.split(), "data.sources=[]", f"data.data_dir={tmp_path}/none"]
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == code, result.output[-2000:]
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "none").exists()  # nothing touched the data


@pytest.mark.parametrize(
    ("override", "code", "expected"),
    [BAD_CONFIGS[1], *BAD_COMPOSITIONS],
    ids=[c[0] for c in [BAD_CONFIGS[1], *BAD_COMPOSITIONS]],
)
def test_a_real_process_exits_with_the_code_and_one_line(tmp_path, override, code, expected):
    overrides = [*override.split(), "data.sources=[]", f"data.data_dir={tmp_path}/none"]
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode == code, result.stderr[-2000:]
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_names_every_source_tried(tmp_path):
    result = run_in_process("train", ["data.sources=[]", f"data.data_dir={tmp_path}/empty"], tmp_path)
    assert result.code == 3
    assert "cannot get verified MNIST files" in result.output
    assert "train-images-idx3-ubyte is missing" in result.output


# Values that only the data can judge: refused once the files are read, before any training.
BAD_FOR_THE_DATA = [
    ("data.val_size=1000", "data.val_size=1000 must be in [0, 95]"),
    ("data.num_classes=5", "data.num_classes=5, but"),
    ("data.image_shape=[1,32,32]", "data.image_shape=[1, 32, 32], but"),
    ("data.batch_size=100000", "data.batch_size=100000 is more than the 80 training images it draws from"),
]


@pytest.mark.parametrize(("override", "expected"), BAD_FOR_THE_DATA, ids=[c[0] for c in BAD_FOR_THE_DATA])
def test_a_value_the_data_cannot_meet_ends_with_one_line(tmp_path, data_overrides, override, expected):
    result = run_in_process("train", [*data_overrides, override], tmp_path)
    assert result.code == 2, result.output[-2000:]
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_full_disk_ends_training_with_one_line_and_exit_5(tmp_path, tiny_overrides, monkeypatch):
    import errno

    import torch

    def disk_full(obj, file, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)  # the checkpoint writer's torch.save
    result = run_in_process("train", [*tiny_overrides, "trainer.max_epochs=1", "logger=csv"], tmp_path)
    assert result.code == 5, result.output[-2000:]
    assert f"Disk full: no space left in {tmp_path / 'checkpoints'} for epoch_000.ckpt" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("entry", ["eval", "visualize"])
def test_sigterm_while_testing_exits_143_with_one_line_and_a_record(
    entry, trained_capsnet, data_overrides, tmp_path
):
    overrides = [
        f"ckpt_path={trained_capsnet.last}",
        *data_overrides,
        "+callbacks.sigterm._target_=tests.helpers.SigtermWhileTesting",
    ]
    result = run_in_process(entry, overrides, tmp_path)
    assert result.code == 143, result.output[-2000:]
    assert "Interrupted: SIGTERM" in result.output
    record = json.loads((tmp_path / "job.json").read_text())
    assert (record["status"], record["exit_code"]) == ("interrupted", 143)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [(["routing.iterations=0"], 2), (["data.sources=[]", "data.data_dir=/nonexistent/x"], 3)],
)
def test_a_single_run_that_fails_writes_its_job_record(tmp_path, overrides, code):
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == code
    record = json.loads((tmp_path / "job.json").read_text())
    assert (record["status"], record["exit_code"]) == ("failed", code)
    assert record["error"].splitlines()[0] in result.output


def test_logger_mlflow_without_a_tracking_server_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_in_process("train", ["logger=mlflow", "data.sources=[]"], tmp_path)
    assert result.code == 2, result.output[-2000:]
    assert "logger=mlflow needs a tracking server: set MLFLOW_TRACKING_URI" in result.output


def test_a_bad_config_is_refused_before_torch_loads(tmp_path):
    """The check comes first (about a second): nothing Hydra loads at start-up (its callbacks
    included) may import torch."""
    script = (
        "import atexit, runpy, sys; "
        "atexit.register(lambda: print('torch loaded:', 'torch' in sys.modules)); "
        f"sys.argv = ['train.py', 'routing.iterations=0', 'hydra.run.dir={tmp_path}']; "
        f"runpy.run_path('{ROOT / 'src' / 'train.py'}', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "torch loaded: False" in result.stdout


def test_a_sweep_optimizing_validation_without_validation_is_refused_before_training(tmp_path):
    """experiment=paper validates nothing (the paper's protocol): a sweep of it that optimizes
    val/acc_best is refused by name in each job, before any data is touched; a single run is not."""
    overrides = ["-m", "experiment=paper", "optimized_metric=val/acc_best", "seed=1,2", "data.sources=[]"]
    overrides += [f"data.data_dir={tmp_path}/none", f"hydra.sweep.dir={tmp_path}/sweep"]
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode != 0
    assert "optimized_metric=val/acc_best needs a validation set, and data.val_size=0" in result.stderr
    assert not (tmp_path / "none").exists()
