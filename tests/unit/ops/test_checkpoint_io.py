"""Checkpoints written atomically, with the folder's usual permissions."""

import errno
import io
import os

import pytest
import torch

from capsnet.errors import FAILURES, DiskFullError
from capsnet.ops.checkpoint_io import AtomicCheckpointIO


def test_checkpoint_written_atomically(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"weights": torch.ones(3)}, path)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def killed_while_writing(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"weights": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(3))  # the old one, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary left


def test_a_full_disk_is_one_line_with_the_folder_and_the_bytes(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"weights": torch.ones(3)}, tmp_path / "last.ckpt")

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"part of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(
        DiskFullError, match=rf"no space left in {tmp_path} for last.ckpt: it needs about 4,000 bytes"
    ):
        io.save_checkpoint({"weights": torch.ones(1000)}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # the old one, no temporary
    assert FAILURES[DiskFullError] == ("Disk full", 5)


def test_a_full_disk_met_by_torchs_own_writer_is_the_same_one_line(tmp_path, monkeypatch):
    """torch.save's zip writer turns the OSError of a failed write into a RuntimeError: injected at the
    file's write, below torch, the run still ends with DiskFullError (exit 5), no temporary left."""
    real_fdopen = os.fdopen

    class FillsUp(io.RawIOBase):  # the checkpoint's file, on a disk with 10 kB left
        def __init__(self, file):
            self.file, self.written = file, 0

        def writable(self):
            return True

        def write(self, data):
            self.written += len(data)
            if self.written > 10_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(data)

        def fileno(self):
            return self.file.fileno()

        def close(self):
            self.file.close()
            super().close()

    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: FillsUp(real_fdopen(*args, **kwargs)))
    with pytest.raises(DiskFullError, match=rf"no space left in {tmp_path} for last.ckpt"):
        AtomicCheckpointIO().save_checkpoint({"weights": torch.ones(100_000)}, tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_checkpoint_left_by_a_kill_is_removed_at_the_next_start(tmp_path, caplog):
    from capsnet.run.checkpoints import remove_unfinished_checkpoints

    io = AtomicCheckpointIO()
    io.save_checkpoint({"weights": torch.ones(3)}, tmp_path / "last.ckpt")
    (tmp_path / ".last.ckpt.x1y2z3.tmp").write_bytes(b"half")  # what kill -9 while saving leaves
    remove_unfinished_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert ".last.ckpt.x1y2z3.tmp, a checkpoint whose saving was interrupted" in caplog.text


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("key", ["state_dict", "current_model_state"])  # the weights, or EMA's raw ones
def test_non_finite_weights_are_never_written(tmp_path, key):
    from capsnet.errors import NonFiniteError

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 6}, path)
    weights = {"state_dict": {"w": torch.ones(3)}, key: {"w": torch.tensor([1.0, float("inf"), 2.0])}}
    with pytest.raises(
        NonFiniteError, match=r"NaN or infinite values at step 7 \(w\): last\.ckpt was not written"
    ):
        AtomicCheckpointIO().save_checkpoint({**weights, "global_step": 7}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 6  # the one before, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
