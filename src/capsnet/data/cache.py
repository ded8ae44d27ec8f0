"""Generated datasets cached on disk: IDX files plus a record of their MD5s, regenerated on mismatch.

Arrays of any dtype are stored as their raw bytes (an IDX file of unsigned bytes, one row per
example) and viewed back as that dtype: the cache is for this machine's byte order.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from capsnet.data.idx import read_idx, write_idx
from capsnet.data.lock import exclusive
from capsnet.errors import DataError

log = logging.getLogger(__name__)


def md5_of(array: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest()


def cache_key(*parts) -> str:
    """A short name for everything a generated set depends on (JSON-serialisable parts)."""
    return hashlib.md5(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _verified(stem: Path, saved: dict) -> dict[str, np.ndarray]:
    """The arrays a cache record describes, read back; raises if a file is missing, damaged or altered."""
    arrays = {
        name: read_idx(Path(f"{stem}-{name}.idx")).view(np.dtype(saved["dtype"][name])).reshape(shape)
        for name, shape in saved["shape"].items()
    }
    wrong = [name for name, digest in saved["md5"].items() if md5_of(arrays[name]) != digest]
    if wrong or set(arrays) != set(saved["md5"]):
        raise ValueError(f"checksums fail: {', '.join(wrong) or 'files'}")
    return arrays


def cached_arrays(stem: Path, make: Callable[[], dict[str, np.ndarray]], info: dict) -> dict[str, np.ndarray]:
    """``make()``'s arrays, from ``<stem>-<name>.idx`` when those match the MD5s in ``<stem>.json``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(Path(f"{stem}.lock")):  # two processes may want the same set at once
        return _cached_or_made(stem, make, info)


def _cached_or_made(
    stem: Path, make: Callable[[], dict[str, np.ndarray]], info: dict
) -> dict[str, np.ndarray]:
    record = Path(f"{stem}.json")
    if record.is_file():
        try:
            return _verified(stem, json.loads(record.read_text()))
        except (ValueError, KeyError, TypeError, OSError, DataError) as problem:  # unreadable or wrong
            log.warning("%s: cached arrays unusable (%s); generating them again", stem, problem)
    arrays = make()
    for name, array in arrays.items():
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(len(array), -1)
        write_idx(Path(f"{stem}-{name}.idx"), raw)
    record.write_text(
        json.dumps(
            {
                **info,
                "md5": {name: md5_of(a) for name, a in arrays.items()},
                "dtype": {name: a.dtype.str for name, a in arrays.items()},
                "shape": {name: list(a.shape) for name, a in arrays.items()},
            },
            indent=2,
        )
        + "\n"
    )
    return arrays
