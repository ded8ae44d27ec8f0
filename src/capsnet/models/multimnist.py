"""CapsNet on MultiMNIST (paper section 6): two digits per image, two targets.

- Margin loss (eq. 4) with both classes present (T_k = 1 for each of the two labels).
- Reconstruction: each digit is decoded from its own class capsule (the others masked) and compared
  with that digit alone, shifted as in the overlay; the two squared errors are summed. The paper
  trains this way; here evaluation decodes from the true classes too, so that losses compare.
- Accuracy: an example is correct when its two longest capsules are exactly its two classes; the
  paper's error is 5.2% (so 94.8% accuracy), with 1,000 pairs per digit and long training.
Reconstructions are ``[B, 2, 1, 36, 36]``: the insights callback shows each digit's separately.
"""

import torch
from torchmetrics import MeanMetric, Metric

from capsnet.models.capsnet import CapsNetModule
from capsnet.nn.capsnet import CapsNetOutput
from capsnet.nn.decoder import mask_capsules
from capsnet.nn.losses import LossTerms
from capsnet.nn.one_hot import one_hot
from capsnet.nn.squash import capsule_lengths


class MultiMNISTCapsNetModule(CapsNetModule):
    def chance_accuracy(self) -> float:
        classes = self.hparams["net"]["num_classes"]
        return 2.0 / (classes * (classes - 1))  # both of two different classes guessed

    def _accuracy_metric(self, num_classes: int) -> Metric:
        return MeanMetric()  # of "both labels right" per example, summed over DDP ranks by torchmetrics

    def _step(self, batch, stage: str) -> tuple[LossTerms, CapsNetOutput]:
        overlays, labels, alone = batch  # [B, 1, 36, 36], [B, 2], [B, 2, 1, 36, 36]
        poses, couplings = self.net.encode(overlays.contiguous(memory_format=self.memory_format))
        lengths = capsule_lengths(poses)  # [B, J]
        decoded = [self.net.decoder(mask_capsules(poses, labels[:, d])) for d in range(2)]
        reconstructions = torch.stack(decoded, dim=1)  # [B, 2, 1, 36, 36]
        classes = lengths.shape[1]
        targets = one_hot(labels[:, 0], classes) + one_hot(labels[:, 1], classes)  # two different classes
        terms = self.criterion(lengths, targets, reconstructions, alone)
        return terms, CapsNetOutput(lengths, poses, reconstructions, couplings)

    def _scored_step(self, batch, stage: str):
        terms, output = self._step(batch, stage)
        predicted = output.lengths.detach().topk(2, dim=1).indices.sort(dim=1).values
        correct = (predicted == batch[1].sort(dim=1).values).all(dim=1)
        self.accuracy[f"{stage}_acc"].update(correct.float())
        return terms, output

    def test_step(self, batch, batch_idx: int) -> CapsNetOutput:
        return self._eval_step(batch, "test")  # no single-label confusion matrix

    def on_test_epoch_end(self) -> None:
        self._log_eval_epoch("test")
