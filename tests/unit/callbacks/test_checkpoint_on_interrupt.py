"""CheckpointOnInterrupt acts on SIGTERM only."""

import lightning as L

from capsnet.callbacks.checkpoint_on_interrupt import CheckpointOnInterrupt


def test_interrupt_checkpoint_ignores_other_exceptions(tmp_path):
    callback = CheckpointOnInterrupt(dirpath=str(tmp_path))
    trainer = L.Trainer(logger=False)
    callback.on_exception(trainer, None, RuntimeError("not an interruption"))
    assert not list(tmp_path.iterdir())
