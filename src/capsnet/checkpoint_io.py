"""Checkpoints written atomically: a reader (or a resumed run) sees the old file or the new one, never
half of one.

Lightning's ``TorchCheckpointIO`` opens the destination and writes into it, so a process killed while
saving (pre-emption, out of disk) leaves a truncated ``last.ckpt`` that no longer loads. Here the bytes
go to a temporary file in the same folder, are flushed to disk, and the file is renamed over the
destination (``os.replace``: atomic on POSIX within one file system).
"""

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make checkpoints private
        try:
            with os.fdopen(descriptor, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
