"""DDP on 2 CPU processes: the test set scored exactly, and multiruns that start no extra sweeps."""

import json

from tests.helpers import ROOT, TWO_STEPS, run_entry, run_in_process, run_multirun


def test_ddp_on_cpu_scores_exactly_the_test_set(tmp_path, data_overrides, tiny_overrides):
    """Two gloo processes on the 37-image test set: Lightning's sampler would pad it to 38."""
    train = run_entry(
        "train.py", [*tiny_overrides, "trainer=ddp_cpu", "trainer.max_epochs=1", "logger=csv"], tmp_path
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert not (tmp_path / "train_ddp_process_1").exists()
    distributed = json.loads((tmp_path / "metrics.json").read_text())["test/acc"]
    (checkpoint,) = (tmp_path / "checkpoints").glob("epoch_*.ckpt")  # the best, which was tested
    evaluation = run_in_process("eval", [*data_overrides, f"ckpt_path={checkpoint}"], tmp_path / "eval")
    assert evaluation.code == 0, evaluation.output[-3000:]
    single = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"]
    assert 0.0 < single < 1.0  # with 37 images, k/37 == m/38 only at 0 or 1
    assert distributed == single


def test_multirun_over_ddp_jobs_makes_no_extra_folders(tmp_path, tiny_overrides):
    """Lightning's `ddp` re-runs the command line for its other ranks; in a multirun that would be
    the whole sweep again. The job spawns the ranks instead (capsnet.run.workarounds)."""
    sweep_dir = tmp_path / "sweep"
    result = run_multirun(
        [*tiny_overrides, *TWO_STEPS, "logger=csv", "trainer=ddp_cpu", "routing.iterations=1"], sweep_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["0", "multirun.yaml"]
    assert json.loads((sweep_dir / "0" / "job.json").read_text())["status"] == "completed"
    assert "test/acc" in json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert not (ROOT / "logs" / "train" / "multiruns").exists() or not any(
        "ddp" in p.name for p in (ROOT / "logs" / "train" / "multiruns").rglob("*")
    )
