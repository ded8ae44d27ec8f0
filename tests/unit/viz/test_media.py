"""The media publisher: pictures and histograms to TensorBoard, CSV folders and PNG files; rank zero only."""

from types import SimpleNamespace

import torch
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from PIL import Image

from capsnet.viz.media import MediaPublisher


def _trainer(loggers, step=7):
    return SimpleNamespace(loggers=loggers, is_global_zero=True, global_step=step)


def test_publisher_writes_tensorboard_events_and_png_files(tmp_path):
    tensorboard = TensorBoardLogger(tmp_path / "tb", name=None, version="")
    csv = CSVLogger(tmp_path, name="csv", version="")
    publisher = MediaPublisher(png_dir=tmp_path / "png")
    picture = Image.new("RGB", (30, 20), "red")
    publisher.image(_trainer([tensorboard, csv]), "val/reconstructions", picture)
    publisher.histogram(_trainer([tensorboard, csv]), "test/lengths", {"a": torch.rand(100)}, "length")
    tensorboard.experiment.flush()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "histograms": 0}).Reload()
    assert events.Tags()["images"] == ["val/reconstructions"]
    assert events.Images("val/reconstructions")[0].step == 7
    assert events.Tags()["histograms"] == ["test/lengths/a"]
    assert Image.open(tmp_path / "csv" / "media" / "val_reconstructions_step000007.png").size == (30, 20)
    assert Image.open(tmp_path / "png" / "val_reconstructions.png").size == (30, 20)
    assert (tmp_path / "png" / "test_lengths.png").is_file()


def test_publisher_is_silent_off_rank_zero(tmp_path):
    publisher = MediaPublisher(png_dir=tmp_path)
    trainer = SimpleNamespace(loggers=[CSVLogger(tmp_path)], is_global_zero=False, global_step=0)
    publisher.image(trainer, "x", Image.new("RGB", (4, 4)))
    assert publisher.written == [] and not list(tmp_path.rglob("*.png"))


class MetricsOnly(Logger):
    """A logger with no place for pictures (no directory, no media API)."""

    name, version = "metrics-only", "0"

    def log_metrics(self, metrics, step=None) -> None: ...

    def log_hyperparams(self, params, *args, **kwargs) -> None: ...


def test_a_logger_that_cannot_take_pictures_is_told_once(caplog):
    publisher = MediaPublisher()
    trainer = _trainer([MetricsOnly()])
    publisher.image(trainer, "val/reconstructions", Image.new("RGB", (4, 4)))
    publisher.confusion_matrix(trainer, "test/confusion_matrix", torch.eye(3), "Confusion")
    publisher.table(trainer, "test/examples", ["label"], [[1]])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["MetricsOnly takes no pictures, charts or tables: they are not logged there"]
