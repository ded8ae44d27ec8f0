"""The baseline CNN trained and logged like the CapsNet (``ClassifierModule``), with cross-entropy."""

from typing import NamedTuple

import torch
import torch.nn.functional as F

from capsnet.models.classifier import ClassifierModule
from capsnet.nn.baseline_cnn import BaselineCNN


class CrossEntropyTerms(NamedTuple):
    total: torch.Tensor  # mean cross-entropy over the batch


class BaselineCNNModule(ClassifierModule):
    """The baseline trained and logged like ``CapsNetModule`` (same metric names), with cross-entropy."""

    def __init__(self, net: dict, optimizer: dict, scheduler: dict | None = None, channels_last: bool = True):
        super().__init__(num_classes=net["num_classes"], loss_terms=CrossEntropyTerms._fields)
        self.save_hyperparameters(logger=False)
        self.net = BaselineCNN(**net)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.contiguous(memory_format=self.memory_format))

    def _step(self, batch, stage: str) -> tuple[CrossEntropyTerms, torch.Tensor]:
        images, labels = batch
        logits = self(images)
        return CrossEntropyTerms(F.cross_entropy(logits.float(), labels)), logits

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return output
