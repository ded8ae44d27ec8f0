"""A non-finite loss stops training before any checkpoint of the damaged weights."""

import lightning as L
import pytest
import torch

from capsnet.callbacks.stop_on_non_finite_loss import StopOnNonFiniteLoss
from capsnet.errors import NonFiniteLossError
from capsnet.nn.losses import LossTerms


class _LossTurnsNaN(L.LightningModule):
    """A one-weight model whose loss becomes NaN at its 4th step."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        loss = (self.weight * batch[0]).pow(2).mean()
        if self.global_step == 3:
            loss = loss * float("nan")
        self.last_loss_terms = LossTerms(loss.detach(), loss.detach(), torch.zeros(()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_good_checkpoints(tmp_path):
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(24, 1)), batch_size=4)
    every_step = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[StopOnNonFiniteLoss(check_every_n_steps=50), every_step],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at training step 4: total=nan") as error:
        trainer.fit(_LossTurnsNaN(), data)
    assert "model.optimizer.lr" in str(error.value) and "routing.detach_inner" in str(error.value)
    saved = sorted(int(p.stem.split("step=")[1]) for p in tmp_path.glob("*.ckpt"))
    assert saved == [1, 2, 3]  # the checkpoint of step 4 was refused
    for path in tmp_path.glob("*.ckpt"):
        assert torch.isfinite(
            torch.load(path, map_location="cpu", weights_only=True)["state_dict"]["weight"]
        ).all()
