"""Where Lightning, run inside Hydra, needs help: each function is named after what it works around."""

import csv
import io
import logging
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig

from capsnet.ops.hydra_runtime import in_multirun
from capsnet.ops.result_files import write_text_atomically

log = logging.getLogger(__name__)


def lightning_messages_printed_twice() -> None:
    """Leave Lightning's messages to the handlers Hydra set up, so that each is printed once.

    ``import lightning`` gives the ``lightning`` logger a console handler of its own (lines like
    ``INFO: GPU available: False``) and lets its messages go on to the root logger, where Hydra's
    console and file handlers print them again with time and source. Where the root logger has
    handlers (Hydra's, or any the caller set up), Lightning's own is removed.
    """
    if not logging.getLogger().handlers:  # no logging set up: Lightning's handler is all there is
        return
    lightning_logger = logging.getLogger("lightning")
    for handler in [h for h in lightning_logger.handlers if type(h) is logging.StreamHandler]:
        lightning_logger.removeHandler(handler)


# Lines the libraries print in every run that say nothing about the run and ask nothing a user can do:
# (logger, how the message begins) and (warning category, a regular expression its message matches).
NOTICES = [
    ("lightning.pytorch.utilities.rank_zero", "\U0001f4a1 Tip: "),  # to install another logger
    ("lightning.pytorch.utilities.rank_zero", "Trainer already configured with model summary callbacks"),
    ("torch.utils.cpp_extension", "No CUDA runtime is found"),  # torch.compile on a CPU, with a CUDA build
    # Saving (not loading) a checkpoint by trainer.save_checkpoint: the whole state, as the interrupt wants
    ("lightning.pytorch.trainer.connectors.checkpoint_connector", "`weights_only` was not set"),
]
WARNINGS = [
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),  # Lightning's call of a torch API
    (UserWarning, r"Precision \S+ is not supported by the model summary"),  # the fp32 size it shows is right
    # A checkpoint saved before ModelCheckpointAcrossResumes' key named the file: its states still load
    (
        UserWarning,
        r"Be aware that when using `ckpt_path`, .* callbacks: \[(\"ModelCheckpoint\{[^\"{}]*\}\"(, )?)+\]\.$",
    ),
]


class _DropNotices(logging.Filter):
    def __init__(self, beginnings: tuple[str, ...]):
        super().__init__()
        self.beginnings = beginnings

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.beginnings)


def notices_nobody_can_act_on() -> None:
    """Keep the libraries' routine notices (``NOTICES``, ``WARNINGS``) off the console and out of the log,
    so that what a run prints is about the run."""
    for category, pattern in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    for name in {name for name, _ in NOTICES}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices(tuple(text for n, text in NOTICES if n == name)))


def ddp_relaunching_the_whole_sweep(cfg: DictConfig) -> dict[str, str]:
    """Trainer arguments that keep ``ddp`` in a local Hydra multirun from starting sweeps of its own.

    Lightning's ``ddp`` starts the other ranks by running the script again with the same command
    line (plus ``hydra.run.dir``): inside a multirun, that command is the whole sweep (``-m ...``),
    so every rank would start a sweep of its own in new output folders. ``ddp_spawn`` starts the
    ranks from inside the job instead. Under SLURM or torchrun the ranks already exist and ``ddp``
    starts nothing, so it is kept.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    launched_outside = SLURMEnvironment.detect() or TorchElasticEnvironment.detect()
    if in_multirun() and cfg.trainer.get("strategy") == "ddp" and not launched_outside:
        log.info("trainer.strategy=ddp in a multirun: using ddp_spawn (see capsnet.run.workarounds)")
        return {"strategy": "ddp_spawn"}
    return {}


def csv_metrics_deleted_by_a_resumed_run(
    trainer: L.Trainer, loggers: list[Logger], ckpt_path: str | None, checkpoint: dict | None
) -> None:
    """Keep what a run resumed in its own folder logged up to the checkpoint it continues from.

    Lightning's CSV logger deletes the metrics.csv it finds when it starts, so a job requeued into its
    own folder (``ckpt_path=auto``) would end with only what it logged after the resume. The rows of the
    steps the checkpoint holds are written back (Lightning logs step n's row as ``step`` n - 1, and an
    epoch's row as its last step's); the resumed run logs the later ones again, and a row a kill cut
    short is dropped. Called before anything is logged.
    """
    if checkpoint is None or not trainer.is_global_zero:
        return
    for logger in loggers:
        if not isinstance(logger, CSVLogger) or not _inside(ckpt_path, logger.save_dir):
            continue  # a checkpoint of another folder: this folder's file is not that run's
        metrics_file = Path(logger.log_dir) / "metrics.csv"
        if not metrics_file.is_file():
            continue
        with open(metrics_file, newline="") as file:
            reader = csv.DictReader(file)
            rows = [row for row in reader if _step(row) < checkpoint["global_step"]]
            header = list(reader.fieldnames or [])
        kept = io.StringIO(newline="")
        writer = csv.DictWriter(kept, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        logger.experiment.metrics_keys[:] = header  # creating the writer deletes the file
        write_text_atomically(metrics_file, kept.getvalue())
        log.info(
            "%s: kept the %d rows of the %d steps before the resume",
            metrics_file,
            len(rows),
            checkpoint["global_step"],
        )


def _inside(path: str, folder: str) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def _step(row: dict) -> float:
    """The row's step; NaN (kept by no comparison) for a row without one."""
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


def csv_header_written_by_a_spawned_process(trainer: L.Trainer, loggers: list[Logger]) -> None:
    """Tell a CSV logger which columns its metrics file already has, before testing adds new ones.

    Under ``ddp_spawn`` the file was written by a spawned process, so this process's writer does not
    know its columns; when the test metrics add new ones, Lightning rewrites the file with only the
    columns it knows, and fails on the rows written before (``dict contains fields not in fieldnames``).
    """
    if not trainer.is_global_zero:  # other ranks' loggers are placeholders
        return
    for logger in loggers:
        if isinstance(logger, CSVLogger) and Path(logger.experiment.metrics_file_path).is_file():
            with open(logger.experiment.metrics_file_path, newline="") as file:
                header = next(csv.reader(file), [])
            known = logger.experiment.metrics_keys
            known.extend(key for key in header if key not in known)
            known.sort()
