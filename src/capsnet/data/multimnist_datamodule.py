"""MultiMNIST (paper section 6) as a DataModule: pairs of overlapping digits, built within each split."""

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from capsnet.data.datamodule import MNISTDataModule, check_canvas_shape
from capsnet.data.multimnist import CANVAS, cached_pair_table, compose_pairs

log = logging.getLogger(__name__)


class PairedDigits(Dataset):
    """MultiMNIST examples as (first digit, second digit, shifts, labels [2]); composed on the device."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, table: dict[str, np.ndarray]):
        self.digits, self.labels = images.view(len(images), *images.shape[-2:]), labels
        self.first, self.second = torch.from_numpy(table["first"]), torch.from_numpy(table["second"])
        self.shifts = torch.from_numpy(table["shifts"])

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices)
        first, second = self.first[index], self.second[index]
        labels = torch.stack([self.labels[first], self.labels[second]], dim=1)
        return self.digits[first], self.digits[second], self.shifts[index], labels


class MultiMNISTDataModule(MNISTDataModule):
    """MultiMNIST pairs (``capsnet.data.multimnist``) built within each split: training pairs from the
    training digits, validation pairs from the held-out ones, test pairs from the test set.

    Batches are ``(overlays [B, 1, 36, 36], labels [B, 2], digits alone [B, 2, 1, 36, 36])``.
    """

    def __init__(self, pairs_per_digit: int = 2, eval_pairs_per_digit: int = 1, pair_seed: int = 0, **kwargs):
        check_canvas_shape(kwargs, CANVAS, "MultiMNIST's canvas")
        super().__init__(image_shape=(1, 28, 28), **kwargs)  # the files' shape
        self.pairs_per_digit, self.eval_pairs_per_digit, self.pair_seed = (
            pairs_per_digit,
            eval_pairs_per_digit,
            pair_seed,
        )

    def _pairs(self, images, labels, members, pairs: int, split: str) -> PairedDigits:
        digits, digit_labels = images[members], labels[members]
        table = cached_pair_table(
            Path(self.spec.root) / "MultiMNIST", digit_labels.numpy(), pairs, self.pair_seed, split
        )
        return PairedDigits(digits, digit_labels, table)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self._tensors("train")
            val_index, train_index = self.split(len(labels))
            self.train_set = self._pairs(images, labels, train_index, self.pairs_per_digit, "train")
            if self.val_size:
                self.val_set = self._pairs(images, labels, val_index, self.eval_pairs_per_digit, "val")
            log.info("MultiMNIST: train %d / val %d pairs", len(self.train_set), len(self.val_set or ()))
        if stage in ("test", "predict", None) and self.test_set is None:
            images, labels = self._tensors("test")
            self.test_set = self._pairs(
                images, labels, torch.arange(len(labels)), self.eval_pairs_per_digit, "test"
            )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        first, second, shifts, labels = batch
        overlays, alone = compose_pairs(first.float().div_(255.0), second.float().div_(255.0), shifts)
        return overlays, labels, alone
