"""Hydra multiruns: a folder per job, job.json and metrics.json, failures, Optuna, the sweep summary."""

import contextlib
import csv
import importlib.util
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from PIL import Image

from tests.helpers import ROOT, TWO_STEPS, read_wandb_run, run_multirun


def summarize(sweep_dir: Path) -> SimpleNamespace:
    """``scripts/summarize_sweep.py <sweep_dir>`` in this process: its exit code (``returncode``)."""
    spec = importlib.util.spec_from_file_location("summarize_sweep", ROOT / "scripts" / "summarize_sweep.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            script.main([str(sweep_dir)])
    except SystemExit as exit_:
        return SimpleNamespace(returncode=exit_.code, stderr="")
    return SimpleNamespace(returncode=0, stderr="")


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory, tiny_overrides):
    sweep_dir = tmp_path_factory.mktemp("grid") / "sweep"
    result = run_multirun(
        [*tiny_overrides, *TWO_STEPS, "routing=dynamic,leaky", "routing.iterations=1,2"], sweep_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir / "output.txt").write_text(result.stdout)  # what the sweep printed, for the tests below
    return sweep_dir


def test_an_offline_sweep_prints_one_upload_command_for_all_its_jobs(grid_sweep):
    printed = (grid_sweep / "output.txt").read_text()
    assert "to upload it: wandb sync" not in printed  # not one line per job
    command = f"to upload the whole sweep: wandb sync {grid_sweep}/*/wandb/offline-run-*"
    assert printed.count(command) == 1
    assert len(list(grid_sweep.glob("*/wandb/offline-run-*"))) == 4


def test_grid_runs_every_combination_in_its_own_folder(grid_sweep):
    combos = set()
    for job in range(4):
        overrides = yaml.safe_load((grid_sweep / str(job) / ".hydra" / "overrides.yaml").read_text())
        combos.add(tuple(sorted(o for o in overrides if o.startswith("routing"))))
        config = (grid_sweep / str(job) / ".hydra" / "config.yaml").read_text()
        assert ("LeakyRouting" in config) == ("routing=leaky" in overrides)
        record = json.loads((grid_sweep / str(job) / "job.json").read_text())
        metrics = json.loads((grid_sweep / str(job) / "metrics.json").read_text())
        assert record["status"] == "completed"
        assert record["objective"] == metrics["val/acc_best"]  # what train() returned to the sweeper
    assert combos == {
        ("routing.iterations=1", "routing=dynamic"),
        ("routing.iterations=1", "routing=leaky"),
        ("routing.iterations=2", "routing=dynamic"),
        ("routing.iterations=2", "routing=leaky"),
    }
    assert not (grid_sweep / "4").exists()


def test_grid_jobs_share_one_wandb_group_named_after_the_sweep(grid_sweep):
    runs = [
        read_wandb_run(next((grid_sweep / str(job) / "wandb").glob("offline-run-*"))).run for job in range(4)
    ]
    assert {run["run_group"] for run in runs} == {f"train-{grid_sweep.name}"}
    assert len({run["run_id"] for run in runs}) == 4
    assert len({run["display_name"] for run in runs}) == 4


def test_summary_has_a_row_per_job_and_a_plot(grid_sweep):
    result = summarize(grid_sweep)
    assert result.returncode == 0, result.stderr
    rows = (grid_sweep / "summary.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:4] == ["job", "status", "routing", "routing.iterations"] and "val/acc_best" in header
    assert len(rows) == 1 + 4
    assert all(row.split(",")[1] == "completed" for row in rows[1:])
    assert "| job | status |" in (grid_sweep / "summary.md").read_text()
    assert not (grid_sweep / "summary_over_seeds.csv").exists()  # no seeds swept

    with Image.open(grid_sweep / "summary.png") as picture:
        assert picture.size == (640, 2 * 400)  # one panel per swept parameter


def test_a_damaged_result_file_is_named_and_the_table_still_written(grid_sweep, tmp_path):
    """A metrics.json or job.json cut short (a kill, a full disk) names its file; the others are tabled."""
    import shutil

    sweep = tmp_path / "sweep"
    shutil.copytree(grid_sweep, sweep)
    (sweep / "summary.csv").unlink()
    (sweep / "1" / "metrics.json").write_text('{"val/acc_best": 0.')
    (sweep / "2" / "job.json").write_text("{")
    assert summarize(sweep).returncode == 1
    rows = {row.split(",")[0]: row for row in (sweep / "summary.csv").read_text().splitlines()[1:]}
    assert len(rows) == 4 and "completed" in rows["0"] and "completed" in rows["3"]
    assert f"unreadable results: {sweep / '1' / 'metrics.json'}" in rows["1"]
    assert f"unreadable results: {sweep / '2' / 'job.json'}" in (sweep / "summary.md").read_text()


def test_a_failed_job_does_not_stop_the_sweep_and_is_named(tmp_path, tiny_overrides):
    sweep_dir = tmp_path / "sweep"
    overrides = [*tiny_overrides, *TWO_STEPS, "logger=csv", "routing.iterations=0,1"]
    overrides += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]  # in parallel, too
    result = run_multirun(overrides, sweep_dir)
    assert result.returncode != 0  # Hydra reports the failure at the end
    assert "routing.iterations=0 is invalid" in result.stderr
    failed = json.loads((sweep_dir / "0" / "job.json").read_text())
    assert failed["status"] == "failed" and "routing.iterations=0" in failed["error"]
    assert json.loads((sweep_dir / "1" / "job.json").read_text())["status"] == "completed"

    summary = summarize(sweep_dir)
    assert summary.returncode == 1  # not every job has results
    text = (sweep_dir / "summary.md").read_text()
    assert "Failed jobs:" in text and "- job 0 (routing.iterations=0)" in text
    rows = [row.split(",") for row in (sweep_dir / "summary.csv").read_text().splitlines()[1:]]
    assert [(row[0], row[1]) for row in rows] == [("1", "completed"), ("0", "failed")]


def test_optuna_search_finishes_reports_the_best_and_resumes(tmp_path, tiny_overrides):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = [*tiny_overrides, *TWO_STEPS, "logger=csv", "hparams_search=capsnet_optuna"]
    common += [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=test"]
    first = run_multirun([*common, "hydra.sweeper.n_trials=2"], tmp_path / "first")
    assert first.returncode == 0, first.stderr[-3000:]
    results = yaml.safe_load((tmp_path / "first" / "optimization_results.yaml").read_text())
    values = [
        json.loads((tmp_path / "first" / str(n) / "metrics.json").read_text())["val/acc_best"]
        for n in range(2)
    ]
    assert results["best_value"] == max(values)
    assert set(results["best_params"]) == {
        "routing.iterations",
        "decoder.alpha",
        "loss.margin_weight",
        "model.optimizer.lr",
    }
    second = run_multirun([*common, "hydra.sweeper.n_trials=1"], tmp_path / "second")
    assert second.returncode == 0, second.stderr[-3000:]
    study = optuna.load_study(study_name="test", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3


def test_summary_names_jobs_without_results_and_jobs_never_started(tmp_path):
    """A sweep killed midway: job 0 finished, job 1 started but wrote nothing, job 2 never started."""
    sweep = tmp_path / "sweep"
    hydra_overrides = {
        "hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}}
    }
    hydra_overrides["hydra"]["overrides"] = {"task": ["routing.iterations=1,2,3"]}
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump({**hydra_overrides, "optimized_metric": "val/acc_best"})
    )
    for job, iterations in ((0, 1), (1, 2)):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"routing.iterations={iterations}"])
        )
    (sweep / "0" / "job.json").write_text(json.dumps({"status": "completed"}))
    (sweep / "0" / "metrics.json").write_text(json.dumps({"val/acc_best": 0.5, "test/acc": 0.4}))
    result = summarize(sweep)
    assert result.returncode == 1
    text = (sweep / "summary.md").read_text()
    assert "Jobs without results (running or killed):\n- job 1 (routing.iterations=2)" in text
    assert "Jobs never started: 2 (of 3 expected)" in text


def _seeds_sweep(sweep: Path, results: dict, optimized_metric: str | None) -> Path:
    """A finished sweep's folders: ``results`` maps (routing, seed) to the job's metrics, None for a
    job that failed."""
    for job, ((routing, seed), metrics) in enumerate(results.items()):
        folder = sweep / str(job)
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"routing={routing}", f"seed={seed}"])
        )
        if metrics is None:
            (folder / "job.json").write_text(json.dumps({"status": "failed", "error": "diverged"}))
            continue
        (folder / "job.json").write_text(json.dumps({"status": "completed"}))
        (folder / "metrics.json").write_text(json.dumps(metrics))
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"optimized_metric": optimized_metric}))
    return sweep


def test_a_sweep_over_seeds_is_summarized_per_variant_with_mean_and_std(tmp_path):
    """routing=dynamic,leaky x seed=1,2,3, leaky's seed 3 failed: each variant's mean and deviation over
    the seeds that finished, and how many of its jobs those are."""
    results = {  # (routing, seed): (val/acc_best, test/acc), None for the failed job
        ("dynamic", 1): (0.990, 0.9960),
        ("dynamic", 2): (0.992, 0.9965),
        ("dynamic", 3): (0.994, 0.9970),
        ("leaky", 1): (0.980, 0.9950),
        ("leaky", 2): (0.984, 0.9956),
        ("leaky", 3): None,
    }
    metrics = {
        key: value and {"val/acc_best": value[0], "test/acc": value[1]} for key, value in results.items()
    }
    sweep = _seeds_sweep(tmp_path / "sweep", metrics, "val/acc_best")

    assert summarize(sweep).returncode == 1  # a job failed
    rows = list(csv.DictReader((sweep / "summary_over_seeds.csv").open()))
    assert [(row["routing"], row["seeds"]) for row in rows] == [("dynamic", "3/3"), ("leaky", "2/3")]
    dynamic, leaky = rows
    assert float(dynamic["val/acc_best mean"]) == pytest.approx(0.992)
    assert float(dynamic["val/acc_best std"]) == pytest.approx(0.002)
    assert float(dynamic["test error % mean"]) == pytest.approx(0.35)
    assert float(dynamic["test error % std"]) == pytest.approx(0.05)
    assert float(leaky["test error % mean"]) == pytest.approx(0.47)
    assert float(leaky["test error % std"]) == pytest.approx(statistics.stdev([0.50, 0.44]))
    text = (sweep / "summary.md").read_text()
    assert "## Over seeds" in text and "| leaky | 2/3 |" in text


def test_a_sweep_without_validation_is_summarized_by_its_test_error(tmp_path):
    """The paper's protocol (``experiment=paper_short -m seed=1,2``): no validation metric and no
    optimized_metric; the test accuracy is the metric, and each variant's test error over its seeds."""
    metrics = {
        ("dynamic", 1): {"test/acc": 0.9960},
        ("dynamic", 2): {"test/acc": 0.9970},
        ("leaky", 1): {"test/acc": 0.9970},
        ("leaky", 2): {"test/acc": 0.9980},
    }
    sweep = _seeds_sweep(tmp_path / "sweep", metrics, None)
    assert summarize(sweep).returncode == 0
    header, *rows = list(csv.reader((sweep / "summary.csv").open()))
    assert header == ["job", "status", "routing", "seed", "test/acc", "error"]
    assert [row[0] for row in rows] == ["3", "1", "2", "0"]  # highest test accuracy first
    rows = list(csv.DictReader((sweep / "summary_over_seeds.csv").open()))
    assert list(rows[0]) == ["routing", "seeds", "test error % mean", "test error % std"]
    assert [(row["routing"], row["seeds"]) for row in rows] == [("leaky", "2/2"), ("dynamic", "2/2")]
    assert [float(row["test error % mean"]) for row in rows] == pytest.approx([0.25, 0.35])


def test_capsnet_vs_cnn_runs_both_models_in_one_sweep(tmp_path, data_overrides):
    sweep = tmp_path / "sweep"
    result = run_multirun(["experiment=capsnet_vs_cnn", *data_overrides, *TWO_STEPS, "logger=csv"], sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    models = [yaml.safe_load((sweep / str(job) / ".hydra" / "overrides.yaml").read_text()) for job in (0, 1)]
    assert [next(o for o in job if o.startswith("model=")) for job in models] == [
        "model=capsnet",
        "model=baseline_cnn",
    ]
    for job in (0, 1):
        assert "test/acc" in (sweep / str(job) / "metrics.json").read_text()


@pytest.mark.slow  # two jobs, each a process of its own started by submitit
def test_the_submitit_local_launcher_runs_a_two_job_sweep(tmp_path, tiny_overrides):
    sweep = tmp_path / "sweep"
    overrides = [
        *tiny_overrides,
        *TWO_STEPS,
        "logger=csv",
        "routing.iterations=1,2",
        "hydra/launcher=submitit_local",
    ]
    result = run_multirun([*overrides, "hydra.launcher.timeout_min=10"], sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert json.loads((sweep / job / "job.json").read_text())["status"] == "completed"
        assert "test/acc" in json.loads((sweep / job / "metrics.json").read_text())


def test_two_runs_started_at_once_get_folders_of_their_own(tmp_path, tiny_overrides):
    """A shell loop with ``&`` or a job array: runs started in the same second never share a folder."""
    overrides = [*tiny_overrides, *TWO_STEPS, "logger=csv", "test=false", f"paths.log_dir={tmp_path}"]
    command = [sys.executable, str(ROOT / "src" / "train.py"), *overrides]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    folders = sorted((tmp_path / "train" / "runs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert json.loads((folder / "job.json").read_text())["status"] == "completed"
        assert (folder / "csv" / "metrics.csv").read_text().startswith("epoch,")
