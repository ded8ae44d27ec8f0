"""Two nodes on one machine: torchrun starts one process per "node" on 127.0.0.1 (gloo), as a cluster
would start one per machine; the test set is scored exactly as one process scores it."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_in_process


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # two training processes
def test_two_nodes_train_and_test_like_one_process(tmp_path, data_overrides, tiny_overrides):
    port = _free_port()
    overrides = [*tiny_overrides, "trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2"]
    overrides += ["trainer.max_epochs=1", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"]
    nodes = []
    for node in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1"]
        command += [f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}"]
        command += [str(ROOT / "src" / "train.py"), *overrides]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        nodes.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        )
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    distributed = json.loads((tmp_path / "run" / "metrics.json").read_text())["test/acc"]
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")  # the best, which was tested
    single = run_in_process("eval", [*data_overrides, f"ckpt_path={checkpoint}"], tmp_path / "eval")
    assert single.code == 0, single.output[-3000:]
    expected = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"]
    assert 0.0 < expected < 1.0  # 37 test images: k/37 == m/38 (a padded set) only at 0 or 1
    assert distributed == expected
