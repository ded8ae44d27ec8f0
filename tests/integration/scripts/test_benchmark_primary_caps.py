"""scripts/benchmark_primary_caps.py times and checks the PrimaryCaps layer in each of its CPU forms."""

import re
import subprocess
import sys

from tests.helpers import ROOT


def test_each_form_is_timed_and_as_close_to_float64_as_its_precision_allows():
    command = [sys.executable, str(ROOT / "scripts" / "benchmark_primary_caps.py"), "--batch-sizes", "2"]
    command += ["--eager", "--warmup", "1", "--calls", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^(onednn|fourier) +2 +(32|bf16) +([\d.]+) +(\S+) +(\S+) +(\S+)$", result.stdout, re.M)
    assert sorted((form, precision) for form, precision, *_ in rows) == [
        ("fourier", "32"), ("fourier", "bf16"), ("onednn", "32"), ("onednn", "bf16"),
    ]  # fmt: skip
    for _, precision, ms, *errors in rows:
        assert float(ms) > 0
        assert all(float(e) < (1e-5 if precision == "32" else 2e-2) for e in errors), errors
