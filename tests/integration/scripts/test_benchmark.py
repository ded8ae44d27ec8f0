"""scripts/benchmark.py runs the project's module and reports every figure it promises."""

import json
import os
import subprocess
import sys

from tests.helpers import ROOT


def test_benchmark_reports_json(synthetic_data, data_overrides, tmp_path):
    root, _ = synthetic_data
    overrides = [o for o in data_overrides if not o.startswith(("data.data_dir", "data.batch_size"))]
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--batch-size", "4", "--steps", "2"]
    command += ["--warmup", "1", "--iterations", "2", "--data-dir", str(root), "--profile", "--json"]
    command += ["--bare-steps", "3"]
    command += overrides
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("train_img_per_s", "infer_img_per_s", "ms_per_step", "peak_rss_mb", "matmul_gflops"):
        assert figures[key] > 0, key
    assert figures["data_img_per_s"] > figures["train_img_per_s"]
    # the timed steps' own peak (Linux: measured afresh after warm-up), within the whole process's
    assert 0 < figures["steps_peak_rss_mb"] <= figures["peak_rss_mb"]
    # Two capsule layers and the decoder: about 1.2 GFLOP per training image (paper architecture).
    assert 1.1 < figures["train_gflop_per_img"] < 1.3
    # --bare-steps: the module's own steps outside Lightning, timed one by one
    assert 0 < figures["bare_step_ms_min"] <= figures["bare_step_ms_median"]
    # --profile: the operator table of one step, routing's per-parent matmuls in it
    assert "Self CPU time total" in result.stdout and "aten::bmm" in result.stdout
    # the run's scratch folder is gone: repeated benchmarks do not fill the disk
    assert list(scratch.glob("capsnet-bench-*")) == []
