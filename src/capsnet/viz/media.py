"""Pictures, histograms, charts and tables to every logger of a run, each in the form that logger shows best.

- W&B: ``wandb.Image`` / ``wandb.Histogram``; the confusion matrix and line charts as W&B's own
  interactive charts; tables as ``wandb.Table`` (images in their cells);
- TensorBoard: ``add_image`` / ``add_histogram``; charts drawn as images;
- MLflow: image artifacts (``log_image`` with the key and step), histograms and charts drawn; tables as
  CSV artifacts (without their images);
- any other logger with a directory (CSV): PNG files in ``<log_dir>/media``, histograms and charts drawn,
  tables as CSV files (without their images);
- and, when given, a plain folder: PNG files named after the key (``src/visualize.py``).
A logger that can take none of these gets a one-line warning, once.

Only global rank 0 publishes (Lightning's loggers are rank-zero only too).
"""

import csv
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from PIL import Image

from capsnet.viz import charts

log = logging.getLogger(__name__)


def _file_name(key: str, step: int | None, suffix: str = ".png") -> str:
    stem = key.replace("/", "_")
    return f"{stem}{suffix}" if step is None else f"{stem}_step{step:06d}{suffix}"


def _wandb():
    """W&B, imported only when a W&B logger is there to take its objects."""
    import wandb

    return wandb


def _logger_dir(logger) -> Path | None:
    directory = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
    return Path(directory) if directory else None


class MediaPublisher:
    """Sends a picture, histogram, chart or table to the trainer's loggers and, if ``png_dir`` is set,
    pictures to PNGs there."""

    def __init__(self, png_dir: str | Path | None = None):
        self.png_dir = Path(png_dir) if png_dir else None
        self.written: list[Path] = []  # PNG files written, in order
        self._warned: set[type] = set()  # loggers told once that they get no pictures

    def _cannot_take(self, logger) -> None:
        if type(logger) not in self._warned:
            self._warned.add(type(logger))
            log.warning(
                "%s takes no pictures, charts or tables: they are not logged there", type(logger).__name__
            )

    def _save(self, directory: Path, key: str, image: Image.Image, step: int | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _file_name(key, step)
        image.save(path)
        self.written.append(path)

    def _publish(
        self,
        trainer: L.Trainer | None,
        key: str,
        to_wandb: Callable[[], dict],
        draw: Callable[[], Image.Image],
        to_tensorboard: Callable | None = None,
    ) -> None:
        """``to_wandb()``'s values to W&B; ``to_tensorboard(experiment, step)`` (else the drawn image)
        to TensorBoard; the drawn image (drawn once, when needed) to MLflow, logger folders and PNGs."""
        if trainer is not None and not trainer.is_global_zero:
            return
        step = trainer.global_step if trainer is not None else None
        drawn = None
        for logger in trainer.loggers if trainer is not None else []:
            if isinstance(logger, WandbLogger):
                logger.experiment.log({**to_wandb(), "trainer/global_step": step})
            elif isinstance(logger, TensorBoardLogger) and to_tensorboard is not None:
                to_tensorboard(logger.experiment, step)
            elif isinstance(logger, TensorBoardLogger):
                drawn = drawn or draw()
                logger.experiment.add_image(key, np.asarray(drawn.convert("RGB")), step, dataformats="HWC")
            elif isinstance(logger, MLFlowLogger):
                drawn = drawn or draw()
                logger.experiment.log_image(logger.run_id, drawn, key=key, step=step)
            elif (directory := _logger_dir(logger)) is not None:
                drawn = drawn or draw()
                self._save(directory / "media", key, drawn, step)
            else:
                self._cannot_take(logger)
        if self.png_dir is not None:
            self._save(self.png_dir, key, drawn or draw(), None)

    def image(self, trainer: L.Trainer | None, key: str, image: Image.Image) -> None:
        self._publish(trainer, key, lambda: {key: [_wandb().Image(image)]}, lambda: image)

    def histogram(
        self, trainer: L.Trainer | None, key: str, series: dict[str, torch.Tensor], xlabel: str
    ) -> None:
        """One histogram per series; loggers without histograms (and PNGs) get them drawn overlaid."""

        def to_tensorboard(experiment, step: int | None) -> None:
            for name, values in series.items():
                experiment.add_histogram(f"{key}/{name}", values.float().cpu(), step)

        self._publish(
            trainer,
            key,
            lambda: {
                f"{key}/{name}": _wandb().Histogram(v.float().cpu().numpy()) for name, v in series.items()
            },
            lambda: charts.histogram_chart(series, key, xlabel),
            to_tensorboard,
        )

    def confusion_matrix(self, trainer: L.Trainer | None, key: str, counts: torch.Tensor, title: str) -> None:
        """``counts[true, predicted]``: W&B's interactive confusion matrix; a heatmap elsewhere."""

        def to_wandb() -> dict:
            wandb = _wandb()
            names = [str(k) for k in range(len(counts))]
            rows = [
                [names[t], names[p], int(counts[t, p])] for t in range(len(names)) for p in range(len(names))
            ]
            table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=rows)
            fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
            chart = wandb.plot_table("wandb/confusion_matrix/v1", table, fields, {"title": title})
            return {key: chart}

        self._publish(trainer, key, to_wandb, lambda: charts.heatmap(counts, title, "predicted", "true"))

    def line(
        self, trainer: L.Trainer | None, key: str, values: Sequence[float], title: str, x: str, y: str
    ) -> None:
        """``values`` against 1, 2, ...: a W&B line chart; drawn elsewhere."""

        def to_wandb() -> dict:
            wandb = _wandb()
            table = wandb.Table(columns=[x, y], data=[[i, v] for i, v in enumerate(values, start=1)])
            return {key: wandb.plot.line(table, x, y, title=title)}

        self._publish(trainer, key, to_wandb, lambda: charts.line_chart(list(values), title, x, y))

    def table(self, trainer: L.Trainer | None, key: str, columns: list[str], rows: list[list]) -> None:
        """A table whose cells may hold images: a ``wandb.Table`` for W&B, CSV (without the images) for
        MLflow and loggers with a directory; TensorBoard has no tables."""
        if trainer is None or not trainer.is_global_zero:
            return
        step = trainer.global_step
        kept = [i for i, c in enumerate(rows[0] if rows else []) if not isinstance(c, Image.Image)]
        text = io.StringIO()
        csv.writer(text).writerows([[columns[i] for i in kept], *[[row[i] for i in kept] for row in rows]])
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                wandb = _wandb()
                cells = [[wandb.Image(c) if isinstance(c, Image.Image) else c for c in row] for row in rows]
                table = wandb.Table(columns=columns, data=cells)
                logger.experiment.log({key: table, "trainer/global_step": step})
            elif isinstance(logger, MLFlowLogger):
                logger.experiment.log_text(
                    logger.run_id, text.getvalue(), f"tables/{_file_name(key, step, '.csv')}"
                )
            elif isinstance(logger, TensorBoardLogger):
                continue  # TensorBoard has no tables; it has the pictures
            elif (directory := _logger_dir(logger)) is not None:
                (directory / "media").mkdir(parents=True, exist_ok=True)
                (directory / "media" / _file_name(key, step, ".csv")).write_text(text.getvalue())
            else:
                self._cannot_take(logger)
