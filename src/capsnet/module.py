"""CapsNet training, validation and test as a LightningModule.

The constructor takes plain values only (the ``model``, ``routing``, ``decoder`` and ``loss``
config groups), saved as hyperparameters: a checkpoint alone rebuilds the exact network it was
trained with (``CapsNetModule.load_from_checkpoint``), whatever the current config says.
"""

import inspect
from typing import Any

import hydra
import lightning as L
import torch
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from capsnet.analysis import coupling_entropy
from capsnet.labels import one_hot
from capsnet.losses import CapsuleLoss, LossTerms
from capsnet.network import CapsNet, CapsNetOutput

STAGES = ("train", "val", "test")


class CapsNetModule(L.LightningModule):
    def __init__(
        self,
        net: dict,
        routing: dict,
        decoder: dict,
        loss: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        compile: bool = False,
        channels_last: bool = True,
    ):
        """
        net: CapsNet's architecture (``conf/model``); routing: ``iterations``, ``detach_inner``;
        decoder: ``hidden`` sizes and ``alpha``, the reconstruction loss weight; loss: the margin
        loss's ``margin_weight``, ``m_plus``, ``m_minus``, ``absent_weight``; optimizer and
        scheduler: Hydra ``_target_`` dicts, the scheduler a function of the optimizer that is
        stepped every optimizer step. channels_last: NHWC convolutions (on this project's CPU: bf16
        training 130 -> 139 img/s, fp32 unchanged; cuDNN's bf16/fp16 kernels prefer NHWC too).
        """
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net = CapsNet(
            **net,
            routing_iterations=routing["iterations"],
            detach_inner=routing["detach_inner"],
            decoder_hidden=decoder["hidden"],
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self.criterion = CapsuleLoss(reconstruction_weight=decoder["alpha"], **loss)
        num_classes = net["num_classes"]
        # Micro accuracy over every example (summed across DDP ranks by torchmetrics). No argument
        # validation: it inspects the values on the host, a sync per step on a GPU.
        self.accuracy = torch.nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                for s in STAGES
            }
        )
        self.loss_means = torch.nn.ModuleDict(
            {f"{s}_{term}": MeanMetric() for s in ("val", "test") for term in LossTerms._fields}
        )
        self.val_acc_best = MaxMetric()
        # Routing behaviour: mean entropy of the couplings each routing iteration used.
        self.routing_entropy = torch.nn.ModuleDict(
            {f"{s}_{r}": MeanMetric() for s in ("val", "test") for r in range(1, routing["iterations"] + 1)}
        )
        self.test_confusion = MulticlassConfusionMatrix(num_classes, validate_args=False)
        self.test_confusion_matrix: torch.Tensor | None = None  # [true, predicted] counts of the last test

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> CapsNetOutput:
        return self.net(images.contiguous(memory_format=self.memory_format), labels)

    def setup(self, stage: str) -> None:
        if self.hparams.compile and stage == "fit":
            self.net.compile()  # in place: parameter names, and so checkpoints, stay the same

    def on_train_start(self) -> None:
        # The sanity-check validation must not count towards the best validation accuracy.
        self.accuracy["val_acc"].reset()
        self.val_acc_best.reset()

    def _step(self, batch, stage: str) -> tuple[LossTerms, CapsNetOutput]:
        images, labels = batch
        # Training decodes the true class's capsule; evaluation the longest one (paper section 4.1).
        output = self(images, labels if stage == "train" else None)
        targets = one_hot(labels, output.lengths.shape[1])
        terms = self.criterion(output.lengths, targets, output.reconstructions, images)
        self.accuracy[f"{stage}_acc"].update(output.lengths.detach().argmax(dim=1), labels)
        return terms, output

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        terms, _ = self._step(batch, "train")
        self.last_loss_terms = LossTerms(*(t.detach() for t in terms))  # for StopOnNonFiniteLoss
        size = len(batch[1])
        for term, value in terms._asdict().items():
            self.log(f"train/{term}_loss", value.detach(), batch_size=size, prog_bar=term == "total")
        self.log("train/acc", self.accuracy["train_acc"], on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)  # a float: no sync
        return terms.total

    def _eval_step(self, batch, stage: str) -> CapsNetOutput:
        terms, output = self._step(batch, stage)
        for term, value in terms._asdict().items():
            self.loss_means[f"{stage}_{term}"].update(value, weight=len(batch[1]))
        for iteration, couplings in enumerate(output.couplings, start=1):
            self.routing_entropy[f"{stage}_{iteration}"].update(coupling_entropy(couplings), len(batch[1]))
        return output

    def validation_step(self, batch, batch_idx: int) -> CapsNetOutput:
        return self._eval_step(batch, "val")  # the outputs are for callbacks (capsnet.insights)

    def test_step(self, batch, batch_idx: int) -> CapsNetOutput:
        output = self._eval_step(batch, "test")
        self.test_confusion.update(output.lengths.argmax(dim=1), batch[1])
        return output

    def _log_eval_epoch(self, stage: str) -> torch.Tensor:
        accuracy = self.accuracy[f"{stage}_acc"].compute()
        self.accuracy[f"{stage}_acc"].reset()
        # Values computed by torchmetrics are already over every DDP rank; sync_dist averages
        # identical values (exact), and keeps Lightning from warning that they are not synced.
        self.log(f"{stage}/acc", accuracy, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/error", 1.0 - accuracy, sync_dist=True)
        for term in LossTerms._fields:
            self.log(f"{stage}/{term}_loss", self.loss_means[f"{stage}_{term}"])
        for iteration in range(1, self.hparams.routing["iterations"] + 1):
            self.log(f"{stage}/routing_entropy_iter{iteration}", self.routing_entropy[f"{stage}_{iteration}"])
        return accuracy

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self._log_eval_epoch("val"))
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_eval_epoch("test")
        confusion = self.test_confusion.compute()  # [true, predicted], summed over DDP ranks
        self.test_confusion.reset()
        self.test_confusion_matrix = confusion.cpu()
        per_class = confusion.diagonal() / confusion.sum(dim=1).clamp_min(1)
        for label, accuracy in enumerate(per_class):
            self.log(f"test/acc_class_{label}", accuracy, sync_dist=True)

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        output = self(images)
        return {"prediction": output.lengths.argmax(dim=1), "lengths": output.lengths}

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        # A schedule with a `total_steps` argument (one-cycle) gets the run's length from the Trainer.
        make_scheduler = hydra.utils.get_method(self.hparams.scheduler["_target_"])
        run_length = {}
        if "total_steps" in inspect.signature(make_scheduler).parameters:
            run_length["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = hydra.utils.instantiate(self.hparams.scheduler, optimizer=optimizer, **run_length)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
