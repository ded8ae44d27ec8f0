"""What every classifier of this project shares as a LightningModule: metrics, logging, optimizers.

Subclasses (``CapsNetModule``, ``BaselineCNNModule``) build their network and loss, and define
``_step`` (loss terms and the network's output for a batch) and ``scores`` (class scores [B, J]).
Logged, the same for every model, so runs compare side by side:
- ``train/<term>_loss`` every step, ``train/acc`` per epoch, ``train/lr``;
- ``val/`` and ``test/``: ``acc``, ``error``, ``<term>_loss``; ``val/acc_best``;
- ``test/acc_class_<k>``, and the test confusion matrix kept as ``test_confusion_matrix``;
- each test image's label and predicted class, in the test set's order, kept as ``test_predictions``
  (the run writes them to ``test_predictions.csv``: ``scripts/compare_runs.py`` pairs two runs').
"""

import inspect
from typing import Any, ClassVar, NamedTuple

import hydra
import lightning as L
import torch
from torchmetrics import MaxMetric, MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from capsnet.errors import NonFiniteError

STAGES = ("train", "val", "test")
MODULE_CLASS_KEY = "module_class"  # checkpoints name the LightningModule class that wrote them
BEST_KEY = "val_acc_best"  # and hold the best validation accuracy so far (torchmetrics keeps no state)
TRAIN_COUNTS_KEY = "train_acc_counts"  # and the counts behind the epoch's train/acc so far, all processes'


class ClassifierModule(L.LightningModule):
    # Hyperparameters added since the first checkpoints (flat names): the value those were trained with.
    ADDED_HYPERPARAMETERS: ClassVar[dict[str, Any]] = {}
    # Top-level config groups the constructor takes beside model's own keys, under their own names.
    CONFIG_GROUPS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_classes: int, loss_terms: tuple[str, ...]):
        super().__init__()
        self.loss_terms = loss_terms
        self.accuracy = torch.nn.ModuleDict({f"{s}_acc": self._accuracy_metric(num_classes) for s in STAGES})
        self.loss_means = torch.nn.ModuleDict(
            {
                f"{s}_{term}": MeanMetric(nan_strategy="disable")
                for s in ("val", "test")
                for term in loss_terms
            }
        )
        self.val_acc_best = MaxMetric()
        self._restored_val_acc_best: float | None = None  # from the checkpoint a run resumes
        self._restored_train_counts: dict[str, torch.Tensor] | None = None  # likewise
        self.test_confusion = MulticlassConfusionMatrix(num_classes, validate_args=False)
        self.test_confusion_matrix: torch.Tensor | None = None  # [true, predicted] counts of the last test
        self.test_predictions: torch.Tensor | None = None  # [N, 2]: (label, predicted) of the last test
        self._test_rows: list[torch.Tensor] = []
        self.last_loss_terms: NamedTuple | None = None  # the last training step's, for StopOnNonFiniteLoss

    def _accuracy_metric(self, num_classes: int) -> Metric:
        # Micro accuracy over every example (summed across DDP ranks by torchmetrics). No argument
        # validation: it inspects the values on the host, a sync per step on a GPU.
        return MulticlassAccuracy(num_classes, average="micro", validate_args=False)

    def chance_accuracy(self) -> float:
        """The accuracy of guessing: what a model that learnt nothing scores."""
        return 1.0 / self.hparams["net"]["num_classes"]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[MODULE_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint[BEST_KEY] = float(self.val_acc_best.max_value)  # -inf before the first validation
        checkpoint[TRAIN_COUNTS_KEY] = self._train_accuracy_counts()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored_val_acc_best = checkpoint.get(BEST_KEY)
        if _saved_with_batches_of_its_epoch_left(checkpoint):  # which the resumed run trains on
            self._restored_train_counts = checkpoint.get(TRAIN_COUNTS_KEY)

    def _train_accuracy_counts(self) -> dict[str, torch.Tensor]:
        """The counts train/acc has gathered this epoch, summed over the processes (every process saves
        a checkpoint, so the sum is a collective all of them take part in)."""
        metric = self.accuracy["train_acc"]
        with metric.sync_context():
            return {name: value.detach().cpu().clone() for name, value in metric.metric_state.items()}

    def _step(self, batch, stage: str) -> tuple[NamedTuple, Any]:
        """(loss terms, ``total`` first; the network's output) for one batch."""
        raise NotImplementedError

    def scores(self, output) -> torch.Tensor:
        """Class scores [B, J] of a network output: the larger, the likelier."""
        raise NotImplementedError

    def _update_eval_extras(self, output, stage: str, size: int) -> None:
        """Model-specific evaluation metrics (CapsNet: routing entropy)."""

    def _log_eval_extras(self, stage: str) -> None:
        """Log what ``_update_eval_extras`` gathered."""

    def on_train_start(self) -> None:
        # The sanity-check validation must not count towards the best validation accuracy; the
        # validations before a resume do (val/acc_best is what sweepers optimize).
        self.accuracy["val_acc"].reset()
        self.val_acc_best.reset()
        if self._restored_val_acc_best is not None and self._restored_val_acc_best > float("-inf"):
            self.val_acc_best.update(torch.tensor(self._restored_val_acc_best, device=self.device))
        # A run resumed in the middle of an epoch counts that epoch's train/acc on from where it stopped:
        # the first process takes the counts of all of them (what is wanted is the sum over them).
        counts, self._restored_train_counts = self._restored_train_counts, None
        if counts is not None and self.trainer.is_global_zero:
            self.accuracy["train_acc"].merge_state({name: c.to(self.device) for name, c in counts.items()})

    def _scored_step(self, batch, stage: str):
        terms, output = self._step(batch, stage)
        self.accuracy[f"{stage}_acc"].update(self.scores(output).detach().argmax(dim=1), batch[1])
        return terms, output

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        terms, _ = self._scored_step(batch, "train")
        self.last_loss_terms = type(terms)(*(t.detach() for t in terms))
        size = len(batch[1])
        for term, value in terms._asdict().items():
            self.log(f"train/{term}_loss", value.detach(), batch_size=size, prog_bar=term == "total")
        self.log("train/acc", self.accuracy["train_acc"], on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)  # a float: no sync
        return terms.total

    def _eval_step(self, batch, stage: str):
        terms, output = self._scored_step(batch, stage)
        size = len(batch[1])
        for term, value in terms._asdict().items():
            self.loss_means[f"{stage}_{term}"].update(value, weight=size)
        self._update_eval_extras(output, stage, size)
        return output

    def validation_step(self, batch, batch_idx: int):
        return self._eval_step(
            batch, "val"
        )  # the outputs are for callbacks (capsnet.callbacks.capsule_insights)

    def on_test_epoch_start(self) -> None:
        self._test_rows = []

    def test_step(self, batch, batch_idx: int):
        output = self._eval_step(batch, "test")
        predicted = self.scores(output).argmax(dim=1)
        self.test_confusion.update(predicted, batch[1])
        self._test_rows.append(torch.stack([batch[1], predicted], dim=1))
        return output

    def _log_eval_epoch(self, stage: str) -> torch.Tensor:
        total = self.loss_means[f"{stage}_total"].compute()  # over every DDP rank
        if not torch.isfinite(total):
            raise NonFiniteError(
                f"the {stage} loss is {float(total)}: the model's outputs on the {stage} set are not finite "
                "(weights that diverged, or inputs far outside [0, 1])"
            )
        accuracy = self.accuracy[f"{stage}_acc"].compute()
        self.accuracy[f"{stage}_acc"].reset()
        # Values computed by torchmetrics are already over every DDP rank; sync_dist averages
        # identical values (exact), and keeps Lightning from warning that they are not synced.
        self.log(f"{stage}/acc", accuracy, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/error", 1.0 - accuracy, sync_dist=True)
        for term in self.loss_terms:
            self.log(f"{stage}/{term}_loss", self.loss_means[f"{stage}_{term}"])
        self._log_eval_extras(stage)
        return accuracy

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self._log_eval_epoch("val"))
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_eval_epoch("test")
        confusion = self.test_confusion.compute()  # [true, predicted], summed over DDP ranks
        self.test_confusion.reset()
        self.test_confusion_matrix = confusion.cpu()
        self.test_predictions = self._in_test_set_order(torch.cat(self._test_rows))
        self._test_rows = []
        per_class = confusion.diagonal() / confusion.sum(dim=1).clamp_min(1)
        for label, accuracy in enumerate(per_class):
            self.log(f"test/acc_class_{label}", accuracy, sync_dist=True)

    def _in_test_set_order(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's rows, in the test set's order: rank r of W scored examples r, r + W, r + 2W, ...
        (the data module's evaluation sampler), so row k of rank r is example k * W + r."""
        if self.trainer.world_size == 1:
            return rows.cpu()
        counts = self.all_gather(torch.tensor(len(rows), device=rows.device))  # [W]
        padded = rows.new_full((int(counts.max()), rows.shape[1]), -1)  # labels are >= 0
        padded[: len(rows)] = rows
        ordered = self.all_gather(padded).transpose(0, 1).reshape(-1, rows.shape[1])  # [max * W, 2]
        return ordered[ordered[:, 0] >= 0].cpu()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())
        if not self.hparams.get("scheduler"):
            return {"optimizer": optimizer}
        # A schedule with a `total_steps` argument (one-cycle) gets the run's length from the Trainer.
        make_scheduler = hydra.utils.get_method(self.hparams.scheduler["_target_"])
        run_length = {}
        if "total_steps" in inspect.signature(make_scheduler).parameters:
            run_length["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = hydra.utils.instantiate(self.hparams.scheduler, optimizer=optimizer, **run_length)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _saved_with_batches_of_its_epoch_left(checkpoint: dict[str, Any]) -> bool:
    """Whether the checkpoint was saved in the middle of an epoch, before its last batch (Lightning's
    loop counters: an epoch's end hooks have run when its ``processed`` count reached ``started``)."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    epoch = loop.get("epoch_progress", {}).get("current", {})
    batches = loop.get("epoch_loop.batch_progress", {})
    return epoch.get("processed", 0) < epoch.get("started", 0) and not batches.get("is_last_batch", True)
