"""The workarounds: the libraries' routine notices stay off the console (everything else they say still
shows); a run resumed in its folder keeps the CSV metrics of the steps it continues."""

import logging
import warnings
from types import SimpleNamespace

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from capsnet.callbacks.model_checkpoint_across_resumes import ModelCheckpointAcrossResumes
from capsnet.run.workarounds import csv_metrics_deleted_by_a_resumed_run, notices_nobody_can_act_on


def test_routine_notices_are_dropped_and_other_messages_kept():
    notices_nobody_can_act_on()
    notices_nobody_can_act_on()  # every task calls it: the filters are not stacked
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    loggers = [
        logging.getLogger(name)
        for name in ("lightning.pytorch.utilities.rank_zero", "torch.utils.cpp_extension")
    ]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        loggers[0].warning(
            "\U0001f4a1 Tip: For seamless cloud logging and experiment tracking, try installing ..."
        )
        loggers[0].warning("Trainer already configured with model summary callbacks: [...]. Skipping ...")
        loggers[0].warning("GPU available: False, used: False")
        loggers[1].warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
        loggers[1].warning("Emitting ninja build file ...")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert seen == ["GPU available: False, used: False", "Emitting ninja build file ..."]
    assert sum(len(logger.filters) for logger in loggers) == 2

    missing = "Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be"
    missing += " provided during `Trainer` instantiation. Please add the following callbacks: {}."
    old_keys = [ModelCheckpoint(monitor=m).state_key for m in (None, "val/acc")]  # found as the legacy keys
    emitted = [
        ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(...)`", FutureWarning),
        ("Precision bf16-mixed is not supported by the model summary. Estimated ...", UserWarning),
        (missing.format(old_keys), UserWarning),
        (missing.format(old_keys[:1]), UserWarning),
        ("The dataloader does not have many workers", UserWarning),
        ("`isinstance(treespec, LeafSpec)` is deprecated", UserWarning),  # another category: kept
        (missing.format(["RandomStateCheckpoint"]), UserWarning),  # a state this run cannot load: kept
        (missing.format([ModelCheckpointAcrossResumes(filename="last").state_key]), UserWarning),  # kept
    ]
    with warnings.catch_warnings(record=True) as caught:
        for message, category in emitted:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in caught] == [message for message, _ in emitted[4:]]


def _metrics_file(run_dir) -> tuple[CSVLogger, object]:
    logger = CSVLogger(run_dir, name="csv", version="")
    path = run_dir / "csv" / "metrics.csv"
    path.parent.mkdir(parents=True)
    rows = [f"0,{step},{step / 10}" for step in range(6)]
    path.write_text("epoch,step,train/total_loss\n" + "\n".join(rows) + "\n0,")  # the last cut short
    return logger, path


def test_a_run_resumed_in_its_folder_keeps_the_rows_of_the_steps_its_checkpoint_holds(tmp_path):
    logger, path = _metrics_file(tmp_path)
    one_process = SimpleNamespace(is_global_zero=True)
    checkpoint = str(tmp_path / "checkpoints" / "last.ckpt")
    csv_metrics_deleted_by_a_resumed_run(one_process, [logger], checkpoint, {"global_step": 3})
    assert path.read_text().splitlines() == ["epoch,step,train/total_loss", "0,0,0.0", "0,1,0.1", "0,2,0.2"]
    logger.log_metrics({"train/total_loss": 0.25, "train/acc": 0.5}, step=3)  # a new column too
    logger.save()
    assert path.read_text().splitlines()[-2:] == ["0,2,,0.2", ",3,0.5,0.25"]


def test_a_checkpoint_of_another_folder_leaves_lightnings_behaviour(tmp_path):
    logger, path = _metrics_file(tmp_path / "run")
    one_process = SimpleNamespace(is_global_zero=True)
    checkpoint = str(tmp_path / "other" / "checkpoints" / "last.ckpt")
    csv_metrics_deleted_by_a_resumed_run(one_process, [logger], checkpoint, {"global_step": 3})
    assert len(path.read_text().splitlines()) == 8  # not touched; the logger deletes it when it starts
