"""Pictures and histograms to every logger of a run, each in the form that logger shows best.

- W&B: ``wandb.Image`` / ``wandb.Histogram`` at the trainer's global step;
- TensorBoard: ``add_image`` / ``add_histogram``;
- any other logger with a directory (CSV): PNG files in ``<log_dir>/media``; a histogram is drawn;
- and, when given, a plain folder: PNG files named after the key (``scripts/visualize.py``).

Only global rank 0 publishes (Lightning's loggers are rank-zero only too).
"""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

from capsnet.viz import charts


def _file_name(key: str, step: int | None) -> str:
    stem = key.replace("/", "_")
    return f"{stem}.png" if step is None else f"{stem}_step{step:06d}.png"


def _logger_dir(logger) -> Path | None:
    directory = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
    return Path(directory) if directory else None


class MediaPublisher:
    """Sends a picture or a histogram to the trainer's loggers and, if ``png_dir`` is set, to PNGs there."""

    def __init__(self, png_dir: str | Path | None = None):
        self.png_dir = Path(png_dir) if png_dir else None
        self.written: list[Path] = []  # PNG files written, in order

    def _save(self, directory: Path, key: str, image: Image.Image, step: int | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _file_name(key, step)
        image.save(path)
        self.written.append(path)

    def image(self, trainer: L.Trainer | None, key: str, image: Image.Image) -> None:
        if trainer is not None and not trainer.is_global_zero:
            return
        step = trainer.global_step if trainer is not None else None
        for logger in trainer.loggers if trainer is not None else []:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, np.asarray(image.convert("RGB")), step, dataformats="HWC")
            elif (directory := _logger_dir(logger)) is not None:
                self._save(directory / "media", key, image, step)
        if self.png_dir is not None:
            self._save(self.png_dir, key, image, None)

    def histogram(
        self, trainer: L.Trainer | None, key: str, series: dict[str, torch.Tensor], xlabel: str
    ) -> None:
        """One histogram per series; loggers without histograms (and PNGs) get them drawn overlaid."""
        if trainer is not None and not trainer.is_global_zero:
            return
        step = trainer.global_step if trainer is not None else None
        drawn = None
        for logger in trainer.loggers if trainer is not None else []:
            if isinstance(logger, WandbLogger):
                import wandb

                histograms = {
                    f"{key}/{name}": wandb.Histogram(v.float().cpu().numpy()) for name, v in series.items()
                }
                logger.experiment.log({**histograms, "trainer/global_step": step})
            elif isinstance(logger, TensorBoardLogger):
                for name, values in series.items():
                    logger.experiment.add_histogram(f"{key}/{name}", values.float().cpu(), step)
            elif (directory := _logger_dir(logger)) is not None:
                drawn = drawn or charts.histogram_chart(series, key, xlabel)
                self._save(directory / "media", key, drawn, step)
        if self.png_dir is not None:
            self._save(self.png_dir, key, drawn or charts.histogram_chart(series, key, xlabel), None)
