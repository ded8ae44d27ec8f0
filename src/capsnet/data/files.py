"""Getting a dataset's IDX files onto disk, verified by MD5 before anything trains on them.

Files already in ``raw_dir`` with the right checksums are used as they are. Otherwise each source
(``capsnet.data.sources``) is tried in order, and its files are verified again; a file whose
checksum is wrong is never loaded: it is rebuilt by the next source or reported by name.
"""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capsnet.data.idx import parse_idx, read_bytes
from capsnet.data.lock import exclusive
from capsnet.data.sources import SOURCES
from capsnet.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetFiles:
    """Where one dataset lives and what its four files must hash to.

    ``files`` maps each split in ``SPLITS`` to ``{"name": file name, "md5": hex digest}``.
    """

    root: Path  # data.data_dir
    dataset: str  # "MNIST": sub-folder name, and torchvision's class name
    files: dict

    @property
    def raw_dir(self) -> Path:
        return Path(self.root) / self.dataset / "raw"

    def path(self, split: str) -> Path:
        return self.raw_dir / self.files[split]["name"]

    def problems(self) -> list[str]:
        """One line per missing file or wrong checksum; empty when all four are good."""
        return [problem for split in SPLITS if (problem := self._problem(split, self._file_md5(split)))]

    def read_verified(self, split: str) -> np.ndarray:
        """The file's array, read once: the MD5 checked is that of the very bytes parsed."""
        path = self.path(split)
        data = read_bytes(path) if path.is_file() else None
        problem = self._problem(split, None if data is None else hashlib.md5(data).hexdigest())
        if problem is not None:
            raise DataError(f"{problem}; run prepare_data (or the training command) again to rebuild it")
        return parse_idx(data, path)

    def _file_md5(self, split: str) -> str | None:
        """None when the file is missing."""
        return md5(self.path(split)) if self.path(split).is_file() else None

    def _problem(self, split: str, digest: str | None) -> str | None:
        """What is wrong with a file of this MD5 (None: the file is missing), or None when it is good."""
        expected = self.files[split]["md5"]
        if digest is None:
            return f"{self.path(split)} is missing"
        return None if digest == expected else f"{self.path(split)} has MD5 {digest}, expected {expected}"


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_files(spec: DatasetFiles, sources: list[str]) -> None:
    """Make ``spec``'s files present and verified, trying ``sources`` in order, or raise DataError."""
    problems = spec.problems()
    if not problems:
        return
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise DataError(f"data.sources: unknown source(s) {unknown}; choose from {sorted(SOURCES)}")
    _ensure_writable(spec.raw_dir)
    with exclusive(spec.raw_dir / ".prepare.lock"):  # another process may be getting them right now
        problems = spec.problems()
        if problems:
            _fetch(spec, sources, problems)


def _fetch(spec: DatasetFiles, sources: list[str], problems: list[str]) -> None:
    tried = [f"files in {spec.raw_dir}: " + "; ".join(problems)]
    for name in sources:
        log.info("Getting %s from source %r", spec.dataset, name)
        try:
            SOURCES[name](spec.raw_dir, spec.dataset)
        except Exception as error:
            tried.append(f"source {name!r}: {error}")
            continue
        problems = spec.problems()
        if not problems:
            log.info("%s files verified in %s", spec.dataset, spec.raw_dir)
            return
        tried.append(f"source {name!r} gave files that fail verification: " + "; ".join(problems))
    raise DataError(f"cannot get verified {spec.dataset} files. Tried:\n  - " + "\n  - ".join(tried))


def _ensure_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"data.data_dir: cannot create {directory}: {error.strerror}") from error
    if not os.access(directory, os.W_OK):
        raise DataError(f"data.data_dir: {directory} is not writable; choose another data.data_dir")


def load_split(spec: DatasetFiles, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, H, W] and labels [N] of ``split`` ("train" or "test"), verified by checksum."""
    images, labels = spec.read_verified(f"{split}_images"), spec.read_verified(f"{split}_labels")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{spec.raw_dir}: {split} images {images.shape} and labels {labels.shape} do not match"
        )
    return images, labels
