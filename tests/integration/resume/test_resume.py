"""Nothing lost: interruption and exact resume, determinism. In the interruption tests a real training
process gets a real signal: from itself, at a chosen step (``tests.helpers.SignalAtStep``), so that the
tests do not depend on how fast training runs."""

import csv
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, run_in_process

STEPS_PER_EPOCH = 10  # 80 synthetic training images, batch 8


EPOCHS = 3
INTERRUPTED_AT = STEPS_PER_EPOCH + 2  # in the middle of epoch 1


def _overrides(tiny_overrides, log_dir: Path) -> list[str]:
    return [
        *tiny_overrides,
        f"trainer.max_epochs={EPOCHS}",
        "trainer.deterministic=true",
        "logger=csv",
        "test=false",
        f"paths.log_dir={log_dir}",
        # "best" = the lowest val/acc: epoch 0, before the interruption (accuracy rises), which a resumed
        # run must not forget
        "callbacks.model_checkpoint.mode=min",
    ]


def _start(overrides: list[str], run_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``src/train.py`` in a process of its own; ``tests.helpers`` callbacks can be given as overrides."""
    command = [sys.executable, str(ROOT / "src" / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(  # a session of its own: a hung run is killed with all its processes
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def _signal_at(step: int, signum: signal.Signals, rank: int | None = None) -> list[str]:
    """Overrides that make the run (with ``rank``, only that process) send itself ``signum`` during
    training step ``step``."""
    target = "+callbacks.signal._target_=tests.helpers.SignalAtStep"
    overrides = [target, f"+callbacks.signal.step={step}", f"+callbacks.signal.signal={signum.name}"]
    return overrides + ([] if rank is None else [f"+callbacks.signal.rank={rank}"])


def _output(process: subprocess.Popen) -> str:
    """What the process printed, once it has ended (it and its children are killed if it hangs)."""
    try:
        return process.communicate(timeout=300)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the run did not end within 300 s:\n{process.communicate()[0][-3000:]}")


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_training_state(expected: dict, actual: dict) -> None:
    """The weights, Adam's moments and the schedule of two checkpoints agree (to 1e-6)."""
    for name, weight in expected["state_dict"].items():
        assert torch.allclose(actual["state_dict"][name], weight, rtol=0, atol=1e-6), name
    moments = zip(
        expected["optimizer_states"][0]["state"].values(),
        actual["optimizer_states"][0]["state"].values(),
        strict=True,
    )
    for theirs, ours in moments:
        assert torch.allclose(ours["exp_avg_sq"], theirs["exp_avg_sq"], rtol=0, atol=1e-6)
    assert actual["lr_schedulers"] == expected["lr_schedulers"]


def _objective(run_dir: Path) -> float:
    """The best validation accuracy of the whole run, as its metrics.json reports it to sweepers."""
    return json.loads((run_dir / "metrics.json").read_text())["val/acc_best"]


def _best_checkpoint(checkpoint: dict) -> tuple[str, float]:
    """The file name and score of the best checkpoint by ``val/acc`` that ``checkpoint`` knows of."""
    (state,) = (s for key, s in checkpoint["callbacks"].items() if "'monitor': 'val/acc'" in key)
    return Path(state["best_model_path"]).name, float(state["best_model_score"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_overrides):
    root = tmp_path_factory.mktemp("uninterrupted")
    result = run_in_process("train", _overrides(tiny_overrides, root / "logs"), root / "run")
    assert result.code == 0, result.output[-3000:]
    return root / "run"


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_ends_identical(
    tmp_path, tiny_overrides, uninterrupted
):
    logs = tmp_path / "logs"
    first = logs / "train" / "runs" / "first"
    process = _start([*_overrides(tiny_overrides, logs), *_signal_at(INTERRUPTED_AT, signal.SIGTERM)], first)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    assert "resumable checkpoint" in output and "ckpt_path=last" in output
    assert "`weights_only` was not set" not in output  # the interrupt's checkpoint says what it saves
    assert json.loads((first / "job.json").read_text())["status"] == "interrupted"
    assert _load(first / "checkpoints" / "last.ckpt")["global_step"] == INTERRUPTED_AT  # the step finished

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        resumed = run_in_process(
            "train", [*_overrides(tiny_overrides, logs), "ckpt_path=last"], tmp_path / "resumed"
        )
    assert resumed.code == 0, resumed.output[-3000:]
    assert f"resuming from {first / 'checkpoints' / 'last.ckpt'}" in resumed.output
    # Lightning's warnings about what this resume continues: the epoch's order, the checkpoints' ranking
    warnings_about_the_resume = ("ended before the epoch ended", "The dirpath has changed")
    assert not [w for w in warned if str(w.message).startswith(warnings_about_the_resume)]

    expected, actual = (
        _load(uninterrupted / "checkpoints" / "last.ckpt"),
        _load(tmp_path / "resumed" / "checkpoints" / "last.ckpt"),
    )
    assert (actual["global_step"], actual["epoch"]) == (expected["global_step"], expected["epoch"]) == (30, 2)
    assert_same_training_state(expected, actual)
    assert _best_checkpoint(actual) == _best_checkpoint(expected)  # ranked over the whole run, both folders
    assert _objective(tmp_path / "resumed") == _objective(uninterrupted)  # what a sweeper reads


@pytest.mark.parametrize(
    ("every", "saved_step", "saved_epoch"),
    [(6, INTERRUPTED_AT, 1), (STEPS_PER_EPOCH, STEPS_PER_EPOCH, 0)],
    ids=["mid-epoch", "after-an-epochs-last-step"],
)
def test_a_run_killed_outright_resumes_exactly_from_its_last_periodic_checkpoint(
    tmp_path, tiny_overrides, every, saved_step, saved_epoch
):
    """No signal to save on (the OOM killer, a lost node): the run continues from the last.ckpt that
    ``every_n_train_steps`` saved after a step, and ends as if it had never stopped."""
    overrides = _overrides(tiny_overrides, tmp_path / "logs")
    overrides += [f"+callbacks.last_checkpoint.every_n_train_steps={every}"]
    whole = run_in_process("train", overrides, tmp_path / "whole")
    assert whole.code == 0, whole.output[-3000:]

    first = tmp_path / "logs" / "train" / "runs" / "first"
    process = _start([*overrides, *_signal_at(INTERRUPTED_AT + 1, signal.SIGKILL)], first)
    output = _output(process)
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    saved = _load(first / "checkpoints" / "last.ckpt")
    assert (saved["global_step"], saved["epoch"]) == (saved_step, saved_epoch)

    resumed = run_in_process("train", [*overrides, "ckpt_path=last"], tmp_path / "resumed")
    assert resumed.code == 0, resumed.output[-3000:]
    expected, actual = (
        _load(run / "checkpoints" / "last.ckpt") for run in (tmp_path / "whole", tmp_path / "resumed")
    )
    assert (actual["global_step"], actual["epoch"]) == (expected["global_step"], expected["epoch"]) == (30, 2)
    assert_same_training_state(expected, actual)


def test_same_config_and_seed_give_identical_metrics(tmp_path, tiny_overrides, uninterrupted):
    """Two runs in this process: nothing carries over from one run to the next."""
    again = run_in_process("train", _overrides(tiny_overrides, tmp_path / "logs"), tmp_path / "again")
    assert again.code == 0, again.output[-3000:]
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == expected


def test_ctrl_c_finishes_the_step_and_saves_a_checkpoint(tmp_path, tiny_overrides):
    run_dir = tmp_path / "run"
    ctrl_c = _signal_at(INTERRUPTED_AT, signal.SIGINT)
    process = _start([*_overrides(tiny_overrides, tmp_path / "logs"), *ctrl_c], run_dir)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    assert "Ctrl-C: finishing this training step" in output
    assert _load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == INTERRUPTED_AT


def test_a_mid_epoch_checkpoint_does_not_resume_with_another_batch_size(tmp_path, tiny_overrides):
    run_dir = tmp_path / "logs" / "train" / "runs" / "first"
    process = _start(
        [*_overrides(tiny_overrides, tmp_path / "logs"), *_signal_at(3, signal.SIGTERM)], run_dir
    )
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    overrides = [*_overrides(tiny_overrides, tmp_path / "logs"), "ckpt_path=last", "data.batch_size=4"]
    resumed = run_in_process("train", overrides, tmp_path / "resumed")
    assert resumed.code == 2, resumed.output[-3000:]
    assert "data.batch_size gives 4 batch size, it had 8" in resumed.output


def test_last_without_any_checkpoint_is_a_clear_error(tmp_path, tiny_overrides):
    result = run_in_process(
        "train", [*_overrides(tiny_overrides, tmp_path / "logs"), "ckpt_path=last"], tmp_path
    )
    assert result.code == 2
    assert "ckpt_path=last: no last.ckpt under" in result.output


def test_auto_continues_the_runs_own_checkpoint_and_last_skips_other_models(
    tmp_path, data_overrides, tiny_overrides
):
    """A job requeued into its own folder continues itself (ckpt_path=auto, the default); ckpt_path=last
    passes over a newer checkpoint of another model to the newest one this run can continue."""
    run = ["logger=csv", "test=false", f"paths.log_dir={tmp_path / 'logs'}"]
    common = [*tiny_overrides, *run]
    job = tmp_path / "logs" / "train" / "runs" / "job"
    assert run_in_process("train", [*common, "trainer.max_epochs=1"], job).code == 0
    again = run_in_process("train", [*common, "trainer.max_epochs=2"], job)  # requeued: same folder
    assert again.code == 0, again.output[-3000:]
    assert f"ckpt_path=auto: continuing this job's own {job / 'checkpoints' / 'last.ckpt'}" in again.output
    assert _load(job / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH

    other = tmp_path / "logs" / "train" / "runs" / "other"
    tiny_baseline = ["model=baseline_cnn", "model.net.conv_channels=[4,4,4]", "model.net.hidden=[8,8]"]
    baseline = [*data_overrides, *run, *tiny_baseline, "trainer.max_epochs=1"]
    assert run_in_process("train", baseline, other).code == 0
    resumed = run_in_process("train", [*common, "trainer.max_epochs=3", "ckpt_path=last"], tmp_path / "new")
    assert resumed.code == 0, resumed.output[-3000:]
    assert f"resuming from {job / 'checkpoints' / 'last.ckpt'}" in resumed.output


def _validated_epochs(run_dir: Path) -> list[int]:
    """The epochs with a ``val/acc`` in the run's metrics.csv."""
    with open(run_dir / "csv" / "metrics.csv") as rows:
        return [int(row["epoch"]) for row in csv.DictReader(rows) if row.get("val/acc")]


def test_sigterm_during_validation_finishes_it_and_the_resumed_run_ends_identical(
    tmp_path, tiny_overrides, uninterrupted
):
    logs = tmp_path / "logs"
    first = logs / "train" / "runs" / "first"
    overrides = [*_overrides(tiny_overrides, logs), "data.eval_batch_size=4"]  # 4 validation batches
    sigterm = "+callbacks.sigterm._target_=tests.helpers.SigtermDuringValidation"
    process = _start([*overrides, sigterm], first)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    assert _load(first / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH
    assert _validated_epochs(first) == [0]  # epoch 0's validation was finished, not cut short
    assert (first / "checkpoints" / "epoch_000.ckpt").exists()  # and its checkpoint saved

    resumed = run_in_process("train", [*overrides, "ckpt_path=last"], tmp_path / "resumed")
    assert resumed.code == 0, resumed.output[-3000:]
    assert _validated_epochs(tmp_path / "resumed") == [1, 2]
    expected, actual = (
        _load(uninterrupted / "checkpoints" / "last.ckpt"),
        _load(tmp_path / "resumed" / "checkpoints" / "last.ckpt"),
    )
    assert (actual["global_step"], actual["epoch"]) == (expected["global_step"], expected["epoch"])
    assert_same_training_state(expected, actual)


def _slurm_job(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment of a one-task SLURM job (job 4242) whose ``scontrol`` records what it is asked."""
    bin_dir, requests = tmp_path / "bin", tmp_path / "scontrol_requests"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {requests}\n')
    scontrol.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="capsnet",
        SLURM_NTASKS="1",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_NODELIST="localhost",
    )
    return env, requests


def test_slurm_warning_signal_saves_requeues_and_the_same_command_ends_identical(
    tmp_path, tiny_overrides, uninterrupted, monkeypatch
):
    """SLURM sends the signal submitit asked for (SIGUSR2) before pre-empting the job: the job saves
    after the step and requeues itself; SLURM then runs the same command in the same folder."""
    env, requests = _slurm_job(tmp_path)
    job = tmp_path / "logs" / "train" / "runs" / "slurm-4242"
    overrides = [*_overrides(tiny_overrides, tmp_path / "logs"), *_signal_at(INTERRUPTED_AT, signal.SIGUSR2)]
    process = _start(overrides, job, env)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    assert "SIGUSR2: the job is about to be stopped" in output
    assert requests.read_text() == "requeue 4242\n"
    assert json.loads((job / "job.json").read_text())["status"] == "requeued"
    assert _load(job / "checkpoints" / "last.ckpt")["global_step"] == INTERRUPTED_AT

    for name, value in env.items():  # the requeued job: the same command in the same job (in this process)
        monkeypatch.setenv(name, value)
    requeued = run_in_process("train", overrides, job)  # the signal is not sent again past its step
    assert requeued.code == 0, requeued.output[-3000:]
    assert f"ckpt_path=auto: continuing this job's own {job / 'checkpoints' / 'last.ckpt'}" in requeued.output
    assert requests.read_text() == "requeue 4242\n"  # asked once
    assert_same_training_state(
        _load(uninterrupted / "checkpoints" / "last.ckpt"), _load(job / "checkpoints" / "last.ckpt")
    )
    assert _objective(job) == _objective(uninterrupted)


@pytest.mark.slow  # a submitit job that requeues itself: processes submitit starts
def test_submitits_warning_signal_saves_and_its_requeued_job_ends_identical(
    tmp_path, tiny_overrides, uninterrupted
):
    """The submitit_local launcher, as SLURM's submitit: SIGUSR2 mid-epoch 1, the job saves after the
    step, submitit requeues it (its handler), and the restarted job continues its own last.ckpt."""
    sweep = tmp_path / "sweep"
    signal_at = _signal_at(INTERRUPTED_AT, signal.SIGUSR2)
    overrides = [*_overrides(tiny_overrides, tmp_path / "logs"), *signal_at, "hydra/launcher=submitit_local"]
    command = [sys.executable, str(ROOT / "src" / "train.py"), "-m", *overrides, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = "".join(path.read_text() for path in sweep.glob(".submitit/*/*_log.*"))
    assert "SIGUSR2: the job is about to be stopped" in logs and "Requeued job" in logs
    assert "ckpt_path=auto: continuing this job's own" in logs
    assert json.loads((sweep / "0" / "job.json").read_text())["status"] == "completed"
    expected, actual = (
        _load(uninterrupted / "checkpoints" / "last.ckpt"),
        _load(sweep / "0" / "checkpoints" / "last.ckpt"),
    )
    assert (actual["global_step"], actual["epoch"]) == (expected["global_step"], expected["epoch"])
    assert_same_training_state(expected, actual)


def test_the_papers_protocol_with_ema_resumes_exactly_and_tests_the_averaged_last_weights(
    tmp_path, data_overrides, tiny_overrides
):
    """data.val_size=0 (no validation) with the EMA callback: interrupted mid-epoch and resumed, the run
    ends with the uninterrupted run's raw and averaged weights; its checkpoints hold the averaged ones,
    and what the run tested is what evaluating its last checkpoint gives."""
    overrides = [*_overrides(tiny_overrides, tmp_path / "logs"), "data.val_size=0", "callbacks=[default,ema]"]
    overrides += ["test=true", "+callbacks.model_checkpoint.save_top_k=-1", "callbacks.ema.decay=0.9"]
    overrides += ["optimized_metric=null"]  # 96 images, 12 steps an epoch: nothing validated
    whole = run_in_process("train", overrides, tmp_path / "whole")
    assert whole.code == 0, whole.output[-3000:]
    assert "testing the last weights" in whole.output
    assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints").glob("epoch_*.ckpt")) == [
        f"epoch_{epoch:03d}.ckpt"
        for epoch in range(EPOCHS)  # every epoch kept, none ranked
    ]
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert not [name for name in metrics if name.startswith("val/")]

    first = tmp_path / "logs" / "train" / "runs" / "first"
    process = _start([*overrides, *_signal_at(INTERRUPTED_AT, signal.SIGTERM)], first)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    resumed = run_in_process("train", [*overrides, "ckpt_path=last"], tmp_path / "resumed")
    assert resumed.code == 0, resumed.output[-3000:]
    expected, actual = (
        _load(run / "checkpoints" / "last.ckpt") for run in (tmp_path / "whole", tmp_path / "resumed")
    )
    assert_same_training_state(expected, actual)  # the averaged weights
    for name, weight in expected["current_model_state"].items():  # the raw ones
        assert torch.allclose(actual["current_model_state"][name], weight, rtol=0, atol=1e-6), name
    assert actual["averaging_state"]["n_averaged"] == expected["averaging_state"]["n_averaged"] == 36  # steps
    averaged, raw = expected["state_dict"], expected["current_model_state"]
    assert not all(torch.equal(averaged[name], raw[name]) for name in raw)

    evaluated = run_in_process(
        "eval",
        [*data_overrides, f"ckpt_path={tmp_path / 'whole' / 'checkpoints' / 'last.ckpt'}", "logger=csv"],
        tmp_path / "eval",
    )
    assert evaluated.code == 0, evaluated.output[-3000:]
    tested = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert tested["test/total_loss"] == pytest.approx(metrics["test/total_loss"], rel=1e-6)


def test_a_checkpoint_from_before_routing_was_a_group_still_evaluates_and_resumes(
    tmp_path, data_overrides, tiny_overrides, uninterrupted
):
    """Checkpoints written before ``routing._target_`` and ``model.net.parametrisation`` existed hold
    neither: they are Procedure 1's and the paper's parametrisation, and load, test and resume as such."""
    old = _load(uninterrupted / "checkpoints" / "last.ckpt")
    del old["hyper_parameters"]["routing"]["_target_"], old["hyper_parameters"]["net"]["parametrisation"]
    torch.save(old, tmp_path / "old.ckpt")
    evaluated = run_in_process(
        "eval", [f"ckpt_path={tmp_path / 'old.ckpt'}", *data_overrides], tmp_path / "eval"
    )
    assert evaluated.code == 0, evaluated.output[-3000:]
    more = [*_overrides(tiny_overrides, tmp_path / "logs"), f"ckpt_path={tmp_path / 'old.ckpt'}"]
    resumed = run_in_process("train", [*more, f"trainer.max_epochs={EPOCHS + 1}"], tmp_path / "resumed")
    assert resumed.code == 0, resumed.output[-3000:]
    assert (
        _load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")["global_step"]
        == (EPOCHS + 1) * STEPS_PER_EPOCH
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_training_starts_ends_with_one_line_and_a_record(tmp_path, tiny_overrides, signum):
    """Ctrl-C or SIGTERM during the sanity check (or data preparation): nothing to save yet, but the run
    says so, records it in job.json and exits 143 (Ctrl-C used to exit 1 without either)."""
    sanity = [
        "+callbacks.signal._target_=tests.helpers.SignalDuringSanityCheck",
        f"+callbacks.signal.signal={signum.name}",
    ]
    run_dir = tmp_path / "run"
    process = _start([*_overrides(tiny_overrides, tmp_path / "logs"), *sanity], run_dir)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    said = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"Interrupted: {said} before the work was done; nothing was written half" in output
    assert json.loads((run_dir / "job.json").read_text())["status"] == "interrupted"


STEPS_PER_EPOCH_ALL_IMAGES = 12  # 96 images, none held out (data.val_size=0)


def _metric_rows(run_dir: Path) -> list[dict[str, float]]:
    """The rows of the run's metrics.csv, each with only the values it holds, in the order written."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items() if value} for row in csv.DictReader(file)]


@pytest.mark.parametrize(
    ("every", "signum", "at_step", "saved_step"),
    [
        (None, signal.SIGKILL, 14, 12),
        (None, signal.SIGTERM, 12, 12),
        (8, signal.SIGKILL, 19, 16),
        (12, signal.SIGKILL, 14, 12),
    ],
    ids=[
        "killed-after-an-epochs-checkpoint",
        "sigterm-in-an-epochs-last-step",
        "killed-after-a-periodic-one",
        "killed-after-a-periodic-one-in-an-epochs-last-step",
    ],
)
def test_a_job_requeued_into_its_folder_ends_with_the_whole_runs_checkpoints_and_metrics(
    tmp_path, tiny_overrides, every, signum, at_step, saved_step
):
    """The paper's protocol (no validation, every epoch's checkpoint kept), stopped and requeued into its
    own folder (``ckpt_path=auto``): the folder ends as the uninterrupted run's, with the same training
    state, each epoch's checkpoint once (not again as ``epoch_000-v1.ckpt``) and the whole run's
    metrics.csv (Lightning's CSV logger deletes the file it finds; the rows up to the checkpoint stay),
    the epoch's train/acc of a resume in the middle of an epoch included."""
    overrides = [*_overrides(tiny_overrides, tmp_path / "logs"), "data.val_size=0", "optimized_metric=null"]
    overrides += ["+callbacks.model_checkpoint.save_top_k=-1", "trainer.log_every_n_steps=1"]
    overrides += [f"+callbacks.last_checkpoint.every_n_train_steps={every}"] if every else []
    whole = run_in_process("train", overrides, tmp_path / "whole")
    assert whole.code == 0, whole.output[-3000:]

    job = tmp_path / "logs" / "train" / "runs" / "job"
    process = _start([*overrides, *_signal_at(at_step, signum)], job)
    output = _output(process)
    assert process.returncode == (143 if signum == signal.SIGTERM else -signum), output[-3000:]
    assert _load(job / "checkpoints" / "last.ckpt")["global_step"] == saved_step

    requeued = run_in_process("train", overrides, job)
    assert requeued.code == 0, requeued.output[-3000:]
    assert "continuing this job's own" in requeued.output
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == [
        *(f"epoch_{epoch:03d}.ckpt" for epoch in range(EPOCHS)),
        "last.ckpt",
    ]
    assert_same_training_state(
        _load(tmp_path / "whole" / "checkpoints" / "last.ckpt"), _load(job / "checkpoints" / "last.ckpt")
    )
    expected, actual = _metric_rows(tmp_path / "whole"), _metric_rows(job)
    assert [sorted(row) for row in actual] == [sorted(row) for row in expected]
    assert len(expected) > EPOCHS * STEPS_PER_EPOCH_ALL_IMAGES  # every step's row, and each epoch's
    for theirs, ours in zip(expected, actual, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
