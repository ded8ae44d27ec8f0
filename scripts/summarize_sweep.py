"""One table and one picture of a Hydra multirun (a grid sweep or an Optuna search).

    python scripts/summarize_sweep.py logs/train/multiruns/<time> [--metric val/acc_best]

Reads every job folder's overrides (``.hydra/overrides.yaml``), outcome (``job.json``) and final
metrics (``metrics.json``) and writes, into the multirun folder:
- ``summary.csv``: one row per job: number, status, each swept parameter, the metric, test accuracy,
  the error of a failed job;
- ``summary.md``: the same as a Markdown table, best first, then the jobs that failed or have no
  results yet (still running, or killed) and those that never started;
- ``summary.png``: the metric against each swept parameter, one line per combination of the others;
- when the sweep varies ``seed`` (``-m routing=dynamic,leaky seed=1,2,3``), ``summary_over_seeds.csv``
  and a second table in ``summary.md``: one row per variant (the other swept parameters), the seeds
  finished out of its jobs, the mean and standard deviation (n - 1) of the metric and of the test error.
The metric defaults to the sweep's ``optimized_metric``, else ``val/acc_best``, or ``test/acc`` where
no job validated (the paper's protocol). Whether two variants' difference is more than noise:
``scripts/compare_runs.py A1,A2,A3 B1,B2,B3`` on their runs, paired by seed.
"""

import argparse
import csv
import math
import sys
from pathlib import Path

from capsnet.run.sweep_results import (
    expected_jobs,
    mean_and_std,
    parse_value,
    read_jobs,
    read_multirun_config,
)
from capsnet.viz import charts


def _sort_key(text: str):
    value = parse_value(text)
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(text))


def plot(jobs: list[dict], swept: list[str], metric: str) -> "charts.Image.Image | None":
    panels = []
    done = [job for job in jobs if metric in job["metrics"]]
    for param in swept:
        others = [p for p in swept if p != param]
        x_labels = sorted({job["params"].get(param, "") for job in done}, key=_sort_key)
        series: dict[str, list[float | None]] = {}
        for job in done:
            name = ",".join(f"{p}={job['params'].get(p, '')}" for p in others) or metric
            points = series.setdefault(name, [None] * len(x_labels))
            points[x_labels.index(job["params"].get(param, ""))] = job["metrics"][metric]
        if series:
            panels.append(charts.series_chart(x_labels, series, f"{metric} against {param}", param, metric))
    return charts.stack_vertically(panels) if panels else None


def summarize(multirun_dir: Path, metric: str | None = None) -> dict:
    multirun_config = read_multirun_config(multirun_dir)
    jobs = read_jobs(multirun_dir)
    if not jobs:
        raise SystemExit(f"{multirun_dir}: no job folders (*/.hydra/overrides.yaml): not a multirun folder")
    metric = metric or multirun_config.get("optimized_metric") or default_metric(jobs)
    test_column = ["test/acc"] if metric != "test/acc" else []
    keys = sorted({k for job in jobs for k in job["params"]})
    swept = [k for k in keys if len({job["params"].get(k) for job in jobs}) > 1]
    expected = expected_jobs(multirun_config)
    present = {job["job"] for job in jobs}
    never_started = [str(n) for n in range(expected or 0) if str(n) not in present]

    ranked = sorted(jobs, key=lambda j: -j["metrics"][metric] if metric in j["metrics"] else math.inf)
    columns = ["job", "status", *swept, metric, *test_column, "error"]
    rows = [
        [
            job["job"],
            job["status"],
            *(job["params"].get(k, "") for k in swept),
            job["metrics"].get(metric, ""),
            *(job["metrics"].get(name, "") for name in test_column),
            job["error"],
        ]
        for job in ranked
    ]
    with (multirun_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)

    lines = [f"# Sweep {multirun_dir.name}: {metric}", "", "| " + " | ".join(columns[:-1]) + " |"]
    lines.append("|" + "---|" * (len(columns) - 1))
    lines += ["| " + " | ".join(_cell(v) for v in row[:-1]) + " |" for row in rows]
    failed = [job for job in jobs if job["status"] in ("failed", "unreadable")]
    unfinished = [job for job in jobs if job["status"] == "no results"]
    if failed:
        lines += ["", "Failed jobs:"] + [
            f"- job {j['job']} ({_overrides(j, swept)}): {j['error']}" for j in failed
        ]
    if unfinished:
        lines += ["", "Jobs without results (running or killed):"]
        lines += [f"- job {j['job']} ({_overrides(j, swept)})" for j in unfinished]
    if never_started:
        lines += ["", f"Jobs never started: {', '.join(never_started)} (of {expected} expected)"]
    over_seeds = (
        summarize_over_seeds(jobs, [k for k in swept if k != "seed"], metric) if "seed" in swept else []
    )
    if over_seeds:
        write_over_seeds(over_seeds, multirun_dir / "summary_over_seeds.csv", lines)
    (multirun_dir / "summary.md").write_text("\n".join(lines) + "\n")

    picture = plot(jobs, swept, metric)
    if picture is not None:
        picture.save(multirun_dir / "summary.png")
    return {
        "metric": metric,
        "jobs": len(jobs),
        "failed": [j["job"] for j in failed],
        "unfinished": [j["job"] for j in unfinished],
        "never_started": never_started,
        "best": ranked[0] if ranked and metric in ranked[0]["metrics"] else None,
        "over_seeds": over_seeds,
    }


def default_metric(jobs: list[dict]) -> str:
    """``val/acc_best`` where the jobs validated; ``test/acc`` where none did (the paper's protocol,
    ``data.val_size=0``: the last weights tested, nothing else to report)."""
    return "val/acc_best" if any("val/acc_best" in job["metrics"] for job in jobs) else "test/acc"


def summarize_over_seeds(jobs: list[dict], variant_keys: list[str], metric: str) -> list[dict]:
    """One dict a variant (a combination of ``variant_keys``' values), best mean first: its ``params``,
    ``seeds`` (those finished), ``jobs``, and the mean and standard deviation (None below two seeds)
    of ``metric`` and of the test error in % (from ``test/acc``)."""
    variants: dict[tuple, list[dict]] = {}
    for job in jobs:
        variants.setdefault(tuple(job["params"].get(k, "") for k in variant_keys), []).append(job)
    rows = []
    for values, members in variants.items():
        finished = [job for job in members if metric in job["metrics"]]
        errors = [100 * (1 - job["metrics"]["test/acc"]) for job in finished if "test/acc" in job["metrics"]]
        row = {
            "params": dict(zip(variant_keys, values, strict=True)),
            "seeds": [job["params"].get("seed", "") for job in finished],
            "jobs": len(members),
            metric: mean_and_std([job["metrics"][metric] for job in finished]),
            "test error %": mean_and_std(errors),
        }
        if metric == "test/acc":  # the test error says it
            del row[metric]
        rows.append(row)
    return sorted(rows, key=lambda row: _best_first(row, metric))


def _best_first(row: dict, metric: str) -> float:
    mean = row[metric][0] if metric in row else row["test error %"][0]
    if mean is None:
        return math.inf
    return -mean if metric in row else mean


def write_over_seeds(rows: list[dict], csv_path: Path, lines: list[str]) -> None:
    """``rows`` as a CSV file, and as a Markdown table appended to ``lines``."""
    keys = list(rows[0]["params"])
    measured = [name for name in rows[0] if name not in ("params", "seeds", "jobs")]
    columns = [*keys, "seeds", *(f"{name} {part}" for name in measured for part in ("mean", "std"))]
    table = [
        [
            *row["params"].values(),
            f"{len(row['seeds'])}/{row['jobs']}",
            *(value for name in measured for value in row[name]),
        ]
        for row in rows
    ]
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([["" if value is None else value for value in row] for row in table])
    lines += ["", "## Over seeds", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else _cell(v) for v in row) + " |" for row in table]


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _overrides(job: dict, keys: list[str]) -> str:
    return ",".join(f"{k}={job['params'].get(k, '')}" for k in keys)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("multirun_dir", type=Path)
    parser.add_argument("--metric", default=None, help="default: the sweep's optimized_metric")
    args = parser.parse_args(argv)
    result = summarize(args.multirun_dir, args.metric)
    print((args.multirun_dir / "summary.md").read_text())
    for name in ("summary.csv", "summary_over_seeds.csv", "summary.md", "summary.png"):
        if (args.multirun_dir / name).exists():
            print(args.multirun_dir / name)
    if result["failed"] or result["unfinished"] or result["never_started"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
