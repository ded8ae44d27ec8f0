"""Generated sets cached on disk: made once even when two processes want the same set at once."""

import time
from pathlib import Path

import numpy as np

from capsnet.data.cache import cached_arrays
from tests.helpers import at_once


def _slowly_made(calls: Path) -> dict[str, np.ndarray]:
    with open(calls, "a") as log:
        log.write("made\n")
    time.sleep(0.5)  # long enough for the other process to arrive while this one writes
    return {"images": np.arange(60, dtype=np.float32).reshape(3, 4, 5), "labels": np.arange(3)}


def _load(stem: Path, calls: Path, out: Path) -> None:
    arrays = cached_arrays(stem, lambda: _slowly_made(calls), {"what": "test"})
    np.savez(out, **arrays)


def test_two_processes_wanting_one_set_at_once_make_it_once(tmp_path):
    stem, calls = tmp_path / "cache" / "set", tmp_path / "calls.log"
    assert at_once(_load, *[(stem, calls, tmp_path / f"{i}.npz") for i in range(2)]) == [0, 0]
    assert calls.read_text() == "made\n"
    first, second = (np.load(tmp_path / f"{i}.npz") for i in range(2))
    for name in ("images", "labels"):
        np.testing.assert_array_equal(first[name], second[name])
    names = sorted(p.name for p in stem.parent.iterdir())
    assert names == ["set-images.idx", "set-labels.idx", "set.json", "set.lock"]  # no temp files left
