"""A record of every Hydra job's outcome, beside its outputs, so that no sweep result is lost.

``RecordJob`` is a Hydra callback (``conf/hydra/default.yaml``): when a job ends, successfully or
not, it writes ``<job output dir>/job.json`` with the job's overrides, its status, the objective
it returned or the error it raised. A single run that ends with an exit code of its own (a bad config,
missing data, a non-finite loss, a full disk, an interruption) never reaches Hydra's end of job: the
entry point writes its record (``capsnet.run.entry``). The final metrics are in ``metrics.json`` beside it
(``capsnet.run.tasks``). ``scripts/summarize_sweep.py`` reads both.
"""

import json
import logging
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from capsnet.ops.hydra_runtime import hydra_config
from capsnet.ops.result_files import write_text_atomically

log = logging.getLogger(__name__)


class RecordJob(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        output_dir = Path(config.hydra.runtime.output_dir)
        record: dict[str, Any] = {
            "status": "completed" if job_return.status == JobStatus.COMPLETED else "failed",
            "overrides": list(job_return.overrides or []),
        }
        if job_return.status == JobStatus.COMPLETED:
            value = job_return._return_value  # the property would raise on failure; here it cannot
            record["objective"] = value if isinstance(value, int | float) else None
        else:
            error = job_return._return_value
            record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = "".join(traceback.format_exception(error))
        write_job_record(output_dir, record)


def write_job_record(output_dir: Path, record: dict[str, Any]) -> None:
    """``<output_dir>/job.json``: how the job ended."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output_dir / "job.json", json.dumps(record, indent=2) + "\n")


def already_completed(cfg: DictConfig) -> dict[str, float] | None:
    """With ``ckpt_path=auto``: the final metrics of this job when it already completed in its folder
    with the same overrides (a killed sweep run again into its folder), else None."""
    if cfg.get("ckpt_path") != "auto":
        return None
    output_dir = Path(cfg.paths.output_dir)
    hydra_cfg = hydra_config()
    overrides = list(hydra_cfg.overrides.task) if hydra_cfg is not None else []
    try:
        record = json.loads((output_dir / "job.json").read_text())
        metrics = json.loads((output_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if (
        record.get("status") != "completed"
        or record.get("overrides") != overrides
        or not isinstance(metrics, dict)
    ):
        return None
    log.info("ckpt_path=auto: this job completed before in %s; its metrics stand", output_dir)
    return metrics
