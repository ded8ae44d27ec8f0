"""Result files (``metrics.json``, ``job.json``, ``test_predictions.csv``) written so that a reader sees
the old file or the new one, never half: a kill or a full disk while writing leaves the old one."""

import os
import tempfile
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` entirely, or is as it was: a temporary file beside it, synced, renamed."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, shared_mode())  # mkstemp's 0600 would make the results private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def shared_mode() -> int:
    """The permissions a new file gets from the folder's umask (mkstemp's 0600 would make it private)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
