"""One process at a time: an exclusive lock for work that several processes may start at once on one
folder (data preparation by two jobs of a sweep, or two nodes on a shared file system)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` for the block (``flock`` on POSIX, ``msvcrt`` on Windows,
    by the ``filelock`` package); others wait for it."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_file):
        yield
