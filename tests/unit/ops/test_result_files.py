"""Result files are whole or as they were."""

import os

import pytest

from capsnet.ops.result_files import write_text_atomically


def test_a_result_file_killed_while_written_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_text_atomically(path, '{"val/acc_best": 0.5}\n')

    def killed(descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomically(path, '{"val/acc_best": 0.9}\n')
    assert path.read_text() == '{"val/acc_best": 0.5}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left
