"""CapsNet training, validation and test as a LightningModule (metrics and logging: ``ClassifierModule``).

The constructor takes plain values only, under the names of their config groups (``model.net``,
``routing``, ``decoder``, ``loss``, ``model.optimizer``, ...), saved as hyperparameters: a checkpoint
alone rebuilds the exact network it was trained with (``CapsNetModule.load_from_checkpoint``), whatever
the current config says.
"""

from typing import ClassVar

import torch
from torchmetrics import MeanMetric

from capsnet.models.classifier import ClassifierModule
from capsnet.nn.bfloat16_speed import slow_bfloat16
from capsnet.nn.capsnet import CapsNet, CapsNetOutput
from capsnet.nn.config import CapsNetConfig, LossConfig, from_dict
from capsnet.nn.losses import CapsuleLoss, LossTerms
from capsnet.nn.one_hot import one_hot
from capsnet.nn.routing import DYNAMIC, coupling_entropy


class CapsNetModule(ClassifierModule):
    ADDED_HYPERPARAMETERS: ClassVar[dict] = {"net.parametrisation": "paper", "routing._target_": DYNAMIC}
    CONFIG_GROUPS = ("routing", "decoder", "loss")

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
        net, routing, decoder: the network (``nn.config.CapsNetConfig``); loss: the margin loss's
        ``margin_weight``, ``m_plus``, ``m_minus``, ``absent_weight`` (with ``decoder.alpha``, the
        reconstruction loss weight); optimizer and scheduler: Hydra ``_target_`` dicts, the scheduler
        stepped every optimizer step. channels_last: NHWC convolutions, which oneDNN (CPU) and
        cuDNN's bf16/fp16 kernels prefer.
        """
        super().__init__(num_classes=net["num_classes"], loss_terms=LossTerms._fields)
        self.save_hyperparameters(logger=False)
        self.net = CapsNet(CapsNetConfig.from_groups(net, routing, decoder))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self.bf16_products_in_float32 = False  # a compiled bf16 run on a slow-bf16 CPU: true (setup)
        self.criterion = CapsuleLoss(from_dict(LossConfig, "loss", loss), alpha=self.net.config.decoder.alpha)
        # Routing behaviour: mean entropy of the couplings each routing pass (iteration) used.
        passes = self.net.digits.routing.passes
        self.routing_entropy = torch.nn.ModuleDict(
            {f"{s}_{r}": MeanMetric() for s in ("val", "test") for r in range(1, passes + 1)}
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> CapsNetOutput:
        return self.net(images.contiguous(memory_format=self.memory_format), labels)

    def setup(self, stage: str) -> None:
        if self.hparams.compile and stage == "fit":
            self.bf16_products_in_float32 = self._bf16_on_a_slow_cpu()  # with bf16's roundings
            if self.bf16_products_in_float32:
                from capsnet.nn import bf16_in_float32  # imports inductor: only for a compiled run

                bf16_in_float32.install()
            self.net.compile()  # in place: parameter names, and so checkpoints, stay the same

    def _bf16_on_a_slow_cpu(self) -> bool:
        on_cpu = self.trainer.strategy.root_device.type == "cpu"
        return on_cpu and "bf16" in str(self.trainer.precision) and slow_bfloat16() is not None

    def _step(self, batch, stage: str) -> tuple[LossTerms, CapsNetOutput]:
        images, labels = batch
        # Training decodes the true class's capsule; evaluation the longest one (paper section 4.1).
        output = self(images, labels if stage == "train" else None)
        targets = one_hot(labels, output.lengths.shape[1])
        return self.criterion(output.lengths, targets, output.reconstructions, images), output

    def scores(self, output: CapsNetOutput) -> torch.Tensor:
        return output.lengths

    def _update_eval_extras(self, output: CapsNetOutput, stage: str, size: int) -> None:
        for iteration, couplings in enumerate(output.couplings, start=1):
            self.routing_entropy[f"{stage}_{iteration}"].update(coupling_entropy(couplings), size)

    def _log_eval_extras(self, stage: str) -> None:
        for iteration in range(1, self.net.digits.routing.passes + 1):
            self.log(f"{stage}/routing_entropy_iter{iteration}", self.routing_entropy[f"{stage}_{iteration}"])
