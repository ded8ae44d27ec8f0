"""The paper's Table 1 beside what an ``experiment=table1`` sweep measured.

    python scripts/paper_table.py logs/train/multiruns/<time>

For each row (the baseline CNN; the CapsNet with 1 and 3 routing iterations, each without and with the
reconstruction loss): the mean and standard deviation (over seeds, n - 1 in the denominator) of the
test error in %, the number of seeds finished out of those the sweep launches, the paper's figure and
the difference. Writes ``paper_table.md``, ``paper_table.csv`` and ``paper_table.png`` into the sweep
folder. A row is never averaged over fewer seeds silently: the count says how many, and every job that
failed, has no results yet, or never started is named. Exit code 1 while any job is missing.
"""

import argparse
import csv
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from capsnet.run.sweep_results import expected_jobs, mean_and_std, read_jobs, read_multirun_config
from capsnet.viz import charts


@dataclass(frozen=True)
class PaperRow:
    key: str  # the table1_row config (conf/table1_row/<key>.yaml)
    method: str
    routing: str
    reconstruction: str
    paper_error: float  # % (Sabour et al. 2017, Table 1)
    paper_std: float | None


PAPER_TABLE_1 = (
    PaperRow("baseline", "Baseline CNN", "-", "-", 0.39, None),
    PaperRow("routing1", "CapsNet", "1", "no", 0.34, 0.032),
    PaperRow("routing1_reconstruction", "CapsNet", "1", "yes", 0.29, 0.011),
    PaperRow("routing3", "CapsNet", "3", "no", 0.35, 0.036),
    PaperRow("routing3_reconstruction", "CapsNet", "3", "yes", 0.25, 0.005),
)
COLUMNS = [
    "method",
    "routing",
    "reconstruction",
    "test error % (mean)",
    "std",
    "seeds",
    "paper %",
    "paper std",
    "difference",
]


def _seeds(multirun_config: dict) -> list[str]:
    """The seeds the sweep launches (its sweeper's ``seed`` list, or the command line's)."""
    hydra_cfg = multirun_config.get("hydra", {})
    task = dict(o.split("=", 1) for o in hydra_cfg.get("overrides", {}).get("task", []) if "=" in o)
    value = task.get("seed", (hydra_cfg.get("sweeper", {}).get("params") or {}).get("seed", ""))
    return [s.strip() for s in str(value).split(",") if s.strip()]


def _row_of(job: dict) -> str | None:
    return next((v for k, v in job["params"].items() if k.lstrip("+~") == "table1_row"), None)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def paper_table(sweep_dir: Path) -> dict:
    jobs = read_jobs(sweep_dir)
    multirun_config = read_multirun_config(sweep_dir)
    seeds = _seeds(multirun_config)
    expected = expected_jobs(multirun_config) or 0
    present = {job["job"] for job in jobs}
    missing = [f"job {n}: never started" for n in range(expected) if str(n) not in present]
    rows, measured = [], {}
    for paper in PAPER_TABLE_1:
        mine = [job for job in jobs if _row_of(job) == paper.key]
        finished = [job for job in mine if job["status"] == "completed" and "test/error" in job["metrics"]]
        errors = [100 * job["metrics"]["test/error"] for job in finished]
        for job in mine:
            if job not in finished:
                why = job["status"] + (f" ({job['error']})" if job["error"] else "")
                missing.append(
                    f"job {job['job']} ({paper.key}, seed {job['params'].get('seed', '?')}): {why}"
                )
        mean, std = mean_and_std(errors)
        measured[paper.key] = errors
        rows.append(
            [
                paper.method,
                paper.routing,
                paper.reconstruction,
                _fmt(mean),
                _fmt(std),
                f"{len(errors)}/{len(seeds) or '?'}",
                _fmt(paper.paper_error, 2),
                _fmt(paper.paper_std),
                "" if mean is None else f"{mean - paper.paper_error:+.3f}",
            ]
        )
    with (sweep_dir / "paper_table.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([COLUMNS, *rows])
    lines = [
        f"# Table 1 (MNIST test error, %): paper vs sweep {sweep_dir.name}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *["| " + " | ".join(row) + " |" for row in rows],
    ]
    if missing:
        lines += ["", "Missing from the means above:", *[f"- {line}" for line in missing]]
    (sweep_dir / "paper_table.md").write_text("\n".join(lines) + "\n")
    _plot(measured).save(sweep_dir / "paper_table.png")
    return {"rows": rows, "missing": missing, "errors": measured}


def _plot(measured: dict[str, list[float]]):
    labels = [row.key for row in PAPER_TABLE_1]
    series = {
        "paper": [row.paper_error for row in PAPER_TABLE_1],
        "this project (mean)": [statistics.fmean(measured[k]) if measured[k] else None for k in labels],
    }
    return charts.series_chart(labels, series, "Table 1: MNIST test error", "row", "test error %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path, help="the experiment=table1 multirun folder")
    args = parser.parse_args(argv)
    if not any(args.sweep_dir.glob("*/.hydra/overrides.yaml")):
        raise SystemExit(f"{args.sweep_dir}: no job folders (*/.hydra/overrides.yaml): not a multirun folder")
    result = paper_table(args.sweep_dir)
    print((args.sweep_dir / "paper_table.md").read_text())
    for name in ("paper_table.md", "paper_table.csv", "paper_table.png"):
        print(args.sweep_dir / name)
    if result["missing"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
