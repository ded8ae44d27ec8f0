"""Checkpoints written so that a reader (or a resumed run) sees the old file or the new one, never half.

What Lightning 2.6 already does (``TorchCheckpointIO`` -> ``_atomic_save``): it serialises the whole
checkpoint into memory, writes those bytes into a temporary file that fsspec creates in the system's
temporary folder, and moves it over the destination, without an ``fsync``. When that folder is on
another file system than the checkpoints (``/tmp`` on tmpfs, a cluster's scratch), the move is a copy:
a kill during it leaves a truncated destination, and the data may still sit in the page cache when the
node goes down.

What this class does instead: the temporary file is created beside the destination (same folder, so the
rename is atomic on POSIX), the bytes are streamed into it (no second in-memory copy of the
checkpoint), flushed and ``fsync``-ed, and only then renamed over the destination; the file gets the
permissions the folder's umask gives, not ``mkstemp``'s private 0600. A full disk (or quota) ends the
run with ``DiskFullError``: one line with the folder, the bytes needed and the bytes free. Weights that
hold a NaN or an infinity are never written: the run ends with ``NonFiniteError`` instead, and the
checkpoints already on disk are all from before.
"""

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from capsnet.errors import DiskFullError, NonFiniteError
from capsnet.models.loading import non_finite_tensors
from capsnet.ops.result_files import shared_mode


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        # the weights and, with weight averaging, the raw weights it keeps beside the averaged ones
        weights = {**checkpoint.get("state_dict", {}), **checkpoint.get("current_model_state", {})}
        if bad := non_finite_tensors(weights):
            raise NonFiniteError(
                f"the weights hold NaN or infinite values at step {checkpoint.get('global_step')} ({bad[0]}"
                f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}): {path.name} was not written, the "
                "checkpoints on disk are from before. Try a lower model.optimizer.lr or "
                "trainer.gradient_clip_val=1.0"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(temporary, shared_mode())
        try:
            with os.fdopen(descriptor, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException as error:
            Path(temporary).unlink(missing_ok=True)
            if _disk_full(error):
                needed, free = _bytes(checkpoint), shutil.disk_usage(path.parent).free
                raise DiskFullError(
                    f"no space left in {path.parent} for {path.name}: it needs about {needed:,} bytes, "
                    f"{free:,} are free. Free some space (or set paths.log_dir elsewhere) and resume with "
                    "ckpt_path=last: the previous checkpoint is whole"
                ) from None
            raise


def _disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` is, or was raised while handling, a full disk or quota: torch's writer turns
    the ``OSError`` of a failed write into a ``RuntimeError`` of its own."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def _bytes(tree: Any) -> int:
    """What the tensors in a checkpoint take (its size on disk, near enough)."""
    if isinstance(tree, torch.Tensor):
        return tree.nelement() * tree.element_size()
    if isinstance(tree, dict):
        return sum(_bytes(value) for value in tree.values())
    if isinstance(tree, list | tuple):
        return sum(_bytes(value) for value in tree)
    return 0
