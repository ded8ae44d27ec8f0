"""The MNIST data module: seeded split, shift augmentation on training batches only, the protocols."""

import re
from types import SimpleNamespace

import pytest
import torch

from capsnet.data.augment import random_shift
from capsnet.data.datamodule import MNISTDataModule
from capsnet.data.files import DatasetFiles
from capsnet.data.multimnist_datamodule import MultiMNISTDataModule
from tests.helpers import FILE_NAMES, write_synthetic_mnist


def spec_for(root, checksums) -> DatasetFiles:
    files = {split: {"name": FILE_NAMES[split], "md5": checksums[split]} for split in FILE_NAMES}
    return DatasetFiles(root, "MNIST", files)


def test_random_shift_moves_each_image_within_bounds():
    torch.manual_seed(0)  # unseeded, one run in ~140 missed one of the 25 shifts
    images = torch.zeros(200, 1, 9, 9)
    images[:, 0, 4, 4] = 1.0
    shifted = random_shift(images, 2)
    positions = torch.stack([(s[0] == 1).nonzero()[0] for s in shifted]) - 4
    assert positions.abs().max() <= 2
    assert len({tuple(p.tolist()) for p in positions}) == 25  # all 5x5 shifts occur
    assert shifted.sum() == 200  # nothing wraps around: the padding is zeros


def test_random_shift_zero_is_identity():
    images = torch.rand(3, 1, 5, 5)
    assert random_shift(images, 0) is images


def test_split_is_seeded_and_disjoint(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=50, test=10)
    files = spec_for(tmp_path, checksums).files

    def split(seed):
        module = MNISTDataModule(
            str(tmp_path), files=files, val_size=10, split_seed=seed, train_subset=30, batch_size=8
        )
        module.setup("fit")
        return module.train_set, module.val_set

    train, val = split(0)
    assert len(train) == 30 and len(val) == 10
    assert torch.equal(split(0)[1].images, val.images)
    assert not torch.equal(split(1)[1].images, val.images)
    seen = {bytes(img.numpy()) for img in train.images}
    assert not seen & {bytes(img.numpy()) for img in val.images}


def test_val_size_zero_trains_on_everything_and_validates_nothing(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=50, test=10)
    module = MNISTDataModule(
        str(tmp_path), files=spec_for(tmp_path, checksums).files, val_size=0, batch_size=8
    )
    module.setup("fit")
    assert len(module.train_set) == 50 and module.val_set is None and module.test_set is None
    assert module.val_dataloader() == [] and not module.held_out_validation


def test_shift_only_on_training_batches(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=40, test=10)
    module = MNISTDataModule(
        str(tmp_path), files=spec_for(tmp_path, checksums).files, val_size=8, batch_size=8
    )
    module.setup("fit")
    batch = module.train_set.__getitems__(list(range(32)))
    plain = batch[0].float() / 255
    module.trainer = SimpleNamespace(training=False)
    images, _ = module.on_after_batch_transfer(batch, 0)
    assert torch.equal(images, plain) and images.dtype == torch.float32
    module.trainer = SimpleNamespace(training=True)
    images, _ = module.on_after_batch_transfer(batch, 0)
    assert not torch.equal(images, plain)
    assert images.max() <= 1.0 and images.min() >= 0.0


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ({"processes": 2}, "trainer.devices x trainer.num_nodes gives 1 processes, it had 2"),
        ({"batch_size": 16}, "data.batch_size gives 8 batch size, it had 16"),
        ({"train_images": 40}, "data.train_subset / data.val_size gives 30 train images, it had 40"),
    ],
)
def test_a_mid_epoch_resume_with_another_data_geometry_is_refused_by_name(tmp_path, saved, message):
    checksums = write_synthetic_mnist(tmp_path, train=50, test=10)
    files = spec_for(tmp_path, checksums).files
    module = MNISTDataModule(str(tmp_path), files=files, val_size=10, train_subset=30, batch_size=8)
    module.setup("fit")
    module.trainer = SimpleNamespace(world_size=1)
    same = {"processes": 1, "batch_size": 8, "train_images": 30}
    module.load_state_dict({"examples_done_in_epoch": 16, **same})  # the same geometry continues
    assert module._resume_skip == 16
    with pytest.raises(ValueError, match=f"stopped in the middle of an epoch.*{re.escape(message)}"):
        module.load_state_dict({"examples_done_in_epoch": 16, **same, **saved})
    module.load_state_dict({"examples_done_in_epoch": 0, **same, **saved})  # an epoch's end: any geometry
    assert module._resume_skip == 0


def test_multimnist_refuses_an_image_shape_that_is_not_its_canvas(tmp_path):
    with pytest.raises(
        ValueError, match=r"data.image_shape=\[1, 28, 28\] must be \[1, 36, 36\] \(MultiMNIST's canvas\)"
    ):
        MultiMNISTDataModule(data_dir=str(tmp_path), image_shape=[1, 28, 28])


@pytest.mark.parametrize("module_class", [MNISTDataModule, MultiMNISTDataModule])
def test_every_datamodule_checks_the_held_out_size(tmp_path, module_class):
    module = module_class(data_dir=str(tmp_path), val_size=40)
    with pytest.raises(ValueError, match=r"data.val_size=40 must be in \[0, 39\]"):
        module.split(40)
