"""MNIST on a larger canvas, tested on the generated affNIST proxy (paper section 5.2), as a DataModule."""

from pathlib import Path

import torch
import torch.nn.functional as F

from capsnet.data.affine import AffineRanges, affine_test_set
from capsnet.data.datamodule import (
    InMemoryImages,
    MNISTDataModule,
    check_canvas_shape,
)
from capsnet.data.files import load_split


class AffineMNISTDataModule(MNISTDataModule):
    """MNIST on a larger black canvas (paper section 5.2), tested on the generated affNIST proxy.

    Training and validation digits are centred on a ``canvas`` x ``canvas`` background and, in
    training, placed at random (``shift_pixels`` = 6 on 40x40: anywhere on the canvas); the test set
    is ``capsnet.data.affine``'s proxy (``affine_test=true``), or the centred MNIST test digits
    (``affine_test=false``: the clean accuracy to compare models at).
    """

    def __init__(self, canvas: int = 40, affine_test: bool = True, affine: dict | None = None, **kwargs):
        check_canvas_shape(kwargs, canvas, "data.canvas")
        super().__init__(image_shape=(1, 28, 28), **kwargs)  # the files' shape
        self.canvas, self.affine_test = canvas, affine_test
        affine = dict(affine or {})
        self.affine_seed = affine.pop("seed", 0)
        self.affine_ranges = AffineRanges(**affine)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("test", "predict", None) and self.test_set is None and self.affine_test:
            images, labels = load_split(self.spec, "test")
            moved, labels, _ = affine_test_set(
                Path(self.spec.root) / "affNIST_proxy",
                images,
                labels,
                self.affine_seed,
                self.affine_ranges,
                self.canvas,
            )
            self.test_set = InMemoryImages(
                torch.from_numpy(moved).unsqueeze(1), torch.from_numpy(labels.astype("int64"))
            )
        super().setup(stage)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        margin = self.canvas - images.shape[-1]
        if margin:  # a 28x28 digit: centre it on the canvas
            before = margin // 2
            images = F.pad(images, (before, margin - before, before, margin - before))
        return super().on_after_batch_transfer((images, labels), dataloader_idx)
