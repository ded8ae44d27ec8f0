"""experiment=table1 (the paper's Table 1 as a sweep) on tiny synthetic data, and its table."""

import csv
import importlib.util
import json
import shutil
import statistics

import pytest

from tests.helpers import ROOT, TWO_STEPS, run_multirun

ROWS = ["baseline", "routing1", "routing1_reconstruction", "routing3", "routing3_reconstruction"]


def _script():
    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "scripts" / "paper_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _table1(data_overrides: list[str]) -> list[str]:
    """experiment=table1, tiny: 5 rows x 2 seeds (the command line's seeds replace the experiment's)."""
    return [
        *data_overrides,
        "experiment=table1",
        "seed=1,2",
        *TWO_STEPS,
        "logger=csv",
        "callbacks.capsule_insights.table_size=4",
    ]


@pytest.fixture(scope="module")
def table1_sweep(tmp_path_factory, data_overrides):
    sweep = tmp_path_factory.mktemp("table1") / "sweep"
    result = run_multirun(_table1(data_overrides), sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def _jobs(sweep) -> dict[tuple[str, str], str]:
    """{(row, seed): job folder name}."""
    found = {}
    for job in sweep.iterdir():
        if (job / ".hydra" / "overrides.yaml").exists():
            params = dict(
                line.lstrip("- ").split("=", 1)
                for line in (job / ".hydra" / "overrides.yaml").read_text().splitlines()
                if "=" in line
            )
            found[(params["+table1_row"], params["seed"])] = job.name
    return found


def test_table1_is_five_rows_times_the_seeds_with_the_papers_setup(table1_sweep):
    jobs = _jobs(table1_sweep)
    assert set(jobs) == {(row, seed) for row in ROWS for seed in ("1", "2")}
    for (row, _), job in jobs.items():
        config = (table1_sweep / job / ".hydra" / "config.yaml").read_text()
        assert ("BaselineCNNModule" in config) == (row == "baseline")
        assert "shift_pixels: 2" in config and "decay_steps: 2000" in config  # experiment=paper


def test_the_table_has_every_row_with_the_jobs_mean_and_std(table1_sweep):
    result = _script().paper_table(table1_sweep)
    assert result["missing"] == []
    jobs = _jobs(table1_sweep)
    with open(table1_sweep / "paper_table.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["paper %"] for r in table] == ["0.39", "0.34", "0.29", "0.35", "0.25"]
    for row, line in zip(ROWS, table, strict=True):
        errors = [
            100 * json.loads((table1_sweep / jobs[(row, seed)] / "metrics.json").read_text())["test/error"]
            for seed in ("1", "2")
        ]
        assert line["seeds"] == "2/2"
        assert float(line["test error % (mean)"]) == pytest.approx(statistics.fmean(errors), abs=5e-4)
        assert float(line["std"]) == pytest.approx(statistics.stdev(errors), abs=5e-4)
        assert float(line["difference"]) == pytest.approx(
            statistics.fmean(errors) - float(line["paper %"]), abs=1e-3
        )
    assert (table1_sweep / "paper_table.png").stat().st_size > 0


def test_failed_and_missing_jobs_are_named_and_never_averaged(table1_sweep, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(table1_sweep, sweep, ignore=shutil.ignore_patterns("*.ckpt"))
    jobs = _jobs(sweep)
    failed = sweep / jobs[("routing3", "2")]
    (failed / "metrics.json").unlink()
    (failed / "job.json").write_text(json.dumps({"status": "failed", "error": "NonFiniteLossError: nan"}))
    shutil.rmtree(sweep / jobs[("baseline", "1")])  # never started
    script = _script()
    result = script.paper_table(sweep)
    rows = {line[0] + line[1] + line[2]: line for line in result["rows"]}
    assert rows["CapsNet3no"][5] == "1/2" and rows["Baseline CNN--"][5] == "1/2"
    assert (
        f"job {jobs[('routing3', '2')]} (routing3, seed 2): failed (NonFiniteLossError: nan)"
        in result["missing"]
    )
    assert f"job {jobs[('baseline', '1')]}: never started" in result["missing"]
    with pytest.raises(SystemExit) as ended:
        script.main([str(sweep)])
    assert ended.value.code == 1


def test_the_same_sweep_run_again_into_its_folder_redoes_no_finished_job(table1_sweep, data_overrides):
    jobs = _jobs(table1_sweep)
    before = {job: (table1_sweep / job / "metrics.json").read_text() for job in jobs.values()}
    again = run_multirun(_table1(data_overrides), table1_sweep)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        again.stdout.count("this job completed before") + again.stderr.count("this job completed before")
        == 10
    )
    assert {job: (table1_sweep / job / "metrics.json").read_text() for job in jobs.values()} == before
