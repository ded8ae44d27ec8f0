"""A run resumed in a new folder keeps ranking its checkpoints against those of the folders before."""

import warnings
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.call import _call_callbacks_load_state_dict

from capsnet.callbacks.model_checkpoint_across_resumes import ModelCheckpointAcrossResumes


def _saved_state(folder, scores: dict[str, float], mode: str = "max") -> dict:
    """What ``ModelCheckpoint(dirpath=folder)`` saved after ranking ``scores`` ({file name: val/acc})."""
    saved = ModelCheckpoint(dirpath=folder, monitor="val/acc", mode=mode, save_top_k=2)
    saved.best_k_models = {str(folder / name): torch.tensor(score) for name, score in scores.items()}
    for path in saved.best_k_models:
        open(path, "wb").close()
    pick = max if mode == "max" else min
    saved.best_model_path = pick(saved.best_k_models, key=saved.best_k_models.get)
    saved.best_model_score = saved.best_k_models[saved.best_model_path]
    return saved.state_dict()


@pytest.mark.parametrize("mode", ["max", "min"])
def test_the_ranking_goes_on_in_a_new_folder(tmp_path, mode):
    before, after = tmp_path / "first", tmp_path / "resumed"
    before.mkdir()
    state = _saved_state(
        before, {"epoch_000.ckpt": 0.97, "epoch_001.ckpt": 0.99, "epoch_002.ckpt": 0.98}, mode
    )
    (before / "epoch_001.ckpt").unlink()  # a checkpoint deleted since: not ranked against
    callback = ModelCheckpointAcrossResumes(dirpath=after, monitor="val/acc", mode=mode, save_top_k=2)
    callback.load_state_dict(state)

    best, kth = (
        ("epoch_002.ckpt", "epoch_000.ckpt") if mode == "max" else ("epoch_000.ckpt", "epoch_002.ckpt")
    )
    assert callback.dirpath == str(after)
    assert callback.best_model_path == str(before / best)
    assert callback.kth_best_model_path == str(before / kth)
    assert sorted(callback.best_k_models) == [str(before / "epoch_000.ckpt"), str(before / "epoch_002.ckpt")]
    assert float(callback.best_model_score) == pytest.approx(0.98 if mode == "max" else 0.97)
    one_process = SimpleNamespace(strategy=SimpleNamespace(reduce_boolean_decision=bool))
    worse, better = (0.96, 0.975) if mode == "max" else (0.985, 0.975)  # than the second of the two kept
    assert not callback.check_monitor_top_k(one_process, torch.tensor(worse))
    assert callback.check_monitor_top_k(one_process, torch.tensor(better))


def test_with_none_of_its_checkpoints_left_the_ranking_starts_anew(tmp_path):
    before = tmp_path / "first"
    before.mkdir()
    state = _saved_state(before, {"epoch_000.ckpt": 0.97})
    (before / "epoch_000.ckpt").unlink()
    callback = ModelCheckpointAcrossResumes(dirpath=tmp_path / "resumed", monitor="val/acc", mode="max")
    with pytest.warns(UserWarning, match="dirpath has changed"):  # Lightning's own behaviour, and warning
        callback.load_state_dict(state)
    assert callback.best_k_models == {} and callback.best_model_score is None


def test_a_run_stopped_before_its_first_validation_resumes_without_a_warning(tmp_path):
    state = ModelCheckpoint(dirpath=tmp_path / "first", monitor="val/acc", mode="max").state_dict()
    callback = ModelCheckpointAcrossResumes(dirpath=tmp_path / "resumed", monitor="val/acc", mode="max")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Lightning's "dirpath has changed": nothing was ranked to lose
        callback.load_state_dict(state)
    assert callback.best_k_models == {} and callback.dirpath == str(tmp_path / "resumed")


def test_checkpoints_saved_by_lightnings_class_resume_into_it(tmp_path):
    arguments = {"dirpath": tmp_path, "monitor": "val/acc", "mode": "max"}
    saved = ModelCheckpoint(**arguments)
    saved.best_model_path = str(tmp_path / "epoch_003.ckpt")
    checkpoint = {"callbacks": {saved.state_key: saved.state_dict()}}
    callback = ModelCheckpointAcrossResumes(**arguments)
    _call_callbacks_load_state_dict(SimpleNamespace(callbacks=[callback]), checkpoint)  # as Lightning does
    assert callback.best_model_path == str(tmp_path / "epoch_003.ckpt")


def test_two_that_differ_only_in_what_they_save_keep_their_own_state(tmp_path):
    """The paper's protocol: no monitor for either; with the same mode and trigger, Lightning's keys are
    the same, and each instance would restore the state of whichever was saved last."""
    arguments = {"dirpath": tmp_path, "monitor": None, "mode": "min"}
    assert ModelCheckpoint(filename="last", **arguments).state_key == ModelCheckpoint(**arguments).state_key
    last, epochs = (
        ModelCheckpointAcrossResumes(filename=f, **arguments) for f in ("last", "epoch_{epoch:03d}")
    )
    assert last.state_key != epochs.state_key
    last.best_model_path, epochs.best_model_path = (
        str(tmp_path / "last.ckpt"),
        str(tmp_path / "epoch_000.ckpt"),
    )
    checkpoint = {"callbacks": {c.state_key: c.state_dict() for c in (epochs, last)}}
    restored = [ModelCheckpointAcrossResumes(filename=f, **arguments) for f in ("last", "epoch_{epoch:03d}")]
    _call_callbacks_load_state_dict(SimpleNamespace(callbacks=restored), checkpoint)
    assert [c.best_model_path for c in restored] == [
        str(tmp_path / "last.ckpt"),
        str(tmp_path / "epoch_000.ckpt"),
    ]
