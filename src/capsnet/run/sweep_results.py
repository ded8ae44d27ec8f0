"""The jobs of a Hydra multirun read back from their folders: overrides, outcome and final metrics
(what ``scripts/summarize_sweep.py`` and ``scripts/paper_table.py`` tabulate)."""

import json
import math
import statistics
from pathlib import Path

import yaml


def parse_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def mean_and_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean (None without values) and the standard deviation, n - 1 (None below two values)."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def expected_jobs(multirun_config: dict) -> int | None:
    """How many jobs the sweep launches: the grid's size, or Optuna's trial count."""
    hydra_cfg = multirun_config.get("hydra", {})
    sweeper = hydra_cfg.get("sweeper", {}).get("_target_", "")
    if "optuna" in sweeper.lower():
        return hydra_cfg["sweeper"].get("n_trials")
    if "BasicSweeper" not in sweeper:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # The sweeper's own params (experiment=table1's, say), then the command line's, which win.
    params = hydra_cfg.get("sweeper", {}).get("params") or {}
    parser = OverridesParser.create()
    overrides = parser.parse_overrides([f"{key}={value}" for key, value in params.items()])
    overrides += parser.parse_overrides(hydra_cfg.get("overrides", {}).get("task", []))
    by_key = {override.key_or_group: override for override in overrides}
    return math.prod(
        len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in by_key.values()
    )


def read_multirun_config(multirun_dir: Path) -> dict:
    """The sweep's ``multirun.yaml`` (Hydra writes it at the start), or {} when it is missing."""
    multirun_file = multirun_dir / "multirun.yaml"
    return yaml.safe_load(multirun_file.read_text()) if multirun_file.exists() else {}


def read_jobs(multirun_dir: Path) -> list[dict]:
    """One dict a job folder, in job order: ``job`` (its number), ``params`` (its overrides),
    ``status`` (completed, failed, interrupted, requeued, "no results", or "unreadable" when its
    ``job.json`` or ``metrics.json`` cannot be read: ``error`` names the file), ``error``, ``metrics``."""
    jobs = []
    for overrides_file in sorted(multirun_dir.glob("*/.hydra/overrides.yaml"), key=lambda p: _job_number(p)):
        job_dir = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        record, metrics = _read_json(job_dir / "job.json"), _read_json(job_dir / "metrics.json")
        unreadable = [
            str(job_dir / name)
            for name, value in (("job.json", record), ("metrics.json", metrics))
            if value is None
        ]
        jobs.append(
            {
                "job": job_dir.name,
                "params": dict(o.split("=", 1) for o in overrides if "=" in o and not o.startswith("hydra.")),
                "status": "unreadable" if unreadable else (record or {}).get("status", "no results"),
                "error": f"unreadable results: {', '.join(unreadable)}"
                if unreadable
                else (record or {}).get("error", ""),
                "metrics": metrics or {},
            }
        )
    return jobs


def _read_json(path: Path) -> dict | None:
    """The object a JSON file holds: {} when there is no file, None when it cannot be read (truncated)."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _job_number(path: Path):
    name = path.parent.parent.name
    return (0, int(name)) if name.isdigit() else (1, name)
